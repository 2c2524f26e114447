"""Generation: one model step per new token (LSTM state / transformer KV cache), batched
across pieces. The pipeline::

    context   _primer_context / _window_context   what each piece continues: the primer's
                                                  first bars or a training window, ending
                                                  on a bar line
    sampling  _sample                             one token per step; each piece masked by
                                                  its TokenRules (grammar, tokens seen in
                                                  training, the tempo and metre in force)
                                                  and stopped on its own by its _Meter
    decoding  to_scores                           the new tokens from the bar line, cut to
                                                  the length asked, with the primer's
                                                  tempo, time and key signature

Lengths count new material only: with ``unit="bars"`` a piece ends on the bar line after
exactly ``length`` new bars.
"""
from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from symusic import Note, Score, Tempo

from ..data.bars import bar_tick, bars_before, cut, cut_to_length, score_bars
from ..data.corpus import SkipFile, read_piano_score
from ..data.corpus.pedal import pedal_spans, set_pedals
from ..errors import CadenzaError
from .form import FormPlan, SectionCopier, parse_form
from .form import section_bars as form_section_bars
from ..rundir import Run, load_run
from .sampling import Sampling, TokenRules, locked_attributes, sample_next
from . import steer as steering
from .steer import Steer
from ..data.token_stats import TEMPO, TokenKinds

LENGTH_UNITS = ("tokens", "bars", "seconds")
MAX_TOKENS_FOR_TIMED = 20000
MAX_NUM, MAX_BATCH_TOKENS = 4096, 2**26
CHUNK = 64                   # tokens between two decodes, where the length is measured by decoding
TOKENS_PER_BAR_FACTOR = 4    # a bar may take this many times the tokens of 99 % of the corpus's bars ...
FALLBACK_TOKENS_PER_BAR = 1024  # ... or this many for runs without token statistics
LOG_EVERY_S = 10.0
Log = Callable[[str], None]


@dataclass
class Primer:
    """The part of a primer file that is continued: its first ``bars`` bars."""
    score: Score
    bars: int


@dataclass
class Generated:
    """Token ids of each piece: the context it started from and the new tokens."""
    context: list[np.ndarray]
    new: list[np.ndarray]
    masked_mass: float = 0.0
    from_primer: bool = False
    scores: list[Score] = field(default_factory=list)
    primer: Primer | None = None
    length: float | None = None
    unit: str = "tokens"
    capped: list[int] = field(default_factory=list)   # pieces stopped by the tokens-per-bar cap
    reached: list[float] = field(default_factory=list)  # how far each piece got, in unit
    warnings: list[str] = field(default_factory=list)
    tempo_origins: list[str] = field(default_factory=list)  # per piece, in words (set by to_scores)
    steer: Steer | None = None
    keys: list[str] = field(default_factory=list)   # with a key asked: each piece's key estimate
    redraws: int = 0                                # pieces drawn again for missing the key


# -- context ---------------------------------------------------------------------------
def read_primer(path: str | Path, bars: int | None = None, timeline: Callable[[Score], Score] | None = None) -> Primer:
    """A primer file's first ``bars`` bars (all of it when None), on ``timeline`` (the
    representation's: a performance is continued on its clock of seconds)."""
    try:
        score = read_piano_score(Path(path))
    except SkipFile as exc:
        raise CadenzaError(f"cannot use primer {path}: {exc}") from None
    if timeline is not None:
        score = timeline(score)
    if bars is None:
        return Primer(score, bars_before(score, score.end()))
    score = cut(score, bar_tick(score, bars))
    if not score.note_num():
        raise CadenzaError(f"the first {bars} bars of primer {path} hold no notes")
    return Primer(score, bars)


def _score_from(score: Score, tick: int) -> Score:
    """``score`` from ``tick`` on, moved to start at 0, with the tempo, time and key
    signature in force at ``tick`` set at 0."""
    out = score.clip(tick, score.end() + 1, clip_end=False).shift_time(-tick)
    for name in ("tempos", "time_signatures", "key_signatures"):
        before = [e for e in getattr(score, name) if e.time <= tick]
        if before:
            first = before[-1].copy()
            first.time = 0
            setattr(out, name, [first] + [e for e in getattr(out, name) if e.time > 0])
    return out


