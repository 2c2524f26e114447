"""Shared helpers: load a score, merge its non-drum notes, and lay out its bars.

All musical times here are in *beats* (quarter notes), taken from ``score.to("quarter")``.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Union

import numpy as np
import symusic

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
    s = score if unit == "tick" and score.ttype == symusic.TimeUnit.tick else score.to(unit)
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


def bar_starts(score: symusic.Score, end_beats: float | None = None) -> np.ndarray:
    """Bar start times in beats from the score's time signatures (4/4 where none is given).

    Lists every bar that starts before ``end_beats`` (default: the end of the last note);
    always at least one bar.
    """
    q = score.to("quarter")
    if end_beats is None:
        notes = merged_notes(score)
        end_beats = float((notes["time"] + notes["duration"]).max()) if len(notes["time"]) else 0.0
    end_beats = max(float(end_beats), 0.0)
    sigs = sorted(((float(ts.time), int(ts.numerator), int(ts.denominator)) for ts in q.time_signatures))
    if not sigs or sigs[0][0] > 0:
        sigs.insert(0, (0.0, 4, 4))
    starts: list[np.ndarray] = []
    for i, (t0, num, den) in enumerate(sigs):
        seg_end = sigs[i + 1][0] if i + 1 < len(sigs) else max(end_beats, t0 + 1e-9)
        if seg_end <= t0:
            continue
        # a change that does not fall on a bar line cuts the bar short: a new bar starts there
        length = num * 4.0 / den if num > 0 and den > 0 else 4.0
        n = max(int(np.ceil((seg_end - t0) / length - 1e-9)), 1)
        starts.append(t0 + length * np.arange(n))
    out = np.unique(np.concatenate(starts)) if starts else np.zeros(1)
    keep = out < end_beats - 1e-9
    keep[0] = True
    return out[keep]


def bar_index(times: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """0-based bar number of each time (beats) given the bar starts."""
    return np.searchsorted(starts, np.asarray(times, dtype=np.float64) + 1e-6, side="right") - 1
