"""Accompany: a piano part composed under a given melody (``cadenza accompany RUN melody.mid``),
the melody kept note for note. The pipeline::

    melody     read_melody     the file's one track with notes, or the one ``melody_track`` names
    notes due  melody_notes    each melody note as the tokens the run writes it with: its bar,
                               its Position, its Pitch, Velocity and Duration
    context    _context        a piece's start; the melody's tempo and time signature kept in force
    lookahead  lookahead_blocks with a run trained with lookahead, each bar's melody as a block
                               the model reads before the bar (:mod:`cadenza.data.lookahead`)
    sampling   generate._sample the run's rules and :class:`_MelodyRules`: the model writes the
                               whole piano texture bar by bar, and each melody note where it falls;
                               :class:`_MelodyFit` keeps the accompaniments the melody fits
    output     to_scores       the melody's own track, unchanged, and the new notes (the melody's
                               tokens taken out) as an accompaniment track, on its tempo map

The model was trained on whole piano arrangements (POP909's melody, bridge and piano tracks
merged), so it knows how a melody and the hands under it go together; here the melody's notes
are its own tokens, forced where they fall, and the model writes everything else. At a melody
note's onset it may first write the notes under it (a position's notes go up by pitch, as in
training); what it would do instead of reaching the melody note (move on in time, or write a
note above it) goes to the melody note. It never writes a Rest: a rest can cross a bar line
unseen, so time is followed by Bar and Position tokens alone. A run trained with lookahead
learned to read each bar's top line before the bar; here the melody is that line, so the model
knows where the melody goes for the whole bar it writes.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
from symusic import Score, Track

from ..data.bars import bar_lines, bars_before, cut
from ..data.corpus.reader import merge_piano
from ..data.layouts import lookahead_id, model_vocab
from ..data.lookahead import Note, Tables, block, has_lookahead, top_line
from ..data.token_stats import TEMPO, TIMESIG, TokenKinds
from ..errors import CadenzaError
from ..rundir import Run, load_run
from . import steer as steering
from .generate import Log, _cap_warnings, _check, _check_batch, _meter, _Piece, _Progress, _sample
from .infill import read_piece
from .particles import Particles
from .sampling import Sampling, TokenRules


# particles per candidate and melody notes between resamplings, chosen on 6 POP909 validation songs
# (chord support 0.42x the real accompaniments' with 8 and 1; 0.23x with 8 and 2, 0.26x with 16 and 1)
PARTICLES, EVERY = 8, 1


class Due(NamedTuple):
    """One melody note as the run's tokens: in bar ``bar`` (from 0) at ``position``, the ids of
    its Position, Pitch, Velocity and Duration, and its pitch."""
    bar: int
    position: int
    position_id: int
    pitch: int
    ids: tuple[int, int, int]


@dataclass
class Accompanied:
    """The melody read, its length in bars, the notes due, each candidate's new token ids and
    the pieces written (melody track and accompaniment track)."""
    melody: Score
    bars: int
    due: list[Due]
    new: list[np.ndarray]
    forced: list[np.ndarray] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# -- the melody ----------------------------------------------------------------------------------
def read_melody(path: str | Path, melody_track: str | None = None) -> Score:
    """The melody of a MIDI file as a one-track score (tempos, time and key signatures kept):
    its one track with notes, or the track ``melody_track`` names (a name, or a number from 1)."""
    score = read_piece(path, "accompany")
    tracks = [t for t in score.tracks if len(t.notes) and not t.is_drum]
    if melody_track is not None:
        chosen = [t for n, t in enumerate(score.tracks, 1) if melody_track in (t.name, str(n))]
        if not chosen:
            names = ", ".join(f"{n} {t.name!r}" for n, t in enumerate(score.tracks, 1))
            raise CadenzaError(f"{path} has no track {melody_track!r} (its tracks: {names})")
        tracks = [t for t in chosen if len(t.notes)]
        if not tracks:
            raise CadenzaError(f"track {melody_track!r} of {path} has no notes")
    if not tracks:
        raise CadenzaError(f"{path} has no notes to accompany")
    if len(tracks) > 1:
        names = ", ".join(repr(t.name or f"track {n}") for n, t in enumerate(tracks, 1))
        raise CadenzaError(f"{path} has {len(tracks)} tracks with notes ({names}); "
                           f"say which is the melody with --melody-track NAME")
    melody = score.copy()
    melody.tracks = [tracks[0].copy()]
    return melody


def _token_tables(kinds: TokenKinds) -> dict[str, np.ndarray]:
    """Per token id: its Pitch and Position values (-1: none), whether it is a Bar or a Rest."""
    return {"pitch": kinds.numbers("Pitch"), "position": kinds.numbers("Position"),
            "bar": kinds.count("Bar") > 0, "rest": kinds.count("Rest") > 0}


def melody_notes(rep, kinds: TokenKinds, melody: Score) -> list[Due]:
    """Each note of ``melody`` as the tokens the run writes it with, in the order it writes
    them; its bar from the tokens decoded (a rest may cross a bar line without a Bar token)."""
    tables = _token_tables(kinds)
    ids = [int(i) for i in rep.encode(melody)]
    names = [kinds.parts[i] for i in ids]
    if any(len(p) != 1 for p in names):
        raise CadenzaError("accompany needs a run whose tokens are single events (no BPE)")
    decoded = rep.decode(ids)
    notes = decoded.tracks[0].notes.numpy()
    order = np.lexsort((notes["pitch"], notes["time"]))
    due, position_id, k = [], None, 0
    for n, token in enumerate(ids):
        if tables["position"][token] >= 0:
            position_id = token
        elif tables["pitch"][token] >= 0 and n + 2 < len(ids) and k < len(order):
            tick = int(notes["time"][order[k]])
            due.append(Due(bars_before(decoded, tick + 1) - 1, int(tables["position"][position_id]), position_id,
                           int(tables["pitch"][token]), (token, ids[n + 1], ids[n + 2])))
            k += 1
    return due


# -- the rules ----------------------------------------------------------------------------------
class _MelodyRules:
    """The run's rules, no Rest, and the melody's notes where they fall; the accompaniment under
    the melody note to come, the notes of one position going up by pitch (as MidiTok writes
    them); with ``blocks`` (a run trained with lookahead) each bar's block after its Bar token.
    A state is (the run's rules' state, melody notes written, bar, position, tokens of the
    current melody note still to come, the highest pitch written at this position, tokens of
    the bar's lookahead block still to come)."""

    def __init__(self, rules: TokenRules, kinds: TokenKinds, due: list[Due], blocks: list[list[int]] = (),
                 width: int | None = None) -> None:
        self.rules, self.due, self.size, self.blocks = rules, due, kinds.size, blocks
        self.width = width or kinds.size
        tables = _token_tables(kinds)
        self.pitch, self.position, self.bar = tables["pitch"], tables["position"], tables["bar"]
        self.free = ~tables["rest"]

    def start(self, context: np.ndarray) -> tuple:
        return self.rules.start(context), 0, 0, -1, (), -1, self._block(0)

    def _block(self, bar: int) -> tuple:
        return tuple(self.blocks[bar]) if bar < len(self.blocks) else ()

    def advance(self, state: tuple, token: int) -> tuple:
        inner, written, bar, position, coming, low, ahead = state
        if ahead:  # the lookahead block: read by the model, not the piece's music
            return inner, written, bar, position, coming, low, ahead[1:]
        inner = self.rules.advance(inner, token)
        if coming:
            return inner, written + (len(coming) == 1), bar, position, coming[1:], low, ()
        if self.bar[token]:
            return inner, written, bar + 1, -1, (), -1, self._block(bar + 1)
        if self.position[token] >= 0:
            return inner, written, bar, int(self.position[token]), (), -1, ()
        low = max(low, int(self.pitch[token]))
        if written < len(self.due) and self._at(self.due[written], bar, position) \
                and token == self.due[written].ids[0]:
            return inner, written, bar, position, self.due[written].ids[1:], low, ()
        return inner, written, bar, position, (), low, ()

    @staticmethod
    def _at(note: Due, bar: int, position: int) -> bool:
        return (bar, position) == (note.bar, note.position)

    def _only(self, token: int) -> np.ndarray:
        mask = np.zeros(self.width, dtype=bool)
        mask[token] = True
        return mask

    def _wide(self, mask: np.ndarray) -> np.ndarray:
        return np.concatenate([mask, np.zeros(self.width - len(mask), dtype=bool)])

    def _next_step(self, note: Due, bar: int, position: int) -> int:
        """The token that brings the piece to the melody note soonest."""
        if bar < note.bar:
            return int(np.flatnonzero(self.bar)[0])
        return note.ids[0] if position == note.position else note.position_id

    def allowed(self, state: tuple) -> np.ndarray:
        inner, written, bar, position, coming, low, ahead = state
        if ahead or coming:
            return self._only((ahead or coming)[0])
        mask = self.rules.allowed(inner) & self.free & ~((self.pitch >= 0) & (self.pitch <= low))  # up by pitch
        if written < len(self.due):
            note = self.due[written]
            mask &= ~(self.pitch > note.pitch)  # the accompaniment stays under the melody
            if bar == note.bar:
                mask = mask & ~self.bar & ~(self.position > note.position)
        if mask.any():
            return self._wide(mask)
        if written < len(self.due):
            return self._only(self._next_step(self.due[written], bar, position))
        return self._wide(self.rules.allowed(inner))

    def redirect(self, state: tuple, allowed: np.ndarray):
        """What would pass the due melody note (a Bar, a later Position, a higher pitch) goes
        to the token that reaches it."""
        inner, written, bar, position, coming, _, ahead = state
        allowed = allowed[:self.size]
        if ahead:
            return None
        if coming or written >= len(self.due) or bar != self.due[written].bar:
            return self.rules.redirect(inner, allowed)
        note = self.due[written]
        past = np.flatnonzero(self.bar | (self.position > note.position) |
                              ((self.pitch > note.pitch) if position == note.position else False))
        target = self._next_step(note, bar, position)
        if not allowed[target]:
            return self.rules.redirect(inner, allowed)
        return past, np.full(len(past), target)

    def melody_tokens(self, context: np.ndarray, new) -> np.ndarray:
        """Which of ``new`` are the melody's notes (their Pitch, Velocity and Duration) or a
        lookahead block's."""
        state, out = self.start(context), np.zeros(len(new), dtype=bool)
        for n, token in enumerate(new):
            state_after = self.advance(state, int(token))
            out[n] = bool(state[6]) or bool(state[4]) or bool(state_after[4])
            state = state_after
        return out


def lookahead_blocks(run: Run, due: list[Due], bars: int) -> list[list[int]]:
    """Each bar's lookahead block of the melody's notes, for a run trained with lookahead
    (:mod:`cadenza.data.lookahead`: the top line it learned from is the melody here); else none."""
    if not has_lookahead(run.config):
        return []
    tables, top = Tables(run.representation), lookahead_id(run.representation)
    notes = [[] for _ in range(bars)]
    for d in due:
        notes[d.bar].append(Note(d.position, d.pitch, int(tables.length[d.ids[2]]), (d.position_id, d.ids[0], d.ids[2])))
    return [block(top_line(bar), top) for bar in notes]


# -- the particles ------------------------------------------------------------------------------
class _MelodyFit(Particles):
    """Particles resampled every ``every`` melody notes by how likely the model found those notes
    after what each particle wrote (the log-probability of each melody note's Pitch when it was
    due; with lookahead, of its Pitch in the bar's block, before the model read it): the
    accompaniments that lead where the melody goes are kept (the melody is the evidence).
    Chosen on 16 POP909 validation songs with a lookahead fine-tune: the block's pitches 0.64x
    the real chord support, the block's pitches and positions 0.62x, the notes as they fall
    0.61x (docs/benchmarks.md, "Lookahead")."""

    def observe(self, piece, logp: torch.Tensor) -> None:
        coming, ahead = piece.state[4], piece.state[6]
        # the melody note's Pitch was just written, or a lookahead block's (TOP (Position Pitch
        # Duration)* PLAY: after a Pitch, 3k + 2 tokens are left): with lookahead the model knows
        # the bar's melody when it reaches its notes, and the evidence is how it foresaw the block
        if len(coming) == 2 or len(ahead) % 3 == 2:
            piece.scores.append(float(logp[piece.new[-1]]))


# -- the candidates ----------------------------------------------------------------------------
def _forced_globals(kinds: TokenKinds, melody: Score) -> dict[str, str]:
    """The melody's first tempo's bin and its time signature, where the tokens have them."""
    forced = {}
    tempo = steering.tempo_token(kinds, float(melody.tempos[0].qpm) if len(melody.tempos) else 120.0)
    if tempo:
        forced[TEMPO] = tempo[1]
    sig = melody.time_signatures[0] if len(melody.time_signatures) else None
    name = f"{sig.numerator}/{sig.denominator}" if sig else "4/4"
    if any(name in vs for vs in kinds.values(TIMESIG)):
        forced[TIMESIG] = name
    return forced


def _context(run: Run, kinds: TokenKinds, num: int) -> np.ndarray:
    """A piece's start (BOS, its first Bar): the model takes its key, register and texture from
    the melody alone. Measured on POP909 validation songs against training windows in the
    melody's key (docs/benchmarks.md, "Accompaniment"): those brought their own texture, about
    3x the notes of the real accompaniments; a start brings 1-1.5x."""
    start = [t for t in (run.representation.bos_id, kinds.bar_id) if t is not None]
    return np.array([start] * num, dtype=np.int64)


@torch.no_grad()
def accompany(run: Run | str | Path, melody: str | Path, num: int = 1, melody_track: str | None = None,
              sampling: Sampling | None = None, seed: int | None = None, quiet: bool = False,
              log: Log | None = None, progress: Callable[[float, float], None] | None = None,
              particles: int = PARTICLES, every: int = EVERY) -> Accompanied:
    """``num`` accompaniments composed under the melody of the MIDI file ``melody`` (its one
    track with notes, or ``melody_track``); ``sampling``, ``seed``, ``quiet``, ``log`` and
    ``progress`` as for :func:`cadenza.generation.generate.generate`. ``Accompanied.scores``
    holds the pieces: the melody's track unchanged and an accompaniment track."""
    run = run if isinstance(run, Run) else load_run(run)
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    sampling = (sampling or Sampling()).over(run.config)
    kinds = TokenKinds(run.representation)
    if kinds.bar_id is None or not kinds.count("Position").any():
        raise CadenzaError(f"accompany needs a run whose tokens have bars and positions (REMI); "
                           f"{run.directory} uses {run.config.representation}")
    score = read_melody(melody, melody_track)
    merged = merge_piano(score)  # the corpus's reading: piano range, a metre that can be one
    if not len(merged.tracks[0].notes):
        raise CadenzaError(f"{melody} has no notes within the piano's range")
    due = melody_notes(run.representation, kinds, merged)
    bars = max(d.bar for d in due) + 1
    _check(num, bars, "bars", seed, None)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    context = _context(run, kinds, num)
    _check_batch(num * particles, context.shape[1], bars, "bars", "context")
    stats = run.token_stats or {}
    rules = _MelodyRules(TokenRules(run.representation.grammar(), kinds, stats.get("seen"), (),
                                    _forced_globals(kinds, merged)), kinds, due, lookahead_blocks(run, due, bars),
                         model_vocab(run.config, run.representation))
    pieces = [_Piece(rules, _meter(run, kinds, bars, "bars", [kinds.bar_id]), c, group=n // particles)
              for n, c in enumerate(np.repeat(context, particles, axis=0))]
    tracker = _Progress(num * bars, "bars", quiet, log, progress, per=particles)
    fit = _MelodyFit(particles, every, rng) if particles > 1 else None
    try:
        _sample(run, np.repeat(context, particles, axis=0), pieces, sampling, gen, tracker,
                fit)
    finally:
        tracker.close()
    pieces = fit.best(pieces, num) if fit else pieces
    warnings = _cap_warnings([k for k, p in enumerate(pieces) if p.meter.capped], [p.meter.progress for p in pieces],
                             [p.new for p in pieces], "bars", "accompaniment")
    for line in warnings:
        log(f"warning: {line}")
    result = Accompanied(score, bars, due, [np.asarray(p.new, dtype=np.int64) for p in pieces],
                         [rules.melody_tokens(c, p.new) for c, p in zip(context, pieces)], warnings=warnings)
    to_scores(run, result)
    return result


def to_scores(run: Run, result: Accompanied) -> list[Score]:
    """Each candidate: the melody's track as it was read and the new notes but the melody's,
    on the melody's tempo map and time signatures, up to the end of its last bar."""
    rep, kinds = run.representation, TokenKinds(run.representation)
    melody = result.melody
    end = int(bar_lines(merge_piano(melody), melody.end(), min_bars=result.bars)[result.bars])
    scores = []
    for new, forced in zip(result.new, result.forced):
        decoded = rep.decode([kinds.bar_id] + [int(t) for t, f in zip(new, forced) if not f])
        decoded = cut(decoded.resample(melody.tpq, min_dur=1), end)
        piece = melody.copy()
        part = Track("Accompaniment", 0, False)
        part.notes = decoded.tracks[0].notes.copy() if decoded.tracks else part.notes
        part.pedals = decoded.tracks[0].pedals.copy() if decoded.tracks else part.pedals
        piece.tracks = [melody.tracks[0].copy(), part]
        scores.append(piece)
    result.scores = scores
    return scores
