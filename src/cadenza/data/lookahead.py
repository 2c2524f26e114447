"""Melody lookahead: the top line of each bar, given before the bar, so that a model writing the
bar knows where the melody goes (``cadenza accompany`` with a run trained with it). As the
Anticipatory Music Transformer puts a given melody ahead of the music it accompanies, but a bar
at a time, and learned from any piano music: the top line is read off the notes themselves.

A run trained with ``lookahead`` above 0 (:class:`~cadenza.config.Config`: the share of training
windows laid out so) has two marker tokens, ``TOP`` and ``PLAY``, after the infill markers and
the density tokens (ids ``V + 3 + LEVELS`` and the next, so no id of a run without them moves).
In such a window each bar the window closes reads::

    Bar [density] TOP (Position Pitch Duration)* PLAY  the bar's own tokens

the block listing the bar's top line: at each onset the highest note, where no earlier note of
the top line still sounds above it (an accompaniment under a held melody note is not the top
line) and within an octave of the bar's highest (where the melody rests, the bass is not it).
``TOP`` is not scored (where a block is laid is drawn at random); the block and ``PLAY`` are, so
the model can also plan a bar's top line itself. The length of the window is kept.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import CadenzaError
from .token_stats import TokenKinds

MARKERS = 2  # TOP, PLAY
# the top line keeps the notes within this many semitones under the bar's highest: where the
# melody rests, the highest note sounding is often the bass or an inner voice
REGISTER = 12


class Note(NamedTuple):
    """A note of a bar: its onset (Position value), pitch, length (in positions), and the ids
    of its Position, Pitch and Duration tokens."""
    position: int
    pitch: int
    length: int
    ids: tuple[int, int, int]


def has_lookahead(config) -> bool:
    return config.lookahead > 0


def top_line(notes: list[Note]) -> list[Note]:
    """The top line of a bar's ``notes`` (in the order they are written): at each onset its
    highest note, unless a note of the line that started earlier still sounds above it, and
    none more than :data:`REGISTER` semitones under the bar's highest."""
    highest: dict[int, Note] = {}
    for note in notes:
        if note.position not in highest or note.pitch > highest[note.position].pitch:
            highest[note.position] = note
    line: list[Note] = []
    for position in sorted(highest):
        note = highest[position]
        if not any(n.position + n.length > position and n.pitch > note.pitch for n in line):
            line.append(note)
    ceiling = max((n.pitch for n in line), default=0)
    return [n for n in line if n.pitch >= ceiling - REGISTER]


def block(line: list[Note], top: int) -> list[int]:
    """The ids of a bar's lookahead block: ``TOP``, each note's Position, Pitch and Duration,
    ``PLAY`` (``top``: the ``TOP`` marker's id; ``PLAY`` follows it)."""
    return [top, *(i for note in line for i in note.ids), top + 1]


def outside_blocks(ids: np.ndarray, top: int) -> np.ndarray:
    """Which of ``ids`` are the music's: not in a lookahead block (``TOP`` through ``PLAY``)."""
    ids = np.asarray(ids)
    return np.cumsum(ids == top) - np.cumsum(np.concatenate([[0], ids[:-1] == top + 1])) == 0


class Tables:
    """Per token id of a run's tokenizer: its Position and Pitch value and its Duration in
    positions (-1: none), whether it opens a bar."""

    def __init__(self, rep) -> None:
        kinds = TokenKinds(rep)
        if kinds.bars is None or not kinds.count("Position").any() or not kinds.count("Duration").any():
            raise CadenzaError(f"--lookahead needs bar, position and duration tokens, and the {rep.name} "
                               "representation has not all of them; use REMI")
        if (kinds.count("Pitch") > 1).any():
            raise CadenzaError("--lookahead needs tokens that are single events (no BPE)")
        self.size = kinds.size
        self.bar = kinds.bars > 0
        self.position, self.pitch = kinds.numbers("Position"), kinds.numbers("Pitch")
        # positions per beat: the finest grid of the durations (the short ones' resolution)
        per_beat = max(int(v.split(".")[2]) for vs in kinds.values("Duration") for v in vs)
        self.length = kinds.numbers("Duration", lambda v: _positions(v, per_beat))

    def bar_notes(self, tokens: np.ndarray) -> list[Note]:
        """The notes of one bar's tokens (after its Bar token), in the order written."""
        notes, position_id = [], None
        for n, token in enumerate(tokens):
            if token >= self.size:
                continue
            if self.position[token] >= 0:
                position_id = int(token)
            elif self.pitch[token] >= 0 and position_id is not None:
                duration = next((int(t) for t in tokens[n + 1:n + 3] if t < self.size and self.length[t] >= 0), None)
                if duration is not None:
                    notes.append(Note(int(self.position[position_id]), int(self.pitch[token]),
                                      int(self.length[duration]), (position_id, int(token), duration)))
        return notes


def _positions(value: str, per_beat: int) -> int:
    """A MidiTok duration ``beats.part.resolution`` in positions of ``per_beat`` a beat."""
    beats, part, resolution = (int(x) for x in value.split("."))
    return round((beats + part / resolution) * per_beat)


def with_lookahead(window: np.ndarray, tables: Tables, top: int) -> np.ndarray:
    """``window`` with a lookahead block after each Bar token (and its density token, if
    one follows) of each bar it closes, the length kept (the end gives way)."""
    starts = np.flatnonzero(tables.bar[np.minimum(window, tables.size - 1)] & (window < tables.size))
    if len(starts) < 2:
        return window
    pieces = [window[:starts[0]]]
    for a, b in zip(starts[:-1], starts[1:]):
        head = a + 1 + int(a + 1 < b and window[a + 1] >= tables.size)  # Bar, and a density token
        pieces += [window[a:head], block(top_line(tables.bar_notes(window[head:b])), top), window[head:b]]
    pieces.append(window[starts[-1]:])
    return np.concatenate(pieces)[:len(window)]


class LookaheadLayout:
    """A share ``rate`` of the training windows with lookahead blocks
    (:class:`~cadenza.data.layouts.LaidWindows`); ``top``: the ``TOP`` marker's id."""

    def __init__(self, rep, rate: float, top: int) -> None:
        self.tables, self.rate, self.top = Tables(rep), rate, top

    def __call__(self, windows: np.ndarray, rng: np.random.Generator) -> None:
        for k in np.flatnonzero(rng.random(len(windows)) < self.rate):
            windows[k] = with_lookahead(windows[k], self.tables, self.top)

    def unscored(self) -> list[int]:
        return [self.top]
