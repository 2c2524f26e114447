"""The sustain pedal (MIDI controller 64): read, merged across tracks, written, and applied.

symusic reads a track's CC 64 messages into ``track.pedals`` (down at value >= 64) but does
not write ``pedals`` back to a MIDI file: a score here keeps its pedal both ways, as
``pedals`` (to compute with) and as CC 64 controls (127 down, 0 up: what is written).

:func:`sustain` applies the pedal to the notes instead: a key released while the pedal is
down sounds until the pedal lifts (or until the same key is struck again). The grid
representations use it when tracks are merged (their tokens hold no pedal, and what the
listener hears is kept); the ``performance`` representation keeps the pedal as tokens.
"""
from __future__ import annotations

import numpy as np
from symusic import ControlChange, Note, Pedal, Score, Track

SUSTAIN_CC = 64


def pedal_spans(tracks) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) in ticks of the pedal-down spans of ``tracks``, sorted and overlapping
    spans joined (two tracks pedalling at once are one pedal)."""
    arrays = [t.pedals.numpy() for t in tracks if len(t.pedals)]
    if not arrays:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    start = np.concatenate([a["time"] for a in arrays]).astype(np.int64)
    end = start + np.concatenate([a["duration"] for a in arrays]).astype(np.int64)
    order = np.argsort(start, kind="stable")
    start, end = start[order], np.maximum.accumulate(end[order])
    # a span starting at or before the furthest end so far continues the pedal before it
    first = np.ones(len(start), dtype=bool)
    first[1:] = start[1:] > end[:-1]
    group = np.cumsum(first) - 1
    ends = np.zeros(group[-1] + 1, np.int64)
    np.maximum.at(ends, group, end)
    return start[first], ends


def set_pedals(track: Track, starts: np.ndarray, ends: np.ndarray) -> None:
    """Give ``track`` these pedal spans, as ``pedals`` and as CC 64 controls (its other
    CC 64 messages replaced)."""
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    track.pedals = Pedal.from_numpy(time=starts.astype(np.int32), duration=(ends - starts).astype(np.int32),
                                    ttype="tick")
    others = [c for c in track.controls if c.number != SUSTAIN_CC]
    marks = [ControlChange(int(t), SUSTAIN_CC, v) for s, e in zip(starts, ends) for t, v in ((s, 127), (e, 0))]
    track.controls = sorted(others + marks, key=lambda c: c.time)


def sustained_ends(onset: np.ndarray, end: np.ndarray, pitch: np.ndarray,
                   starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Where each note stops sounding: its release, or, released while the pedal is down,
    the pedal's lift, but no later than the next onset of the same key."""
    onset, end, pitch = (np.asarray(a, np.int64) for a in (onset, end, pitch))
    if not len(starts) or not len(end):
        return end.copy()
    k = np.searchsorted(starts, end, side="right") - 1
    held = (k >= 0) & (end < ends[np.maximum(k, 0)])
    lifted = np.where(held, ends[np.maximum(k, 0)], end)
    return np.where(held, np.minimum(lifted, np.maximum(next_strike(onset, pitch), end)), end)


def next_strike(onset: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """The next onset of the same key after each note (the int64 maximum for the last)."""
    onset, pitch = np.asarray(onset, np.int64), np.asarray(pitch, np.int64)
    order = np.lexsort((onset, pitch))
    restruck = np.full(len(onset), np.iinfo(np.int64).max)
    same = pitch[order][1:] == pitch[order][:-1]
    restruck[order[:-1][same]] = onset[order][1:][same]
    return restruck


def sustain(score: Score) -> Score:
    """A copy of a tick-time ``score`` whose notes last as the pedal holds them; its pedals
    (and CC 64 controls) removed."""
    out = score.copy()
    for track in out.tracks:
        starts, ends = pedal_spans([track])
        if len(starts) and len(track.notes):
            cols = track.notes.numpy()
            stop = sustained_ends(cols["time"], cols["time"] + cols["duration"], cols["pitch"], starts, ends)
            cols["duration"] = (stop - cols["time"]).astype(cols["duration"].dtype)
            track.notes = Note.from_numpy(**cols, ttype="tick")
        set_pedals(track, np.zeros(0), np.zeros(0))
    return out
