"""Bars and seconds in a symusic ``Score``: where its bar lines fall, and the score cut at
a bar or a second (generation measures and trims its lengths with these)."""
from __future__ import annotations

import math
from itertools import takewhile
from typing import Iterator

import numpy as np
from symusic import Note, Score


def bar_lines(score: Score) -> Iterator[int]:
    """The ticks of ``score``'s bar lines, from 0 on, endless (4/4 before any signature)."""
    sigs = sorted(score.time_signatures, key=lambda ts: ts.time)
    tick, k, num, den = 0, 0, 4, 4
    while True:
        while k < len(sigs) and sigs[k].time <= tick:
            num, den, k = sigs[k].numerator, sigs[k].denominator, k + 1
        yield tick
        tick += max(1, score.tpq * 4 * num // den)


def bars_before(score: Score, tick: int) -> int:
    """How many bars start before ``tick``."""
    return sum(1 for _ in takewhile(lambda line: line < tick, bar_lines(score)))


def bar_tick(score: Score, bars: float) -> int:
    """The tick ``bars`` bars into ``score`` (a fraction reaches into the next bar)."""
    lines = bar_lines(score)
    for _ in range(int(bars)):
        next(lines)
    start = next(lines)
    return start + round((bars - int(bars)) * (next(lines) - start))


def score_bars(score: Score) -> float:
    """The length of ``score`` in bars of its first time signature."""
    ts = score.time_signatures
    num, den = (ts[0].numerator, ts[0].denominator) if len(ts) else (4, 4)
    return score.end() / (score.tpq * 4 * num / den)


def tick_at_seconds(score: Score, seconds: float) -> int:
    """The tick ``seconds`` into ``score`` under its tempo map (120 bpm before any tempo)."""
    changes = [(0, 500000)] + sorted((t.time, t.mspq) for t in score.tempos)
    elapsed = 0.0
    for (tick, mspq), (nxt, _) in zip(changes, changes[1:] + [(math.inf, 0)]):
        span = (nxt - tick) * mspq / 1e6 / score.tpq
        if elapsed + span >= seconds:
            return tick + round((seconds - elapsed) * 1e6 / mspq * score.tpq)
        elapsed += span
    raise AssertionError("unreachable: the last tempo lasts for ever")


def cut(score: Score, end: int) -> Score:
    """``score`` before tick ``end``, notes that ring past it shortened to end there."""
    out = score.clip(0, end, clip_end=False)
    for track in out.tracks:
        cols = track.notes.numpy()
        if len(cols["time"]):
            cols["duration"] = np.minimum(cols["duration"], end - cols["time"])
            track.notes = Note.from_numpy(**cols, ttype="tick")
    return out


def cut_to_length(score: Score, length: float | None, unit: str) -> Score:
    """``score`` cut at ``length`` bars or seconds (``unit="tokens"``: as it is)."""
    if unit == "tokens" or not length:
        return score
    return cut(score, bar_tick(score, length) if unit == "bars" else tick_at_seconds(score, length))
