"""Shared helpers: load a score, merge its non-drum notes, and lay out its bars.

All musical times here are in *beats* (quarter notes), taken from ``score.to("quarter")``, except
in :func:`bar_lines` and :func:`bar_contents`, which work in ticks.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Union

import numpy as np
import symusic

from cadenza.data.bars import bar_lines as shared_bar_lines
from cadenza.errors import CadenzaError

ScoreLike = Union[str, PathLike, symusic.Score]

_FIELDS = ("time", "duration", "pitch", "velocity")


def load_score(obj: ScoreLike) -> symusic.Score:
    """Return ``obj`` if it is a Score, else read it as a MIDI file (one-line error if unreadable)."""
    if isinstance(obj, symusic.Score):
        return obj
    path = Path(obj)
    if not path.is_file():
        raise CadenzaError(f"MIDI file not found: {path}")
    try:
        return symusic.Score(str(path))
    except Exception as exc:  # symusic raises plain RuntimeError/ValueError on bad files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CadenzaError(f"cannot read MIDI file {path}: {msg}") from None


def merged_notes(score: symusic.Score, unit: str = "quarter") -> dict[str, np.ndarray]:
    """All notes of the non-drum tracks as float arrays ``time, duration, pitch, velocity``.

    ``unit`` is ``"quarter"`` (beats), ``"second"`` or ``"tick"``. Notes are sorted by onset,
    then pitch (the order used for intervals and transitions).
    """
    s = in_ticks(score) if unit == "tick" else score.to(unit)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _FIELDS}
    for track in s.tracks:
        if track.is_drum or len(track.notes) == 0:
            continue
        arr = track.notes.numpy()
        for k in _FIELDS:
            parts[k].append(np.asarray(arr[k], dtype=np.float64))
    out = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in parts.items()}
    order = np.lexsort((out["pitch"], out["time"]))
    return {k: v[order] for k, v in out.items()}


def in_ticks(score: symusic.Score) -> symusic.Score:
    """``score`` in tick time (converted only when it is not)."""
    return score if score.ttype == symusic.TimeUnit.tick else score.to("tick")


def bar_lines(score: symusic.Score, end: int | None = None, min_bars: int = 1) -> np.ndarray:
    """:func:`cadenza.data.bars.bar_lines` of a tick-time score, ``end`` defaulting to the end of
    its last note."""
    if end is None:
        notes = merged_notes(score, "tick")
        end = int((notes["time"] + notes["duration"]).max()) if len(notes["time"]) else 0
    return shared_bar_lines(score, end, min_bars)


def bar_starts(score: symusic.Score, end_beats: float | None = None) -> np.ndarray:
    """Bar start times in beats (see :func:`bar_lines`): every bar that starts before
    ``end_beats`` (default: the end of the last note); always at least one bar."""
    ticks = in_ticks(score)
    end = None if end_beats is None else int(np.ceil(max(float(end_beats), 0.0) * ticks.tpq - 1e-6))
    return bar_lines(ticks, end)[:-1] / ticks.tpq


def bar_contents(score: symusic.Score, steps_per_beat: int = 12,
                 min_bars: int = 1) -> tuple[list[frozenset], np.ndarray]:
    """The bars of :func:`bar_lines` (to the end of the last note, at least ``min_bars``), each
    as the set of its notes' ``(onset step within the bar, pitch)`` on a grid of
    ``steps_per_beat`` steps a beat, and each bar's number of steps (48 for 4/4 at 12 a beat)."""
    score = in_ticks(score)
    lines = bar_lines(score, min_bars=min_bars)
    notes = merged_notes(score, "tick")
    per_tick = steps_per_beat / score.tpq
    steps = np.maximum(1, np.round(np.diff(lines) * per_tick)).astype(np.int64)
    idx = np.searchsorted(lines, notes["time"], side="right") - 1
    pos = np.minimum(np.round((notes["time"] - lines[idx]) * per_tick), steps[idx] - 1).astype(np.int64)
    bars: list[set] = [set() for _ in steps]
    for b, k, pitch in zip(idx, pos, notes["pitch"].astype(np.int64)):
        bars[b].add((int(k), int(pitch)))
    return [frozenset(b) for b in bars], steps