def _primer_tail(rep, primer: Primer, tokens: int) -> tuple[Primer, np.ndarray]:
    """The primer's last bars that encode to at least ``tokens`` tokens (all of it when it
    is shorter), and their ids: a 100,000-note primer is never encoded whole."""
    bars = 4
    while True:
        first = max(0, primer.bars - bars)
        tail = primer if first == 0 else Primer(_score_from(primer.score, bar_tick(primer.score, first)),
                                                primer.bars - first)
        ids = rep.encode(tail.score) if tail.score.note_num() else np.zeros(0, dtype=np.int64)
        if first == 0 or len(ids) >= tokens:
            return tail, np.asarray(ids, dtype=np.int64)
        bars *= 2


def _reach(run: Run) -> int:
    """How many tokens before the next one the model reads when it generates: a model with a
    memory (``reach``: its attention window or cache) that many, else the window it trained on."""
    return getattr(run.model, "reach", None) or run.config.seq_len


def _primer_context(run: Run, kinds: TokenKinds, primer: Primer) -> tuple[np.ndarray, str]:
    """The primer's tokens, then (for bar-based tokens) Bar tokens from the bar of its last
    event (MidiTok writes bars up to there) to the bar line after the primer: of a long primer
    only its last bars, which hold the tokens the model reads (:func:`_reach`), and the tempo
    and metre in force; and a line saying so when cut."""
    rep, seq_len = run.representation, _reach(run)
    tail, encoded = _primer_tail(rep, primer, seq_len)
    ids = list(encoded)
    if not ids:
        raise CadenzaError("the primer has no tokens in this run's vocabulary")
    if kinds.bar_id is not None:
        score = tail.score
        last_event = max(e.time for events in (score.tracks[0].notes, score.tempos, score.time_signatures)
                         for e in events)
        ids += [kinds.bar_id] * (tail.bars - bars_before(score, last_event + 1) + 1)
    if rep.bos_id is not None and tail is primer:
        ids = [rep.bos_id] + ids
    note = "" if len(ids) <= seq_len else (
        f"the primer ({primer.bars} bars) is longer than the model's context: it continues from the last "
        f"{seq_len} tokens (of its last {tail.bars} bars); the whole primer is kept in the output")
    return np.asarray(ids, dtype=np.int64), note


def _training_windows(run: Run) -> np.ndarray:
    if run.primers is None or run.primers.size == 0:
        raise CadenzaError(f"{run.directory} has no training windows to start from; pass --primer FILE.mid")
    return run.primers[:, -run.config.seq_len:].astype(np.int64)


