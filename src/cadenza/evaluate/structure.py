"""Structure of a piece bar by bar, to compare generated pieces with held-out real ones.

Bars come from the score's time signatures, with 4/4 where none is given and throughout a
score whose signatures cannot be trusted (numerator 1: POP909 files carry 1/4 for 4/4 music;
see :func:`cadenza.data.bars.trusted_signatures`). A bar's content is the set of its notes'
(onset within the bar on a grid of 12 steps a beat, pitch). The measures of one piece
(:func:`structure_measures`) run over its bars from the first to the one where the last note
ends, or over an excerpt's bars, silent ones at its end included:

``repeated_bar_share``
    share of the non-empty bars whose content equals that of an earlier bar, exactly or
    transposed by a constant interval (pitches taken relative to the bar's lowest). Empty bars
    are neither counted nor repeats. NaN without notes.
``similar_bar_share``
    share of the non-empty bars that equal an earlier bar as above or whose content has a
    Jaccard similarity of at least ``SIMILAR`` (0.7) with an earlier bar's: material that
    comes back, with or without variation.
``looped_bar_share``
    share of the non-empty bars similar as above to the bar just before them: material held on
    the spot (a loop), which real pieces seldom do bar after bar.
``groove_consistency``
    mean over adjacent bar pairs, pairs of two empty bars skipped, of the grooving similarity of
    Wu & Yang (2020): 1 - Hamming distance / grid size of the two bars' binary onset vectors
    (48 steps in a 4/4 bar). NaN without such pairs.
``distinct_tempos``
    number of distinct tempos (bpm rounded to 0.1) in force in those bars, the one in force at
    the start included (MIDI's 120 bpm where the score sets none).
``distinct_velocities``
    number of distinct note velocities.
``notes_per_bar``, ``empty_bar_share``
    notes per bar and share of bars without an onset.
``scale_consistency``
    as in :mod:`cadenza.evaluate.sanity`.

Sets are compared (:func:`compare_structure`) on excerpts of the same number of bars: every
piece is measured on its first ``bars`` bars (:func:`excerpt_measures`); pieces shorter than
that are used whole.
"""

from __future__ import annotations

import math

import numpy as np
from symusic import Score

from cadenza.errors import CadenzaError
from cadenza.data.scores import ScoreLike, bar_contents, bar_lines, in_ticks, load_score, merged_notes
from cadenza.evaluate.sanity import scale_consistency, summarise

DEFAULT_BARS = 32
DEFAULT_QPM = 120.0
SIMILAR = 0.7  # Jaccard similarity of two bars' (onset, pitch) sets that counts as material coming back
STRUCTURE = {
    "repeated_bar_share": "repeated bars (share of non-empty bars)",
    "similar_bar_share": "similar bars (share of non-empty bars)",
    "looped_bar_share": "bars like the one before (share of non-empty bars)",
    "groove_consistency": "groove consistency (adjacent bars)",
    "distinct_tempos": "distinct tempos",
    "distinct_velocities": "distinct velocities",
    "notes_per_bar": "notes per bar",
    "empty_bar_share": "empty bars (share)",
    "scale_consistency": "scale consistency",
}


def bar_starts(score: Score) -> np.ndarray:
    """Start tick of every bar up to the end of the last note (at least one bar)."""
    return bar_lines(in_ticks(score))[:-1]


def excerpt(score: Score, n_bars: int, start_bar: int = 0) -> Score:
    """Bars ``start_bar`` to ``start_bar + n_bars`` of ``score`` as a tick-time score that starts
    at tick 0, notes cut at the last bar line; as much as there is of a shorter piece. The
    tempo and time signature in force at the start are kept."""
    if n_bars < 1 or start_bar < 0:
        raise CadenzaError(f"an excerpt needs n_bars >= 1 and start_bar >= 0, got {n_bars} and {start_bar}")
    score = in_ticks(score)
    lines = bar_lines(score)
    end = score.end() + 1
    first = int(lines[start_bar]) if start_bar < len(lines) - 1 else end
    stop = int(lines[start_bar + n_bars]) if start_bar + n_bars < len(lines) else end
    return score.clip(first, stop, clip_end=True).shift_time(-first)


def transposed_shape(bar: frozenset) -> frozenset:
    """A bar's ``(onset step, pitch)`` set with pitches relative to its lowest one."""
    low = min((pitch for _, pitch in bar), default=0)
    return frozenset((step, pitch - low) for step, pitch in bar)


def repeated_bar_share(bars: list[frozenset]) -> float:
    """Share of the non-empty bars equal to an earlier bar, exactly or transposed."""
    seen: set = set()
    repeats = counted = 0
    for bar in filter(None, bars):
        shape = transposed_shape(bar)
        repeats += shape in seen
        counted += 1
        seen.add(shape)
    return repeats / counted if counted else math.nan


