"""Density controls (issue 26): does a run trained with ``--controls`` write the density asked,
and what do the controls cost its likelihood?

    python benchmarks/density.py --run runs/density/ctl --plain runs/density/plain --songs val

1. For each level (``low``, ``medium``, ``high``) and without one: ``--pieces`` pieces of
   ``--bars`` bars (no form, seed 0) from ``--run``; the notes starting in each bar, and the
   share of bars within +-25% of the level's target (cadenza.data.controls.TARGETS; target: at
   least 80% of bars).
2. NLL per note of held-out POP909 songs (no controls in them) under ``--run`` and under
   ``--plain``, a run trained the same way without controls (target: at most 3% worse).

``--songs val`` (the POP909 validation songs of the base's chain) for choices, ``test`` (the
40 test songs) once.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from context import pop909_held_out  # noqa: E402

from cadenza import Steer, generate, load_run, to_scores  # noqa: E402
from cadenza.data.bars import bar_lines  # noqa: E402
from cadenza.data.controls import TARGETS  # noqa: E402
from cadenza.evaluate.nll import heldout_nll  # noqa: E402
from cadenza.evaluate.run import heldout_pieces  # noqa: E402

BAND = 0.25
MET = 0.8


def notes_per_bar(score, bars: int) -> np.ndarray:
    onsets = np.concatenate([t.notes.numpy()["time"] for t in score.tracks] or [np.zeros(0, int)])
    lines = bar_lines(score, score.end() + 1, min_bars=bars)[:bars + 1]
    return np.bincount(np.searchsorted(lines, onsets, side="right") - 1, minlength=bars + 1)[:bars]


def levels(run, pieces: int, bars: int) -> dict:
    out = {}
    for level in (None, *TARGETS):
        result = generate(run, num=pieces, length=bars, unit="bars", seed=0, form="none", quiet=True,
                          steer=Steer(density=level) if level else None, log=lambda m: None)
        counts = np.concatenate([notes_per_bar(s, bars) for s in to_scores(run, result)])
        row = {"median": float(np.median(counts)), "mean": float(counts.mean()), "bars": int(len(counts))}
        if level:
            target = TARGETS[level]
            row |= {"target": target, "within": float(np.mean(np.abs(counts - target) <= BAND * target))}
        out[level or "none"] = row
        print(f"{level or 'no control'}: {row}", flush=True)
    return out


def nll(run, folder: str) -> float:
    return heldout_nll(run, [(ids, n) for ids, n, _ in heldout_pieces(run, folder, quiet=True)])["nll_per_note"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="a run trained with --controls")
    ap.add_argument("--plain", help="the same training without --controls (for the likelihood's cost)")
    ap.add_argument("--songs", choices=("val", "test"), default="val")
    ap.add_argument("--pieces", type=int, default=16)
    ap.add_argument("--bars", type=int, default=16)
    ap.add_argument("--workdir", type=Path, default=Path("runs/density"))
    args = ap.parse_args(argv)
    run = load_run(args.run)
    out = {"levels": levels(run, args.pieces, args.bars)}
    if args.plain:
        folder = pop909_held_out(load_run("base"), args.workdir, args.songs)
        out["nll_per_note"] = {"controls": nll(run, folder), "plain": nll(load_run(args.plain), folder)}
        print(f"NLL per note, POP909 {args.songs}: {out['nll_per_note']}", flush=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / f"density-{args.songs}.json").write_text(json.dumps(out, indent=1))
    print(f"| level | target notes/bar | median notes/bar | bars within +-{BAND:.0%} (>= {MET:.0%}) |")
    print("|---|---|---|---|")
    for name, row in out["levels"].items():
        print(f"| {name} | {row.get('target', '-')} | {row['median']:.1f} | "
              f"{row['within']:.0%} |" if "within" in row else f"| {name} | - | {row['median']:.1f} | - |")
    if "nll_per_note" in out:
        c, p = out["nll_per_note"]["controls"], out["nll_per_note"]["plain"]
        print(f"\nNLL per note without controls: {c:.3f} with them trained vs {p:.3f} without ({c / p - 1:+.1%}; "
              "target at most +3%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
