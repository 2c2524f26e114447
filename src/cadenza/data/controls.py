"""Density controls: a bar-level attribute token the model learns to follow (MMM's and
MidiTok's bar note density), so ``generate --density low|medium|high`` asks for sparse or busy
bars.

A run trained with ``controls`` above 0 (:class:`~cadenza.config.Config`: the share of training
windows that carry them) has :data:`LEVELS` density tokens after its tokenizer's vocabulary and
the three infill markers (ids ``V + 3`` to ``V + 3 + LEVELS - 1`` of a ``V``-token tokenizer,
whether or not the run trains infill, so no id moves between runs). In a window that carries
them, each Bar token is followed by the density token of the bar it opens: its number of notes
(Pitch tokens before the next Bar token) in one of the bins of :data:`EDGES`, about 20% wide
where the levels ask. A bar that the window does not close gets none. The density tokens are
read, never scored (their targets are ignored): the model learns to follow them, not to predict
them, and sampling without controls never writes one (the rules allow the tokenizer's tokens).
"""
from __future__ import annotations

import numpy as np

from ..errors import CadenzaError
from .fim import MARKERS
from .token_stats import TokenKinds

# bin k holds bars of EDGES[k - 1] <= notes < EDGES[k] (bin 0: empty bars; the last: 62 and more)
EDGES = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 17, 20, 24, 29, 35, 42, 51, 62)
LEVELS = len(EDGES) + 1
# notes per bar each level asks: POP909's 10th-25th, 50th and 85th percentile of notes per bar
# (200 songs, 18,315 bars with notes: 8, 12, 18, 24 at the 10th, 25th, 50th, 75th)
TARGETS = {"low": 10, "medium": 18, "high": 28}
DENSITY_HELP = "low, medium or high (about 10, 18 or 28 notes a bar)"


def has_controls(config) -> bool:
    return config.controls > 0


def first_id(rep) -> int:
    """The id of bin 0: after the tokenizer's vocabulary and the infill markers."""
    return rep.vocab_size + MARKERS


def level_token(rep, level: str) -> int:
    """The density token a level asks for (the bin its target falls in)."""
    if level not in TARGETS:
        raise CadenzaError(f"unknown density {level!r}: say {DENSITY_HELP}")
    return first_id(rep) + bin_of(TARGETS[level])


def bin_of(notes: int | np.ndarray):
    return np.searchsorted(EDGES, notes, side="right")


def closed_bars(window: np.ndarray, bars: np.ndarray, pitches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each bar of ``window`` starts (its Bar token) and the notes of each bar the window
    closes (all but the last). ``bars``/``pitches``: per id, Bar and Pitch tokens in it."""
    starts = np.flatnonzero(bars[window])
    notes = np.add.reduceat(pitches[window], starts)[:-1] if len(starts) > 1 else np.zeros(0, dtype=np.int64)
    return starts, notes


def with_density(window: np.ndarray, bars: np.ndarray, pitches: np.ndarray, first: int) -> np.ndarray:
    """``window`` with the density token of each bar it closes after that bar's Bar token, the
    length kept (the end gives way)."""
    starts, notes = closed_bars(window, bars, pitches)
    if not len(notes):
        return window
    pieces = [window[:starts[0] + 1]]
    for k, count in enumerate(notes):
        pieces += [[first + int(bin_of(count))], window[starts[k] + 1:starts[k + 1] + 1]]
    pieces.append(window[starts[-1] + 1:])
    return np.concatenate(pieces)[:len(window)]


class ControlLayout:
    """A share ``rate`` of the training windows with density tokens (:class:`~cadenza.data.fim.LaidWindows`)."""

    def __init__(self, rep, rate: float) -> None:
        kinds = TokenKinds(rep)
        if kinds.bars is None:
            raise CadenzaError(f"--controls needs bar tokens, and the {rep.name} representation has none; use REMI")
        pad = np.zeros(MARKERS + LEVELS, dtype=np.int64)
        self.bars, self.pitches = np.append(kinds.bars, pad), np.append(kinds.count("Pitch"), pad)
        self.rate, self.first = rate, first_id(rep)

    def __call__(self, windows: np.ndarray, rng: np.random.Generator) -> None:
        for k in np.flatnonzero(rng.random(len(windows)) < self.rate):
            windows[k] = with_density(windows[k], self.bars, self.pitches, self.first)

    def unscored(self) -> list[int]:
        return list(range(self.first, self.first + LEVELS))