def similar_bar_share(bars: list[frozenset]) -> float:
    """Share of the non-empty bars equal (up to transposition) or similar to an earlier bar."""
    earlier: list[frozenset] = []
    shapes: set = set()
    similar = 0
    for bar in filter(None, bars):
        shape = transposed_shape(bar)
        similar += shape in shapes or any(len(bar & e) >= SIMILAR * len(bar | e) for e in earlier)
        earlier.append(bar)
        shapes.add(shape)
    return similar / len(earlier) if earlier else math.nan


def looped_bar_share(bars: list[frozenset]) -> float:
    """Share of the non-empty bars equal (up to transposition) or similar to the bar before."""
    pairs = [(a, b) for a, b in zip([frozenset()] + bars, bars) if b]
    looped = sum(bool(a) and (transposed_shape(a) == transposed_shape(b) or len(a & b) >= SIMILAR * len(a | b))
                 for a, b in pairs)
    return looped / len(pairs) if pairs else math.nan


def groove_consistency(bars: list[frozenset], steps: np.ndarray) -> float:
    """Mean grooving similarity of adjacent bars (pairs of empty bars skipped)."""
    onsets = [frozenset(step for step, _ in bar) for bar in bars]
    sims = [1.0 - len(a ^ b) / max(qa, qb)
            for a, b, qa, qb in zip(onsets, onsets[1:], steps, steps[1:]) if a or b]
    return float(np.mean(sims)) if sims else math.nan


def distinct_tempos(score: Score, end: int) -> int:
    """Distinct tempos (0.1 bpm) in force between tick 0 and ``end``."""
    tempos = sorted((t.time, round(t.qpm, 1)) for t in score.tempos)
    at_start = [qpm for time, qpm in tempos if time <= 0]
    later = {qpm for time, qpm in tempos if 0 < time < end}
    return len(later | {at_start[-1] if at_start else DEFAULT_QPM})


def structure_measures(score: ScoreLike, min_bars: int = 1) -> dict[str, float]:
    """The measures of the module docstring for one piece, over its bars up to the end of the
    last note and at least ``min_bars`` bars (an excerpt's length, so that silent bars at its
    end count)."""
    score = in_ticks(load_score(score))
    bars, steps = bar_contents(score, min_bars=min_bars)
    notes = merged_notes(score, "tick")
    return {
        "repeated_bar_share": repeated_bar_share(bars),
        "similar_bar_share": similar_bar_share(bars),
        "looped_bar_share": looped_bar_share(bars),
        "groove_consistency": groove_consistency(bars, steps),
        "distinct_tempos": float(distinct_tempos(score, int(bar_lines(score, min_bars=min_bars)[-1]))),
        "distinct_velocities": float(len(np.unique(notes["velocity"]))),
        "notes_per_bar": len(notes["pitch"]) / len(bars),
        "empty_bar_share": sum(not bar for bar in bars) / len(bars),
        "scale_consistency": scale_consistency(notes["pitch"])[0],
    }


def excerpt_measures(score: ScoreLike, bars: int = DEFAULT_BARS) -> dict[str, float]:
    """:func:`structure_measures` of the first ``bars`` bars of a piece (all of a shorter one)."""
    score = in_ticks(load_score(score))
    return structure_measures(excerpt(score, bars), min_bars=min(bars, len(bar_starts(score))))


def set_structure(scores: list[ScoreLike], bars: int = DEFAULT_BARS) -> dict[str, float | None]:
    """Mean of each of :func:`excerpt_measures` over the pieces (NaNs ignored; None where no
    piece has a value)."""
    summary = summarise([excerpt_measures(s, bars) for s in scores], STRUCTURE)
    return {key: (s["mean"] if s["n"] else None) for key, s in summary.items()}


def compare_structure(generated: list[ScoreLike], held_out: list[ScoreLike], bars: int = DEFAULT_BARS) -> dict:
    """Set means of the generated and held-out pieces' first ``bars`` bars and their ratio
    (generated / held-out; None where the held-out mean is 0 or either is missing)."""
    gen, held = set_structure(generated, bars), set_structure(held_out, bars)
    ratio = {k: gen[k] / held[k] if gen[k] is not None and held[k] else None for k in STRUCTURE}
    return {"generated": gen, "held_out": held, "ratio": ratio, "bars": bars,
            "pieces": {"generated": len(generated), "held_out": len(held_out)}}


def self_similarity(score: ScoreLike) -> np.ndarray:
    """Bar x bar similarity: 1 for bars equal up to transposition, else the Jaccard index of
    their ``(onset step, pitch)`` sets; 0 where either bar is empty."""
    bars, _ = bar_contents(in_ticks(load_score(score)))
    shapes = [transposed_shape(bar) for bar in bars]
    n = len(bars)
    sim = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            if bars[i] and bars[j]:
                same = shapes[i] == shapes[j]
                sim[i, j] = sim[j, i] = 1.0 if same else len(bars[i] & bars[j]) / len(bars[i] | bars[j])
    return sim
