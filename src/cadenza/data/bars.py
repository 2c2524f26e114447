"""Bars and seconds in a symusic ``Score``: where its bar lines fall, and the score cut at
a bar or a second. Generation measures and trims its lengths with these, and evaluation
lays out its bars with the same :func:`bar_lines`."""
from __future__ import annotations

import math

import numpy as np
from symusic import Note, Score

from .corpus.meter import trusted_time_signatures
from .corpus.pedal import pedal_spans, set_pedals


def trusted_signatures(score: Score) -> list[tuple[int, int, int]]:
    """(tick, numerator, denominator) of the time signatures of a tick-time score, in time order.

    As the corpus reads files (:func:`cadenza.data.corpus.meter.trusted_time_signatures`), a score
    with a signature that cannot be the metre (numerator 1: POP909's 1/4 for 4/4 music, 1/8)
    is in 4/4 throughout. 4/4 also runs from tick 0 until the first signature; of several
    signatures at one tick the last wins.
    """
    sigs = {0: (4, 4)}
    for ts in sorted(trusted_time_signatures(score).time_signatures, key=lambda ts: ts.time):
        sigs[int(ts.time)] = (int(ts.numerator), max(1, int(ts.denominator)))
    return [(t, num, den) for t, (num, den) in sorted(sigs.items())]


def bar_lines(score: Score, end: int, min_bars: int = 1) -> np.ndarray:
    """Bar lines in ticks of a tick-time score, from its :func:`trusted_signatures`.

    The start of every bar that starts before tick ``end``, and of more bars where that makes
    fewer than ``min_bars``; then the end of the last of them. A signature change off a bar
    line starts a new bar there.
    """
    sigs = trusted_signatures(score)
    lines = []
    for i, (t0, num, den) in enumerate(sigs):
        length = max(1, round(score.tpq * 4 * num / den))
        # the last signature runs one bar past the end, so the bar line closing the last bar is there
        stop = sigs[i + 1][0] if i + 1 < len(sigs) else max(end, t0 + 1) + length * max(1, min_bars)
        lines.append(np.arange(t0, stop, length))
    out = np.concatenate(lines).astype(np.int64)
    return out[: max(1, min_bars, int(np.searchsorted(out, end))) + 1]


def bars_before(score: Score, tick: int) -> int:
    """How many bars start before ``tick``."""
    return int(np.searchsorted(bar_lines(score, tick), tick))


def bar_tick(score: Score, bars: float) -> int:
    """The tick ``bars`` bars into ``score`` (a fraction reaches into the next bar)."""
    lines = bar_lines(score, 0, min_bars=int(bars) + 1)
    start, following = int(lines[int(bars)]), int(lines[int(bars) + 1])
    return start + round((bars - int(bars)) * (following - start))


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
    """``score`` before tick ``end``, notes and pedals that last past it shortened to end there."""
    out = score.clip(0, end, clip_end=False)
    for track in out.tracks:
        cols = track.notes.numpy()
        if len(cols["time"]):
            cols["duration"] = np.minimum(cols["duration"], end - cols["time"])
            track.notes = Note.from_numpy(**cols, ttype="tick")
        if len(track.pedals):  # a pedal down at the cut lifts there
            starts, ends = pedal_spans([track])
            set_pedals(track, starts, np.minimum(ends, end))
    return out


def cut_to_length(score: Score, length: float | None, unit: str) -> Score:
    """``score`` cut at ``length`` bars or seconds (``unit="tokens"``: as it is)."""
    if unit == "tokens" or not length:
        return score
    return cut(score, bar_tick(score, length) if unit == "bars" else tick_at_seconds(score, length))