def _window_context(run: Run, kinds: TokenKinds, num: int, rng: np.random.Generator,
                    windows: np.ndarray | None = None) -> np.ndarray:
    """Random training windows (or of ``windows``); with Bar tokens each is cut at its last
    bar line (windows with one in their second half), all to the same length."""
    windows = _training_windows(run) if windows is None else windows
    if kinds.bars is None:
        return windows[rng.integers(0, len(windows), size=num)]
    last_bar = np.array([np.flatnonzero(row)[-1] if row.any() else -1 for row in kinds.bars[windows] > 0])
    usable = np.flatnonzero(last_bar >= windows.shape[1] // 2)
    if not len(usable):
        return windows[rng.integers(0, len(windows), size=num)]
    rows = usable[rng.integers(0, len(usable), size=num)]
    keep = int(last_bar[rows].min())
    return np.stack([np.append(windows[r, last_bar[r] - keep:last_bar[r]], kinds.bar_id) for r in rows])


def _decode_prefix(kinds: TokenKinds, context: np.ndarray) -> list[int]:
    """What the new tokens are decoded after: the Bar the context ends on, if it does."""
    return [kinds.bar_id] if kinds.bar_id is not None and context[-1] == kinds.bar_id else []


# -- when a piece is done ------------------------------------------------------------------
class _Meter:
    """How far a piece got, in tokens: done at ``length``, or at ``budget`` tokens (capped)."""

    def __init__(self, length: float, budget: int) -> None:
        self.length, self.budget = length, budget
        self.progress, self.done, self.capped, self.tokens = 0.0, False, False, 0

    def add(self, token: int, new: list[int]) -> None:
        self.tokens += 1
        self.progress = min(self.length, self._measure(token, new))
        self.done = self.progress >= self.length
        if not self.done and self.tokens >= self.budget:
            self.done = self.capped = True

    def _measure(self, token: int, new: list[int]) -> float:
        return float(self.tokens)


def _bars_to_last_onset(score: Score) -> int:
    """How many bars start at or before the last note onset of ``score`` (0 without notes)."""
    onsets = score.tracks[0].notes.numpy()["time"] if score.tracks else []
    return bars_before(score, int(onsets.max()) + 1) if len(onsets) else 0


class _BarMeter(_Meter):
    """Bars counted token by token from the Bar tokens. A rest over a bar line moves on
    without one (MidiTok's REMI starts a rest where the notes before it end), so after a Rest
    the next note or Bar decodes the piece and counts to the bar of its last note (the decoded
    piece is cut at the exact bar line in the end): a model that crosses bar lines by rests
    alone still reaches its length. More than ``per_bar`` tokens in one bar stops the piece
    (capped), twice that in a bar with a Rest: a bar holds at most the notes before a rest and
    those after it, never more, however many Rests a stuck model writes."""

    def __init__(self, length: float, per_bar: int, kinds: TokenKinds, decode: Callable[[list[int]], Score]) -> None:
        super().__init__(math.ceil(length), math.ceil(length) * per_bar)
        self.per_bar, self.bars, self.rests, self.decode = per_bar, kinds.bars, kinds.count("Rest"), decode
        self.durations = kinds.count("Duration")
        self.count, self.in_bar, self.rested, self.rest_in_bar = 0, 0, False, False

    def add(self, token: int, new: list[int]) -> None:
        if token >= len(self.bars):  # not the tokenizer's: a density level, no time
            return
        super().add(token, new)
        if not self.done and self.in_bar > self.per_bar * (2 if self.rest_in_bar else 1):
            self.done = self.capped = True

    def _measure(self, token: int, new: list[int]) -> float:
        bar, rest = bool(self.bars[token]), bool(self.rests[token])
        began = self.count + bar
        if self.rested and (bar or self.durations[token]):  # where did the rest lead?
            began, self.rested = max(began, _bars_to_last_onset(self.decode(new))), False
        if began > self.count:
            self.count, self.in_bar, self.rest_in_bar = began, 0, False
        self.in_bar += not bar
        self.rested, self.rest_in_bar = self.rested or rest, self.rest_in_bar or rest
        return float(self.count)


class _DecodeMeter(_Meter):
    """Bars or seconds measured by decoding the piece every ``CHUNK`` tokens."""

    def __init__(self, length: float, budget: int, unit: str, decode: Callable[[list[int]], Score]) -> None:
        super().__init__(length, budget)
        self.unit, self.decode = unit, decode

    def _measure(self, token: int, new: list[int]) -> float:
        if self.tokens % CHUNK:
            return self.progress
        score = self.decode(new)
        return score.to("second").end() if self.unit == "seconds" else score_bars(score)


def _meter(run: Run, kinds: TokenKinds, length: float, unit: str, prefix: list[int]) -> _Meter:
    usual = (run.token_stats or {}).get("p99_tokens_per_bar")
    per_bar = TOKENS_PER_BAR_FACTOR * usual if usual else FALLBACK_TOKENS_PER_BAR
    if unit == "tokens":
        return _Meter(int(length), int(length))
    decode = lambda new: run.representation.decode(prefix + new)  # noqa: E731
    if unit == "bars" and kinds.bars is not None:
        return _BarMeter(length, per_bar, kinds, decode)
    budget = math.ceil(length) * per_bar if unit == "bars" else MAX_TOKENS_FOR_TIMED
    return _DecodeMeter(length, budget, unit, decode)


def _form_plan(run: Run, kinds: TokenKinds, form: str | None, length: float, unit: str,
               bars: int | None) -> FormPlan | None:
    """The form asked (else the run's default), or None; an explicit form needs Bar tokens."""
    letters = parse_form(run.config.gen_form if form is None else form)
    if not letters:
        return None
    if kinds.bars is None:
        if form is None:
            return None
        raise CadenzaError(f"--form needs tokens that mark bars (REMI); this run's are {run.config.representation!r}")
    return FormPlan(letters, form_section_bars(letters, length, unit, bars))


def _copier(plan: FormPlan | None, kinds: TokenKinds, context: np.ndarray) -> SectionCopier | None:
    if plan is None:
        return None
    # repeats are laid from a bar line: the context's last token, else the first one sampled
    return SectionCopier(plan, kinds.bars, int(context[-1]) if kinds.bars[context[-1]] else None)


def _rules(run: Run, kinds: TokenKinds, from_primer: bool, steer: Steer | None = None,
           constrained: bool = True) -> TokenRules | None:
    """What sampling may write: the run's grammar, its seen tokens and locked attributes (none
    of them unless ``constrained``), and what ``steer`` asks (tempo; density after every bar)."""
    stats = run.token_stats or {}
    rules = TokenRules(run.representation.grammar(), kinds, stats.get("seen"),
                       locked_attributes(stats, from_primer), steering.forced(kinds, steer)) if constrained else None
    if steer and steer.density:
        rules = steering.DensityRules(rules or TokenRules(None, kinds, None, ()), run, kinds, steer.density)
    return rules


class _Piece:
    """One piece being generated: its new tokens, rules state, meter and repeats."""

    def __init__(self, rules: TokenRules | None, meter: _Meter, context: np.ndarray,
                 copier: SectionCopier | None = None, group: int = 0) -> None:
        self.rules, self.meter, self.copier, self.new, self.group = rules, meter, copier, [], group
        self.state = rules.start(context) if rules else None
        self.scores: list[float] = []  # what a caller that resamples pieces keeps per piece

    def fork(self) -> "_Piece":
        """A twin that goes on from here on its own (a copier is shared: forms do not resample)."""
        twin = copy.copy(self)
        twin.new, twin.meter, twin.scores = list(self.new), copy.copy(self.meter), list(self.scores)
        return twin

    def allowed(self) -> np.ndarray | None:
        return self.rules.allowed(self.state) if self.rules else None

    def choose(self, sampled: int) -> int:
        return self.copier.choose(sampled, self.new) if self.copier else sampled

    def add(self, token: int) -> None:
        self.new.append(token)
        if self.rules:
            self.state = self.rules.advance(self.state, token)
        self.meter.add(token, self.new)
        if self.copier:
            self.copier.added(token, self.new)


# -- progress ----------------------------------------------------------------------------
class _Progress:
    """A tqdm bar on a terminal (shown after two seconds), else a log line now and then; and
    ``report(done, total)`` at every step when given (it may raise to cancel)."""

    def __init__(self, total: float, unit: str, quiet: bool, log: Log,
                 report: Callable[[float, float], None] | None = None, per: int = 1) -> None:
        """``per`` pieces sampled make one counted (accompany's particles)."""
        self.total, self.unit, self.log, self.done, self.report, self.per = total, unit, log, 0.0, report, per
        self.bar = None
        self.started = self.logged = time.monotonic()
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, desc="generating", delay=2, leave=False,
                            dynamic_ncols=True, file=sys.stderr)

    def update(self, done: float) -> None:
        done /= self.per
        if self.report is not None:
            self.report(done, self.total)
        if done == self.done:
            return
        self.done = done
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        elif time.monotonic() - self.logged >= LOG_EVERY_S:
            self.logged = time.monotonic()
            self.log(f"generating: {done:,.0f}/{self.total:,.0f} {self.unit} "
                     f"({done / self.total:.0%}, {self.logged - self.started:.0f} s)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- the loop ------------------------------------------------------------------------------
@contextmanager
def _one_step_kernels(device: torch.device):
    """One-token steps on the CPU: oneDNN's LSTM costs milliseconds per call whatever its
    length, so PyTorch's plain kernels are several times faster; and one thread, since a
    step is too small to share out and a core busy elsewhere stalls every other thread
    (measured: 0.7 ms a step on one thread, 190 ms on two with the other core busy)."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
            with torch.backends.mkldnn.flags(enabled=False):
                yield
    finally:
        torch.set_num_threads(threads)


def _masks(pieces: list[_Piece], device: torch.device) -> tuple[torch.Tensor | None, list | None]:
    """What each piece may sample, and where the probability of what it may not goes."""
    masks = [p.allowed() for p in pieces]
    if masks[0] is None:
        return None, None
    moves = [p.rules.redirect(p.state, m) for p, m in zip(pieces, masks)]
    return torch.from_numpy(np.stack(masks)).to(device), moves


def _sample(run: Run, context: np.ndarray, pieces: list[_Piece], sampling: Sampling, gen: torch.Generator,
            progress: _Progress, resample: Callable[[list[_Piece], torch.Tensor], list[int] | None] | None = None
            ) -> float:
    """Sample until every piece is done; returns the mean masked probability per token.
    ``resample(pieces, logits)``, after each step, may name for each piece in the batch the
    piece it goes on as (a copy of it: :meth:`_Piece.fork`); the pieces are replaced in
    ``pieces``."""
    model, seq_len = run.model, run.config.seq_len
    device = next(model.parameters()).device
    # a model reads at most the window it was trained on: a transformer never saw positions
    # past it (RoPE beyond seq_len), and its KV cache restarts on the most recent three
    # quarters of that window whenever it fills; an LSTM starts on the last tokens it reads
    max_len = min(model.max_len, seq_len) if hasattr(model, "max_len") else None
    window = context[:, -(max_len - 1 if max_len else _reach(run)):]
    logits, state = model(torch.from_numpy(window).to(device), last_only=True)
    live, cached, masked = list(range(len(pieces))), window.shape[1], []
    with _one_step_kernels(device):
        while True:
            batch = [pieces[k] for k in live]
            allowed, moves = _masks(batch, device)
            # the tokenizer's tokens: a run's markers and density levels only where the rules allow them
            width = run.representation.vocab_size if allowed is None else allowed.shape[1]
            sampled, mass = sample_next(logits[:, -1, :width], sampling, allowed, gen, moves)
            for piece, token, m in zip(batch, sampled.tolist(), mass.tolist()):
                piece.add(piece.choose(token))
                masked.append(m)
            rows = resample(batch, logits[:, -1]) if resample else None
            if rows is not None:
                batch = [batch[r].fork() for r in rows]
                for k, piece in zip(live, batch):
                    pieces[k] = piece
                state = model.select_rows(state, torch.tensor(rows, device=device))
            progress.update(sum(p.meter.progress for p in pieces))
            going = [i for i, piece in enumerate(batch) if not piece.meter.done]
            if not going:
                return float(np.mean(masked))
            ids = torch.tensor([[batch[i].new[-1]] for i in going], device=device)
            if len(going) < len(batch):  # a piece is done: the others go on without it, a step costs less
                state = model.select_rows(state, torch.tensor(going, device=device))
                live = [live[i] for i in going]
            if max_len and cached + 1 >= max_len:  # the KV cache is full: restart it on a recent window
                recent = np.stack([np.concatenate([context[k], pieces[k].new]) for k in live])[:, -(3 * max_len // 4):]
                logits, state = model(torch.from_numpy(recent).to(device), last_only=True)
                cached = recent.shape[1]
            else:
                logits, state = model(ids, state=state)
                cached += 1


def _check(num: int, length: float, unit: str, seed: int | None, primer_bars: int | None) -> None:
    if unit not in LENGTH_UNITS:
        raise CadenzaError(f"length unit must be one of {', '.join(LENGTH_UNITS)}")
    if not 0 < length < math.inf or num < 1:
        raise CadenzaError("--length and --num must be positive (and finite)")
    if seed is not None:  # the config's rule for a seed, one for training and generation
        from ..validate import config_specs

        config_specs()["seed"].check("seed", seed)
    if primer_bars is not None and primer_bars < 1:
        raise CadenzaError(f"--primer-bars must be >= 1, got {primer_bars}")
    if unit == "tokens" and length < 1:
        raise CadenzaError(f"--length {length:g} is less than one token")
    if num > MAX_NUM or num * _per_piece(length, unit) > MAX_BATCH_TOKENS:
        raise CadenzaError(f"--num {num} x --length {length:g} {unit} is too much for one call "
                           f"(at most {MAX_NUM} pieces and {MAX_BATCH_TOKENS:,} tokens in all)")


def _per_piece(length: float, unit: str) -> int:
    return math.ceil(length) if unit == "tokens" else MAX_TOKENS_FOR_TIMED


def _check_batch(num: int, context: int, length: float, unit: str, what: str) -> None:
    """The context counts in the batch limit: ``num`` copies of it are run at once."""
    total = num * (context + _per_piece(length, unit))
    if total > MAX_BATCH_TOKENS:
        raise CadenzaError(f"--num {num} x ({context:,} tokens of {what} + {_per_piece(length, unit):,} new) is "
                           f"{total:,} tokens, too much for one call (at most {MAX_BATCH_TOKENS:,}); lower --num "
                           f"or --length")


def _cap_warnings(capped: list[int], reached: list[float], new: list, unit: str, what: str = "piece") -> list[str]:
    return [f"{what} {k + 1} stopped early at {reached[k]:g} {unit} ({len(new[k]):,} tokens): "
            f"the model {'kept a bar open past' if unit == 'bars' else 'reached'} the token cap" for k in capped]


def _contexts(run: Run, kinds: TokenKinds, num: int, length: float, unit: str, continued: Primer | None,
              steer: Steer | None, rng: np.random.Generator, log: Log) -> Callable[[int], np.ndarray]:
    """What ``n`` pieces continue, drawn anew at each call: the primer, or training windows
    (in the asked key, of about the asked density); their tempo tokens set to the asked tempo. ``num``: the rows of the
    batch, checked against memory (pieces, each as its particles)."""
    tempo = steer.tempo if steer else None
    retempo = (lambda c: c) if tempo is None else (lambda c: steering.with_tempo(kinds, c, tempo))  # noqa: E731
    if continued:
        ids, note = _primer_context(run, kinds, continued)
        _check_batch(num, len(ids), length, unit, "primer")
        if note:
            log(note)
        ids = retempo(ids)
        return lambda n: np.repeat(ids[None, :], n, axis=0)
    width = min(run.config.seq_len, run.primers.shape[1]) if run.primers is not None else 0
    _check_batch(num, width, length, unit, "context")
    windows = _training_windows(run)
    if steer and steer.key:
        windows = steering.keyed_windows(run.representation, kinds, windows, steer.key)
    if steer and steer.density and kinds.bars is not None:
        windows = steering.windows_near(kinds, windows, steer.density)
    return lambda n: retempo(_window_context(run, kinds, n, rng, windows))


@torch.no_grad()
def generate(run: Run | str | Path, num: int = 1, length: float | None = None, unit: str = "tokens",
             sampling: Sampling | None = None, seed: int | None = None, primer: str | Path | None = None,
             constrained: bool = True, primer_bars: int | None = None, quiet: bool = False,
             log: Log | None = None, form: str | None = None, section_bars: int | None = None,
             progress: Callable[[float, float], None] | None = None, steer: Steer | None = None) -> Generated:
    """Generate ``num`` pieces from a trained run (defaults from the run's configuration).

    ``sampling`` says how tokens are drawn (each setting it leaves None, all of them when it
    is None: the run's ``gen_*``). ``length`` counts new material in ``unit``; ``primer``
    (its first ``primer_bars`` bars) is continued from the bar line after it.
    ``constrained=False`` samples the raw model (no grammar, unseen-token or tempo/metre
    masks). ``form`` (letters such as ``AABA``, or ``"none"``; the run's ``gen_form`` when
    None) makes sections of ``section_bars`` bars (the length in bars shared out over the
    form when None) come back (:mod:`cadenza.generation.form`). ``steer`` asks a key and a
    tempo (:mod:`cadenza.generation.steer`; pieces off key are drawn again). A progress bar
    shows on a terminal (log lines every few seconds instead with ``quiet`` or off a
    terminal); pieces stopped by the tokens-per-bar cap, and pieces left off the asked key,
    are named in ``Generated.warnings`` and through ``log``.
    ``progress(done, total)`` is called after every step (in ``unit``s, summed over pieces);
    an exception it raises stops generation and propagates (how a caller cancels).
    """
    run = run if isinstance(run, Run) else load_run(run)
    cfg, rep = run.config, run.representation
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    sampling = (sampling or Sampling()).over(cfg)
    length = cfg.gen_length if length is None else length
    _check(num, length, unit, seed, primer_bars)
    steering.check_steer(steer, run, primer is not None)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    kinds = TokenKinds(rep)
    continued = read_primer(primer, primer_bars, rep.timeline) if primer is not None else None
    plan = _form_plan(run, kinds, form, length, unit, section_bars)
    # with a density or a key asked (and no form: its sections are copied, not resampled), particles
    size = steering.particles(steer) if plan is None else 1
    contexts = _contexts(run, kinds, num * size, length, unit, continued, steer, rng, log)
    rules = _rules(run, kinds, continued is not None, steer, constrained)

    def draw(n: int) -> Generated:
        context = contexts(n)
        rows = np.repeat(context, size, axis=0)
        pieces = [_Piece(rules, _meter(run, kinds, length, unit, _decode_prefix(kinds, c)), c,
                         _copier(plan, kinds, c), group=k // size) for k, c in enumerate(rows)]
        fit = steering.BarFit(size, rng, kinds, steer) if size > 1 else None
        tracker = _Progress(sum(p.meter.length for p in pieces) / size, unit, quiet, log, progress, per=size)
        try:
            masked = _sample(run, rows, pieces, sampling, gen, tracker, fit)
        finally:
            tracker.close()
        pieces = fit.best(pieces, n) if fit else pieces
        return Generated(list(context), [steering.without_controls(p.new, kinds.size) for p in pieces], masked,
                         continued is not None, primer=continued, length=length, unit=unit,
                         capped=[k for k, p in enumerate(pieces) if p.meter.capped],
                         reached=[p.meter.progress for p in pieces], steer=steer)

    result = draw(num)
    if steer and steer.key:
        result = steering.redraw_off_key(steer, result, lambda r: to_scores(run, r), draw)
    result.warnings = _cap_warnings(result.capped, result.reached, result.new, unit) + result.warnings
    for line in result.warnings:
        log(f"warning: {line}")
    return result


# -- decoding ----------------------------------------------------------------------------
def _with_primer_globals(piece: Score, primer: Score) -> Score:
    """The tempo, time and key signature in force at the primer's end, from tick 0."""
    for name in ("tempos", "time_signatures", "key_signatures"):
        events = getattr(primer, name)
        last = events[-1].copy() if len(events) else None
        if last is not None:
            last.time = 0
        setattr(piece, name, [last] if last is not None else [])
    return piece


def _with_context_tempo(piece: Score, kinds: TokenKinds, context: np.ndarray, new: np.ndarray) -> tuple[Score, str]:
    """Where the new tokens set no tempo at tick 0, MidiTok put its default there: the
    tempo in force in the context replaces it, else the first one the new tokens set.
    Also says where the opening tempo came from (the context is a window of the training
    music, so a corpus of several tempos gives pieces of several tempos)."""
    if not len(piece.tempos):
        return piece, "none set"
    if len(piece.tempos) <= sum(len(kinds.values(TEMPO)[t]) for t in new):
        return piece, "chosen by the model"  # no default was added
    in_force = kinds.in_force(TEMPO, context)
    if in_force is not None:
        piece.tempos[0] = Tempo(0, float(in_force))
        return piece, "from the training music it continues"
    if len(piece.tempos) > 1:
        piece.tempos[0] = Tempo(0, piece.tempos[1].qpm)
        return piece, "the first one the model set"
    return piece, "the tokenizer's default: the music it continues sets none; --primer FILE sets its own"


def _after_primer(primer: Primer, piece: Score) -> Score:
    """The primer, then ``piece`` from the bar line after it (the primer's globals)."""
    out = primer.score.copy()
    piece = piece.resample(out.tpq, min_dur=1) if piece.tpq != out.tpq else piece
    if piece.tracks and len(piece.tracks[0].notes):
        cols = piece.tracks[0].notes.numpy()
        cols["time"] += bar_tick(out, primer.bars)
        out.tracks[0].notes.extend(Note.from_numpy(**cols, ttype="tick"))
    if piece.tracks and len(piece.tracks[0].pedals):
        (old_starts, old_ends), (starts, ends) = pedal_spans(out.tracks[:1]), pedal_spans(piece.tracks[:1])
        shift = bar_tick(out, primer.bars)
        set_pedals(out.tracks[0], np.concatenate([old_starts, starts + shift]), np.concatenate([old_ends, ends + shift]))
    return out


def to_scores(run: Run, result: Generated, continuation_only: bool = False, length: float | None = None,
              unit: str | None = None) -> list[Score]:
    """Decode generated pieces: the new material from its first bar line, cut to the length
    asked (default: the one generated for), after the primer unless ``continuation_only``,
    with the primer's (or the context's) tempo, time and key signature. Where each piece's
    opening tempo came from goes to ``result.tempo_origins``."""
    rep, kinds = run.representation, TokenKinds(run.representation)
    length = result.length if length is None else length
    unit = result.unit if unit is None else unit
    scores, origins = [], []
    for context, new in zip(result.context, result.new):
        piece = cut_to_length(rep.decode(_decode_prefix(kinds, context) + list(new)), length, unit)
        if result.primer is None:
            piece, origin = _with_context_tempo(piece, kinds, context, new)
        else:
            origin = "from the primer"
            piece = _with_primer_globals(piece, result.primer.score)
            piece = piece if continuation_only else _after_primer(result.primer, piece)
        scores.append(_steered(piece, result, continuation_only))
        origins.append("asked" if result.steer and result.steer.tempo is not None else origin)
    result.tempo_origins = origins
    return scores


def _steered(piece: Score, result: Generated, continuation_only: bool) -> Score:
    """``piece`` at the asked tempo (from the primer's end, the primer kept as it is) and
    with the asked key as its key signature."""
    steer = result.steer
    if steer and steer.tempo is not None:
        after = result.primer is not None and not continuation_only
        steering.set_tempo(piece, steer.tempo, bar_tick(piece, result.primer.bars) if after else 0)
    if steer and steer.key is not None:
        steering.set_key_signature(piece, steer.key)
    return piece


def output_paths(out: str | Path, num: int) -> list[Path]:
    out = Path(out)
    if not out.parent.exists() and str(out.parent) not in ("", "."):
        raise CadenzaError(f"output folder {out.parent} does not exist")
    if out.suffix.lower() not in (".mid", ".midi"):
        raise CadenzaError(f"output file must end in .mid or .midi: {out}")
    if num == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{k}{out.suffix}") for k in range(1, num + 1)]
