"""Infill: a span of bars of a piece regenerated given the music before and after it
(``cadenza infill RUN piece.mid --bars 9-12``), by a run trained with ``infill``
(:mod:`cadenza.data.fim`). The pipeline::

    prompt    infill_prompt    the piece before the span, ending on the span's first bar line
                               (generate's primer context), SUF, the piece from the span's end
                               (its first SUFFIX_SHARE training windows), MID, that bar line
    sampling  generate._sample the run's rules over prefix and middle; a candidate stops on
                               the span's last bar line (the model never learns how many bars
                               a span holds: its END is not sampled)
    splice    splice           the piece with the span's notes replaced by the new ones: every
                               note outside it, the tempo, time and key signatures kept
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from symusic import Note, Score, Track

from ..data.bars import bar_tick, bars_before, cut
from ..data.corpus import SkipFile, read_piano_score
from ..data.corpus.reader import merge_piano
from ..errors import CadenzaError
from ..data.fim import Markers, check_infill_run
from .generate import (Log, Primer, _cap_warnings, _check, _check_batch, _meter, _Piece, _primer_context,
                       _Progress, _rules, _sample, _score_from)
from ..rundir import Run, load_run
from .sampling import Sampling, TokenRules
from ..data.token_stats import TokenKinds

# tokens of the suffix read, in training windows: chosen on POP909 validation songs (benchmarks/infill.py
# --choose-suffix; docs/benchmarks.md): the more of a 4-bar suffix the model reads, the better it
# predicts the span, up to all of it (2 windows of a 256-token fine-tune)
SUFFIX_SHARE = 2.0


@dataclass
class Infilled:
    """The piece read, the span (bars ``first``-``last``, from 1; ticks ``start``-``end``), the
    new middle's token ids of each candidate and the candidates spliced in."""
    piece: Score
    first: int
    last: int
    start: int
    end: int
    new: list[np.ndarray]
    scores: list[Score] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_bars(text: str) -> tuple[int, int]:
    """``9-12`` (or ``9``: one bar) as (first, last), counted from 1."""
    found = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text or "")
    if not found:
        raise CadenzaError(f"--bars {text!r}: write the span as FIRST-LAST, e.g. 9-12 (bars counted from 1)")
    first, last = int(found.group(1)), int(found.group(2) or found.group(1))
    if first < 1:
        raise CadenzaError(f"--bars {text}: bars are counted from 1")
    if last < first:
        raise CadenzaError(f"--bars {text}: the span is reversed (its last bar comes before its first)")
    return first, last


def read_piece(path: str | Path, what: str = "infill") -> Score:
    try:
        return read_piano_score(Path(path), merge=False)  # its piano tracks as they are
    except SkipFile as exc:
        raise CadenzaError(f"cannot {what} {path}: {exc}") from None


def span_ticks(piece: Score, first: int, last: int, name: object = "the piece") -> tuple[int, int]:
    """Where bars ``first``-``last`` start and end; a span outside the piece is an error."""
    bars = bars_before(piece, piece.end())
    if last > bars:
        raise CadenzaError(f"--bars {first}-{last}: {name} has {bars} bar{'s' * (bars != 1)}")
    return bar_tick(piece, first - 1), bar_tick(piece, last)


# -- the prompt ----------------------------------------------------------------------------------
def infill_prompt(run: Run, kinds: TokenKinds, piece: Score, first: int, start: int, end: int,
                  marks: Markers, suffix_tokens: int | None = None) -> np.ndarray:
    """prefix SUF suffix MID Bar: the prompt whose continuation is the span's bars; of the
    suffix its first ``suffix_tokens`` (default: ``SUFFIX_SHARE`` of the training window)."""
    rep = run.representation
    before = cut(piece, start)
    if before.note_num():
        prefix, _ = _primer_context(run, kinds, Primer(before, first - 1))
    else:  # the span opens the piece
        prefix = np.asarray([t for t in (rep.bos_id, kinds.bar_id) if t is not None], dtype=np.int64)
    after = _score_from(piece, end)
    suffix_tokens = max(1, int(run.config.seq_len * SUFFIX_SHARE)) if suffix_tokens is None else suffix_tokens
    suffix = rep.encode(after)[:suffix_tokens] if after.note_num() else []
    return np.concatenate([prefix[:-1], [marks.suf], np.asarray(suffix, dtype=np.int64), [marks.mid], prefix[-1:]])


