"""Does a file look played rather than typeset? Then a beat-grid representation misreads it.

A performance recorded from a keyboard (a Disklavier, a digital piano) keeps the one nominal
tempo the recorder wrote (often 120 bpm) while the player's tempo moves, so its onsets fall
off any grid of that tempo; it often carries sustain-pedal events too. A typeset file puts
most onsets on a 32nd-note or 8th-triplet grid of its beats (a generated REMI piece on the
32nds of its 8 positions a beat).
"""
from __future__ import annotations

import numpy as np
from symusic import Score

GRID_SHARE = 0.8
_TOLERANCE = 1 / 64
SUGGESTED = "performance"


def is_quantised(onsets_beats: np.ndarray) -> bool:
    """True if at least GRID_SHARE of the onsets lie within 1/64 beat of a 32nd or
    8th-triplet position of the beat (a random onset does so with a probability of ~0.33)."""
    if len(onsets_beats) == 0:
        return True
    frac = np.mod(onsets_beats, 1.0)
    eighths, thirds = frac * 8, frac * 3  # the grid is the eighths and the thirds of a beat
    dist = np.minimum(np.abs(eighths - np.round(eighths)) / 8, np.abs(thirds - np.round(thirds)) / 3)
    return bool(np.mean(dist <= _TOLERANCE + 1e-9) >= GRID_SHARE)


def performance_signs(score: Score) -> tuple[bool, int]:
    """(looks performed, pedal events) of a merged tick-time piano score: performed when its
    onsets are off the beat grid under a single nominal tempo."""
    track = score.tracks[0]
    one_tempo = len({round(t.qpm, 3) for t in score.tempos}) <= 1
    return bool(one_tempo and not _on_grid(track.notes.numpy()["time"], score.tpq)), len(track.pedals)


def _on_grid(ticks: np.ndarray, tpq: int) -> bool:
    """:func:`is_quantised` of onsets in ticks, at once when every one lies exactly on a
    16th or 8th-triplet tick (a beat of a multiple of 12 ticks)."""
    if tpq % 12 == 0 and tpq > 0 and ((ticks % (tpq // 4) == 0) | (ticks % (tpq // 3) == 0)).all():
        return True
    return is_quantised(ticks / max(1, tpq))


def suggestion(performed: int, files: int, pedals: int, representation: str) -> str:
    """One line suggesting the performance representation when at least half the files look
    performed and a grid representation was chosen; else ''."""
    if representation == SUGGESTED or not files or 2 * performed < files:
        return ""
    pedal = f", {pedals:,} sustain-pedal events" if pedals else ""
    return (f"this corpus looks performed ({performed} of {files} files: onsets off the beat grid under "
            f"one nominal tempo{pedal}); the {representation} representation lays it on a grid: "
            f"consider --representation performance")
