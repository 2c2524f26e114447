"""Fine-tuned from the shipped base vs trained from scratch, on small folders the base never saw.

    python benchmarks/finetune.py [--minutes 10] [--folders bach40,asap-bach] [--workdir runs/finetune]

Two folders: 40 chorales of the built-in bach corpus, and the ASAP Bach scores
(``midi_score.mid`` under ``../shared/data/asap-bach``). Each is split once (seeded) into
training pieces and 20% test pieces, used for nothing but this table. On each, three trainings
with the same ``--max-minutes`` (the whole command, counted in the training's own CPU time so
that other jobs on the machine change neither side), one thread each, one after the other:
``--from base``, ``--preset base`` from scratch (with the preset's early stopping), and the
same with ``--patience 0`` (the whole budget), with no epoch cap; the best weights by
validation loss are kept. ``--seed`` repeats them with another training seed. Then: test NLL per note, and the structure
ratios (generated / held-out) of 16 generated 16-bar pieces against 16-bar excerpts of the
test pieces, with each run's own sampling defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from cadenza.files import write_bytes_atomic
from structure import nll_per_note  # benchmarks/ is the script's folder

ROOT = Path(__file__).resolve().parents[1]

ASAP = ROOT.parent / "shared" / "data" / "asap-bach"
BARS, PIECES, TEST_SHARE = 16, 16, 0.2
KEYS = ("repeated_bar_share", "groove_consistency", "distinct_tempos", "distinct_velocities", "notes_per_bar",
        "empty_bar_share", "scale_consistency")


def folder_files(name: str) -> list[Path]:
    if name == "bach40":
        from cadenza.data.corpus.bach import bach_chorales

        return sorted(bach_chorales())[:40]
    if name == "asap-bach":
        return sorted(ASAP.rglob("midi_score.mid"))
    sys.exit(f"unknown folder {name!r}")


def split(name: str, workdir: Path, seed: int = 0) -> tuple[Path, Path]:
    files = folder_files(name)
    order = np.random.default_rng(seed).permutation(len(files))
    n_test = max(2, round(TEST_SHARE * len(files)))
    for part, chosen in (("test", order[:n_test]), ("train", order[n_test:])):
        folder = workdir / name / part
        folder.mkdir(parents=True, exist_ok=True)
        for k in chosen:
            link = folder / f"{k:03d}-{files[k].parent.name}-{files[k].name}"
            if not link.is_symlink():
                link.symlink_to(files[k].resolve())
    return workdir / name / "train", workdir / name / "test"


def train(folder: Path, run_dir: Path, how: list[str], minutes: float) -> tuple[float, float]:
    """Wall and CPU seconds of one training whose budget counts its own CPU time
    (``CADENZA_BUDGET_CLOCK=cpu``): both starts get the same work on a shared machine."""
    record = run_dir / "benchmark-times.json"
    if record.exists():  # trained by an earlier call
        return tuple(json.loads(record.read_text()))
    cmd = [sys.executable, "-m", "cadenza", "train", str(folder), "--run-dir", str(run_dir), *how,
           "--max-minutes", f"{minutes}", "--epochs", "1000", "--threads", "1", "--workers", "1", "--quiet"]
    began, cpu = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, env={**os.environ, "CADENZA_BUDGET_CLOCK": "cpu"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    times = time.time() - began, (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)
    write_bytes_atomic(record, json.dumps(times).encode())
    return times


# fine-tuning schedules compared on validation pieces (``--choose``): flags added to ``--from``
SCHEDULES = {"lr 0.3x, dropout 0.1": ["--dropout", "0.1"], "lr 0.1x, dropout 0.1": ["--lr", "3e-4", "--dropout", "0.1"],
             "lr 0.3x, dropout 0.3": ["--dropout", "0.3"], "lr 0.1x, dropout 0.3": ["--lr", "3e-4", "--dropout", "0.3"],
             "lr 0.3x, dropout 0.5": ["--dropout", "0.5"], "lr 0.6x, dropout 0.3": ["--lr", "1.8e-3", "--dropout", "0.3"],
             "lr 0.3x, dropout 0.3, ema 0.99": ["--dropout", "0.3", "--ema", "0.99"],
             "lr 0.3x, dropout 0.3, ema 0.998": ["--dropout", "0.3", "--ema", "0.998"],
             "lr 0.6x, dropout 0.3, ema 0.998": ["--lr", "1.8e-3", "--dropout", "0.3", "--ema", "0.998"]}
CHOOSE_VAL_FRACTION = 0.25
# scratch as `--preset base` gives it (early stopping after 5 evaluations without improvement,
# on a validation split of a few pieces), and scratch with the whole budget (best weights kept)
STARTS = {"from base": ["--from", "base"], "scratch": ["--preset", "base"],
          "scratch nostop": ["--preset", "base", "--patience", "0"]}


def choose(name: str, train_folder: Path, workdir: Path, minutes: float, start: str, parallel: int,
           schedules: list[str]) -> list[dict]:
    """Each schedule fine-tunes on the folder's training pieces with a quarter of them held out as
    validation (the test pieces are not touched); the best validation loss per token decides."""
    from concurrent.futures import ThreadPoolExecutor

    from cadenza.rundir import METRICS, read_metrics

    def one(item):
        label, flags = item
        run_dir = workdir / name / "choose" / label.replace(", ", "-").replace(" ", "")
        how = ["--from", start, "--val-fraction", f"{CHOOSE_VAL_FRACTION}", *flags]
        train(train_folder, run_dir, how, minutes)  # its CPU time is the budget (children's rusage mixes parallel runs)
        rows = read_metrics(run_dir / METRICS)
        best = min((r for r in rows if r["val_loss"] is not None), key=lambda r: r["val_loss"])
        return {"folder": name, "schedule": label, "cpu_min": minutes, "best_val_loss": best["val_loss"],
                "best_epoch": best["epoch"], "epochs": rows[-1]["epoch"]}

    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(one, [(k, SCHEDULES[k]) for k in schedules]))
    for r in results:
        print(json.dumps(r, default=float), flush=True)
    return results


def measure(run_dir: Path, test_folder: Path) -> dict:
    from cadenza.evaluate.run import heldout_pieces
    from cadenza.evaluate.structure import compare_structure
    from cadenza.generation.generate import generate, to_scores
    from cadenza.rundir import load_run

    run = load_run(run_dir)
    test = heldout_pieces(run, str(test_folder), None, quiet=True)
    nll = nll_per_note(run, test)
    result = generate(run, num=PIECES, length=BARS, unit="bars", seed=0, quiet=True)
    structure = compare_structure(to_scores(run, result, length=BARS, unit="bars"), [s for *_, s in test], BARS)
    ratio = structure["ratio"]
    distance = float(np.mean([abs(np.log(ratio[k])) for k in KEYS if ratio.get(k)]))
    return {"test_nll_note": nll, "ratio": ratio, "distance": distance}


def base_alone(start: str, train_folder: Path, test_folder: Path) -> dict:
    """The base's NLL per note on the folder without any training: on its training pieces
    (which choose between bases: the base never saw them) and on its test pieces."""
    from cadenza.evaluate.run import heldout_pieces
    from cadenza.rundir import load_run

    run = load_run(start)
    out = {}
    for part, folder in (("train", train_folder), ("test", test_folder)):
        out[f"{part}_nll_note"] = nll_per_note(run, heldout_pieces(run, str(folder), None, quiet=True))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--folders", default="bach40,asap-bach")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "finetune")
    ap.add_argument("--choose", action="store_true",
                    help="compare the fine-tuning schedules on validation pieces instead (no test figures)")
    ap.add_argument("--start", default="base", help="the run fine-tuned from with --choose")
    ap.add_argument("--parallel", type=int, default=1, help="--choose trainings at once")
    ap.add_argument("--schedules", default=";".join(SCHEDULES), help="with --choose: which schedules, separated by ';'")
    ap.add_argument("--starts", default=",".join(STARTS), help="which trainings to run and measure (a trained "
                    "run folder is measured again, not retrained)")
    ap.add_argument("--seed", type=int, default=0, help="the trainings' seed (the folders' split stays seed 0); "
                    "other than 0, the run folders are named with it")
    ap.add_argument("--base-alone", action="store_true", help="only the base's NLL on each folder's training "
                    "pieces (how bases are chosen) and test pieces, without training")
    args = ap.parse_args(argv)
    rows = []
    for name in args.folders.split(","):
        train_folder, test_folder = split(name, args.workdir)
        if args.base_alone:
            print(json.dumps({"folder": name, "start": args.start, **base_alone(args.start, train_folder, test_folder)}))
            continue
        if args.choose:
            rows += choose(name, train_folder, args.workdir, args.minutes, args.start, args.parallel,
                           args.schedules.split(";"))
            continue
        for label, how in STARTS.items():
            if label not in args.starts.split(","):
                continue
            run_dir = args.workdir / name / (label.replace(" ", "-") + (f"-seed{args.seed}" if args.seed else ""))
            how = [*how, "--seed", str(args.seed)]
            wall, cpu = train(train_folder, run_dir, how, args.minutes)
            rows.append({"folder": name, "start": label, "seed": args.seed, "wall_s": wall, "cpu_s": cpu,
                         **measure(run_dir, test_folder)})
            print(json.dumps(rows[-1], default=float), flush=True)
    if args.base_alone:
        return 0
    if args.choose:
        print("| folder | schedule | CPU min | best validation loss | best epoch / epochs |\n|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['folder']} | {r['schedule']} | {r['cpu_min']:.1f} | {r['best_val_loss']:.4f} | "
                  f"{r['best_epoch']} / {r['epochs']} |")
        return 0
    print("| folder | start | seed | CPU min | test NLL/note | structure distance | "
          + " | ".join(f"ratio {k}" for k in KEYS) + " |")
    print("|" + "---|" * (6 + len(KEYS)))
    for r in rows:
        print(f"| {r['folder']} | {r['start']} | {r['seed']} | {r['cpu_s'] / 60:.1f} | {r['test_nll_note']:.3f} | {r['distance']:.3f} | "
              + " | ".join("n/a" if r["ratio"].get(k) is None else f"{r['ratio'][k]:.2f}" for k in KEYS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
