"""Musical sanity measures of one piece (all non-drum tracks merged; times in beats).

``scale_consistency``
    max over the 24 major and natural-minor scales of the share of notes whose pitch class is in
    the scale (1.0 = every note fits one key); ``best_scale`` names it (major wins ties).
``polyphony``
    mean, over the distinct onset times, of the number of notes sounding at that instant
    (notes with ``start <= t < end``, the ones starting at ``t`` included): 1.0 for a melody,
    3.0 for block triads.
``repeated_4bar_share``
    bars come from the score's time signatures (4/4 where none is given, and throughout a score
    with a numerator 1, as POP909's 1/4 for 4/4 music: :func:`cadenza.data.bars.trusted_signatures`); each
    bar is represented by the set of its notes' (onset in bar rounded to 1/12 beat, pitch). Over
    the windows of 4 consecutive bars (hop one bar) from the first to the last bar holding an
    onset, the share of windows equal to an earlier window. NaN for pieces shorter than 4 bars.
``longest_repeat_run``
    longest run of consecutive identical onset groups (the sorted pitches starting at one onset,
    i.e. the same note or chord repeated); :func:`longest_run` does the same for any sequence,
    e.g. token ids.
``empty_bar_rate``
    share of the bars from the first to the last onset that hold no onset.

Of a set of pieces against real ones (:func:`duration_checks`, in seconds): the share of notes
longer than the real notes' 99.9th-percentile duration (a stuck note, one never released, is
far longer), and the overlap of the two duration histograms (log-spaced bins, 1 = the same).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cadenza.evaluate.features import PITCH_NAMES
from cadenza.data.scores import ScoreLike, bar_contents, load_score, merged_notes

MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10])

MEASURES = {
    "scale_consistency": "scale consistency",
    "polyphony": "polyphony (notes sounding per onset)",
    "repeated_4bar_share": "repeated 4-bar patterns (share)",
    "longest_repeat_run": "longest run of one repeated note/chord",
    "empty_bar_rate": "empty-bar rate",
}


def _scales() -> tuple[np.ndarray, list[str]]:
    masks, names = [], []
    for mode, steps in (("major", MAJOR), ("minor", MINOR)):
        for root in range(12):
            m = np.zeros(12, dtype=bool)
            m[(root + steps) % 12] = True
            masks.append(m)
            names.append(f"{PITCH_NAMES[root]} {mode}")
    return np.array(masks), names


_SCALE_MASKS, _SCALE_NAMES = _scales()


def scale_consistency(pitches: np.ndarray) -> tuple[float, str]:
    """(best share of notes in one scale, that scale's name); (nan, "") without notes."""
    pitches = np.asarray(pitches, dtype=np.int64)
    if len(pitches) == 0:
        return math.nan, ""
    hist = np.bincount(pitches % 12, minlength=12)
    shares = (_SCALE_MASKS * hist).sum(axis=1) / len(pitches)
    best = int(np.argmax(shares))
    return float(shares[best]), _SCALE_NAMES[best]


def polyphony(onsets: np.ndarray, offsets: np.ndarray) -> float:
    """Mean number of notes sounding at each distinct onset time."""
    if len(onsets) == 0:
        return math.nan
    t = np.unique(onsets)
    starts, ends = np.sort(onsets), np.sort(offsets)
    sounding = np.searchsorted(starts, t + 1e-9, side="right") - np.searchsorted(ends, t + 1e-9, side="right")
    return float(np.mean(sounding))


def longest_run(seq: Sequence) -> int:
    """Length of the longest run of consecutive equal items (0 for an empty sequence)."""
    best = run = 0
    prev = object()
    for item in seq:
        run = run + 1 if item == prev else 1
        prev = item
        best = max(best, run)
    return best


def onset_groups(onsets: np.ndarray, pitches: np.ndarray) -> list[tuple[int, ...]]:
    """Sorted pitches of each distinct onset time, in time order (input sorted by onset)."""
    if len(onsets) == 0:
        return []
    key = np.round(onsets, 6)
    cuts = np.flatnonzero(np.diff(key)) + 1
    return [tuple(sorted(int(p) for p in g)) for g in np.split(pitches.astype(np.int64), cuts)]


def _sounding_bars(score) -> list[frozenset]:
    """Bar contents (see :func:`bar_contents`) from the first to the last bar holding an onset."""
    bars, _ = bar_contents(score)
    held = [i for i, bar in enumerate(bars) if bar]
    return bars[held[0] : held[-1] + 1]


def repeated_window_share(bars: list[frozenset], window: int = 4) -> float:
    """Share of windows of ``window`` consecutive bars that occurred earlier in the piece."""
    n = len(bars) - window + 1
    if n <= 0:
        return math.nan
    seen: set = set()
    repeats = 0
    for i in range(n):
        w = tuple(bars[i : i + window])
        repeats += w in seen
        seen.add(w)
    return repeats / n


def sanity_measures(score: ScoreLike) -> dict[str, float | str]:
    """All measures of the module docstring for one piece."""
    score = load_score(score)
    notes = merged_notes(score)
    onsets, pitches = notes["time"], notes["pitch"]
    offsets = onsets + notes["duration"]
    sc, scale = scale_consistency(pitches)
    if len(onsets):
        bars = _sounding_bars(score)
        repeated = repeated_window_share(bars)
        empty = sum(1 for b in bars if not b) / len(bars)
    else:
        repeated = empty = math.nan
    return {
        "scale_consistency": sc,
        "best_scale": scale,
        "polyphony": polyphony(onsets, offsets),
        "repeated_4bar_share": repeated,
        "longest_repeat_run": float(longest_run(onset_groups(onsets, pitches))),
        "empty_bar_rate": empty,
    }


DURATION_BINS = np.geomspace(0.01, 30.0, 41)  # seconds: a ratio of 1.22 a bin, beyond the edges in the end bins


def durations(scores) -> np.ndarray:
    """Every note's duration in seconds, over ``scores``."""
    parts = [merged_notes(load_score(s), "second")["duration"] for s in scores]
    return np.concatenate(parts) if parts else np.zeros(0)


def histogram(x: np.ndarray, bins: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Shares of ``x`` (each value counting its weight, or 1) in ``bins`` (values beyond the
    edges in the first or last bin)."""
    h, _ = np.histogram(np.clip(x, bins[0], bins[-1]), bins, weights=weights)
    return h / max(h.sum(), 1e-12)


def intersection(x: np.ndarray, y: np.ndarray, bins: np.ndarray, wx: np.ndarray | None = None,
                 wy: np.ndarray | None = None) -> float:
    """Overlap of the two histograms: the sum of their smaller shares (1 = the same)."""
    return float(np.minimum(histogram(x, bins, wx), histogram(y, bins, wy)).sum())


def duration_checks(generated, real, long_s: float | None = None) -> dict[str, float]:
    """Note durations of the ``generated`` scores against the ``real`` ones: the share of notes
    longer than ``long_s`` seconds (default: the real notes' 99.9th percentile) on each side,
    the duration-histogram overlap (:data:`DURATION_BINS`) and the median durations."""
    g, r = durations(generated), durations(real)
    if not len(g) or not len(r):
        return {"long_note_s": math.nan, "long_share_generated": math.nan, "long_share_real": math.nan,
                "duration_overlap": math.nan, "median_duration_generated": math.nan, "median_duration_real": math.nan}
    long_s = float(np.percentile(r, 99.9)) if long_s is None else long_s
    return {"long_note_s": long_s, "long_share_generated": float((g > long_s).mean()),
            "long_share_real": float((r > long_s).mean()), "duration_overlap": intersection(g, r, DURATION_BINS),
            "median_duration_generated": float(np.median(g)), "median_duration_real": float(np.median(r))}


def summarise(measures: list[dict], keys=MEASURES) -> dict[str, dict[str, float]]:
    """Mean and std (NaNs ignored) of each numeric measure in ``keys`` over a set of pieces."""
    out = {}
    for key in keys:
        vals = np.array([m[key] for m in measures], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[key] = {
            "mean": float(vals.mean()) if len(vals) else math.nan,
            "std": float(vals.std()) if len(vals) else math.nan,
            "n": int(len(vals)),
        }
    return out
