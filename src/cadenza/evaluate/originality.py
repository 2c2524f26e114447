"""Originality: how much of a piece is its training pieces copied verbatim.

    index = TrainingIndex(training_scores)
    compare_originality(generated, held_out, index, bars) -> {"generated": ..., "held_out": ..., ...}

A bar's content is the set of its notes' ``(onset step within the bar, pitch)`` that
:func:`cadenza.data.scores.bar_contents` gives (velocities and durations aside), as the structure
measures read it. Two figures for each piece, measured on its first ``bars`` bars:

``longest_copied_bars``
    the most consecutive bars equal to as many consecutive bars of one training piece. A
    copy neither starts nor ends on an empty bar (silence is nobody's), but rests inside
    one count.
``copied_4bar_share``
    of the piece's windows of 4 consecutive bars with a note in them, the share found
    verbatim among the training pieces' windows.

Held-out real pieces, measured against the same training pieces, say what a piece of the
corpus shares with the rest by itself (common accompaniment patterns, quoted tunes): a
model copies when its figures are above theirs. Every training bar and window is indexed
by its content (dicts and sets), so a piece is checked by looking its bars and windows up,
never by scanning the training pieces (POP909's 700-900 songs index in seconds).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from cadenza.evaluate.structure import excerpt
from cadenza.data.scores import ScoreLike, bar_contents, in_ticks, load_score

WINDOW_BARS = 4

Bars = list[frozenset]


def piece_bars(score: ScoreLike) -> Bars:
    """A piece's bars as :func:`cadenza.data.scores.bar_contents` gives them."""
    return bar_contents(in_ticks(load_score(score)))[0]


def windows(bars: Bars, size: int = WINDOW_BARS) -> list[tuple]:
    """The windows of ``size`` consecutive bars that hold a note."""
    return [w for w in (tuple(bars[i:i + size]) for i in range(len(bars) - size + 1)) if any(w)]


class TrainingIndex:
    """Every non-empty bar of the training pieces (where it occurs) and every 4-bar window."""

    def __init__(self, pieces: Iterable[ScoreLike]):
        self.bars: list[Bars] = []
        self.where: dict[frozenset, list[tuple[int, int]]] = defaultdict(list)
        self.windows: set[tuple] = set()
        for p, score in enumerate(pieces):
            bars = piece_bars(score)
            self.bars.append(bars)
            for q, bar in enumerate(bars):
                if bar:
                    self.where[bar].append((p, q))
            self.windows.update(windows(bars))

    def longest_copy(self, bars: Bars) -> int:
        """The most consecutive ``bars`` equal to consecutive bars of one training piece."""
        best, runs = 0, {}  # runs: (training piece, bar) where a copy ends -> its length
        for bar in bars:
            if bar:
                runs = {(p, q): runs.get((p, q - 1), 0) + 1 for p, q in self.where.get(bar, ())}
                best = max(best, *runs.values()) if runs else best
            else:  # a rest carries on only the copies that rest there too
                runs = {(p, q + 1): n + 1 for (p, q), n in runs.items()
                        if q + 1 < len(self.bars[p]) and not self.bars[p][q + 1]}
        return best

    def copied_windows(self, bars: Bars) -> tuple[int, int]:
        """(windows found among the training windows, windows) of one piece."""
        mine = windows(bars)
        return sum(w in self.windows for w in mine), len(mine)


def originality(pieces: Iterable[ScoreLike], index: TrainingIndex, bars: int) -> dict:
    """Both figures of the module docstring over the first ``bars`` bars of each piece:
    ``longest_copied_bars`` (``max``, ``median``, ``per_piece``) and ``copied_4bar_share``
    (over all the pieces' non-empty windows; None where they have none)."""
    longest, copied, total = [], 0, 0
    for score in pieces:
        contents = piece_bars(excerpt(in_ticks(load_score(score)), bars))
        longest.append(index.longest_copy(contents))
        hits, n = index.copied_windows(contents)
        copied, total = copied + hits, total + n
    return {"longest_copied_bars": {"max": max(longest, default=None),
                                    "median": float(np.median(longest)) if longest else None,
                                    "per_piece": longest},
            "copied_4bar_share": copied / total if total else None, "windows": total, "pieces": len(longest)}


def compare_originality(generated: list[ScoreLike], held_out: list[ScoreLike], index: TrainingIndex,
                        bars: int) -> dict:
    """:func:`originality` of the generated and of the held-out pieces against ``index``."""
    return {"generated": originality(generated, index, bars), "held_out": originality(held_out, index, bars),
            "bars": bars, "window_bars": WINDOW_BARS, "training_pieces": len(index.bars),
            "training_windows": len(index.windows)}


def summary_line(o: dict) -> str:
    """One line of the figures (or why they were not measured), for the log."""
    if "skipped" in o:
        return f"originality not measured: {o['skipped']}"
    g, h = o["generated"], o["held_out"]

    def share(side: dict) -> str:
        return "n/a" if side["copied_4bar_share"] is None else f"{side['copied_4bar_share']:.1%}"

    return (f"originality: longest span copied from the training pieces {g['longest_copied_bars']['max']} bars "
            f"generated, {h['longest_copied_bars']['max']} held-out (most of a piece); 4-bar windows found in them "
            f"{share(g)} generated, {share(h)} held-out")