class _SpanRules:
    """The run's rules over the prefix and the middle (the suffix is read by the model, not
    followed by the grammar), and no marker: a training span holds 1 to 4 bars, so the model
    cannot know when this one ends (sampled, its END closed 10 of 20 POP909 test candidates of
    4 bars inside their first bar); the span's last bar line ends a candidate instead."""

    def __init__(self, rules: TokenRules, kinds: TokenKinds, marks: Markers) -> None:
        self.rules, self.size, self.marks = rules, kinds.size, marks

    def start(self, context: np.ndarray) -> tuple:
        context = list(context)
        return self.rules.start(context[:context.index(self.marks.suf)] + context[context.index(self.marks.mid) + 1:])

    def advance(self, state: tuple, token: int) -> tuple:
        return self.rules.advance(state, token)

    def allowed(self, state: tuple) -> np.ndarray:
        return self.rules.allowed(state)

    def redirect(self, state: tuple, allowed: np.ndarray):
        return self.rules.redirect(state, allowed)


# -- the splice ----------------------------------------------------------------------------------
def _without_span(track, start: int, end: int) -> None:
    cols = track.notes.numpy()
    keep = (cols["time"] < start) | (cols["time"] >= end)
    if not keep.all():
        track.notes = Note.from_numpy(**{k: v[keep] for k, v in cols.items()}, ttype="tick")


def splice(piece: Score, middle: Score, start: int, end: int, label: str = "infill") -> Score:
    """``piece`` with the notes of its tracks that start in [start, end) replaced by ``middle``'s
    that start before its ``end - start`` (``middle`` from tick 0 at the span's start), in a
    track of their own, ``label``: in the piece's own track a new note of the pitch of an old
    one sounding over the span's edge can take the old one's note-off when the file is read
    (written there, 8 of 80 POP909 test candidates read back with a note outside the span
    changed). Everything else of ``piece`` (its other
    notes, track by track, pedals, tempos, time and key signatures) as it is."""
    out = piece.copy()
    middle = middle.resample(out.tpq, min_dur=1) if middle.tpq != out.tpq else middle
    for track in out.tracks:
        _without_span(track, start, end)
    out.tracks.append(Track(label, 0, False))
    if middle.tracks and len(middle.tracks[0].notes):
        new = middle.tracks[0].notes.numpy()
        inside = new["time"] < end - start
        new = {k: v[inside] + (start if k == "time" else 0) for k, v in new.items()}
        out.tracks[-1].notes = Note.from_numpy(**new, ttype="tick")
    return out


def to_scores(run: Run, result: Infilled) -> list[Score]:
    """Each candidate's middle decoded from the span's bar line and spliced into the piece."""
    kinds = TokenKinds(run.representation)
    scores = []
    for new in result.new:
        middle = run.representation.decode([kinds.bar_id] + [int(t) for t in new if t < kinds.size])
        scores.append(splice(result.piece, middle, result.start, result.end, f"infill {result.first}-{result.last}"))
    result.scores = scores
    return scores


@torch.no_grad()
def infill(run: Run | str | Path, piece: str | Path, bars: tuple[int, int] | str, num: int = 1,
           sampling: Sampling | None = None, seed: int | None = None, constrained: bool = True,
           quiet: bool = False, log: Log | None = None,
           progress: Callable[[float, float], None] | None = None) -> Infilled:
    """``num`` candidates for bars ``bars`` (``(first, last)`` from 1, or ``"9-12"``) of the MIDI
    file ``piece``, regenerated by a run trained with infill given the music before and after
    them; ``sampling``, ``seed``, ``constrained``, ``quiet``, ``log`` and ``progress`` as for
    :func:`cadenza.generation.generate.generate`. ``Infilled.scores`` holds the spliced pieces."""
    run = run if isinstance(run, Run) else load_run(run)
    marks = check_infill_run(run)
    first, last = parse_bars(bars) if isinstance(bars, str) else bars
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    sampling = (sampling or Sampling()).over(run.config)
    _check(num, last - first + 1, "bars", seed, None)
    score = read_piece(piece)
    start, end = span_ticks(score, first, last, piece)
    kinds = TokenKinds(run.representation)
    prompt = infill_prompt(run, kinds, merge_piano(score), first, start, end, marks)
    _check_batch(num, len(prompt), last - first + 1, "bars", "piece")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    rules = _rules(run, kinds, True) if constrained else TokenRules(None, kinds, None, ())
    pieces = [_Piece(_SpanRules(rules, kinds, marks), _meter(run, kinds, last - first + 1, "bars", [kinds.bar_id]),
                     prompt) for _ in range(num)]
    tracker = _Progress(sum(p.meter.length for p in pieces), "bars", quiet, log, progress)
    try:
        _sample(run, np.repeat(prompt[None, :], num, axis=0), pieces, sampling, gen, tracker)
    finally:
        tracker.close()
    warnings = _cap_warnings([k for k, p in enumerate(pieces) if p.meter.capped], [p.meter.progress for p in pieces],
                             [p.new for p in pieces], "bars", "candidate")
    for line in warnings:
        log(f"warning: {line}")
    result = Infilled(score, first, last, start, end, [np.asarray(p.new, dtype=np.int64) for p in pieces],
                      warnings=warnings)
    to_scores(run, result)
    return result
