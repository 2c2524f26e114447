"""Which composer holds together: candidates trained with the same CPU budget on POP909.

    python benchmarks/structure.py [--data ../shared/data/pop909] [--minutes 30] [--quick]
        [--candidates small,transformer,...] [--workdir runs/structure] [--parallel 2]
        [--phase all|train|eval] [--out FILE.md]

The songs are split once (seeded): ``TEST_SONGS`` held out as test, never used to choose
anything; each training holds out its own 10% validation split. Every candidate trains as
its own ``cadenza train`` process with one thread and ``--max-minutes`` (the whole command,
data preparation included); ``--parallel 2`` runs two at once on two cores. Then, for each:
held-out NLL per note (comparable across tokenisations) on validation and test songs,
training and generation tokens per second, and the structure measures of ``cadenza
evaluate`` on 16 generated 32-bar pieces against 32-bar excerpts of held-out songs. The
sampling defaults are chosen the same way, on validation songs only.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cadenza.files import write_bytes_atomic

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pop909"
TEST_SONGS, QUICK_SONGS = 40, 30


def split_songs(data: Path, workdir: Path, quick: bool, seed: int = 0) -> tuple[Path, Path]:
    """Symlink folders ``train/`` (training + the run's own validation) and ``test/``."""
    songs = sorted(p for p in data.glob("*/*.mid"))
    if not songs:
        sys.exit(f"no POP909 songs under {data}")
    order = np.random.default_rng(seed).permutation(len(songs))
    if quick:
        order = order[:QUICK_SONGS]
    n_test = 6 if quick else TEST_SONGS
    folders = {"test": [songs[i] for i in order[:n_test]], "train": [songs[i] for i in order[n_test:]]}
    for name, files in folders.items():
        link_files(workdir / name, {f.name: f for f in files})
    return workdir / "train", workdir / "test"


def link_files(folder: Path, links: dict[str, Path]) -> Path:
    """``folder`` (made if missing) with a symlink ``name`` to each path, kept where one exists."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in links.items():
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(path.resolve())
    return folder


# name: (preset, extra `cadenza train` flags). Quick mode shrinks every model.
CANDIDATES = {
    "small-lstm": ("small", []),
    "transformer": ("transformer", []),
    "transformer-bpe": ("transformer", ["--vocab-size", "1000"]),
    "lstm-bpe": ("small", ["--vocab-size", "1000"]),
}
QUICK_FLAGS = ["--seq-len", "64", "--batch-size", "4"]


def train_command(name: str, folder: Path, run_dir: Path, minutes: float, quick: bool) -> list[str]:
    preset, flags = CANDIDATES[name]
    cmd = [sys.executable, "-m", "cadenza", "train", str(folder), "--run-dir", str(run_dir), "--preset", preset,
           "--max-minutes", f"{minutes}", "--threads", "1", "--workers", "1", "--quiet", *flags]
    return cmd + (QUICK_FLAGS + ["--vocab-size", "500"] * ("--vocab-size" in flags) if quick else [])


def train_all(names: list[str], folder: Path, workdir: Path, minutes: float, quick: bool, parallel: int) -> dict:
    """Train the candidates, ``parallel`` at a time; CPU seconds of each from wait4."""
    pending, running, cpu = list(names), {}, {}
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    while pending or running:
        while pending and len(running) < parallel:
            name = pending.pop(0)
            run_dir = workdir / "runs" / name
            if (run_dir / "best.safetensors").exists():
                print(f"{name}: already trained in {run_dir}", flush=True)
                continue
            log = open(workdir / f"{name}.log", "w")
            proc = subprocess.Popen(train_command(name, folder, run_dir, minutes, quick), stdout=log,
                                    stderr=subprocess.STDOUT, env=env)
            running[proc.pid] = (name, time.time(), log)
            print(f"{name}: training (pid {proc.pid}, log {workdir / (name + '.log')})", flush=True)
        if not running:
            break
        pid, status, usage = os.wait4(-1, 0)
        name, started, log = running.pop(pid)
        log.close()
        cpu[name] = {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": time.time() - started,
                     "exit": os.waitstatus_to_exitcode(status)}
        print(f"{name}: done, exit {cpu[name]['exit']}, {cpu[name]['wall_s']:.0f} s wall, "
              f"{cpu[name]['cpu_s']:.0f} CPU s", flush=True)
    record = workdir / "training.json"
    old = json.loads(record.read_text()) if record.exists() else {}
    write_bytes_atomic(record, json.dumps({**old, **cpu}, indent=1).encode())
    return {**old, **cpu}


def prepare_caches(names: list[str], folder: Path, quick: bool) -> None:
    """Tokenise once with both cores before the one-thread trainings start."""
    from cadenza.config import preset
    from cadenza.data.dataset import prepare

    for name in names:
        config = preset(CANDIDATES[name][0])
        flags = CANDIDATES[name][1]
        options = dict(config.representation_options)
        if "--vocab-size" in flags:
            options["vocab_size"] = 500 if quick else int(flags[flags.index("--vocab-size") + 1])
        t = time.time()
        prepare(str(folder), config.representation, options, config.val_fraction, config.seed, log=None,
                progress_bar=False)
        print(f"{name}: data prepared ({time.time() - t:.0f} s)", flush=True)


KEYS = ("repeated_bar_share", "groove_consistency", "distinct_tempos", "distinct_velocities", "notes_per_bar",
        "empty_bar_share", "scale_consistency")
# (temperature, top-p, min-p, form); the first is every candidate's, the rest are swept
SAMPLINGS = [(1.0, 0.95, 0.0, "none"), (0.9, 0.95, 0.0, "none"), (1.0, 1.0, 0.0, "none"),
             (1.0, 0.95, 0.0, "AABA"), (0.9, 0.95, 0.0, "AABA"), (1.0, 1.0, 0.05, "AABA"),
             (1.0, 1.0, 0.1, "AABA"), (0.9, 1.0, 0.1, "AABA")]


def sampling_key(t: float, p: float, min_p: float, form: str) -> str:
    return f"{t:g}/{p:g}/{min_p:g}/{form}"


def structure_distance(ratio: dict) -> float:
    """Mean |log ratio| over the structure measures: 0 when generated = held-out."""
    logs = [abs(np.log(ratio[k])) for k in KEYS if ratio.get(k)]
    return float(np.mean(logs)) if logs else float("inf")


def sample(run, pieces: int, bars: int, sampling: tuple, held: dict) -> dict:
    """Generate, time it, and compare with each held-out set (``held``: name -> scores)."""
    from cadenza.evaluate.compare import compare_sets
    from cadenza.evaluate.structure import compare_structure
    from cadenza.generation.generate import generate, to_scores
    from cadenza.generation.sampling import Sampling

    began = time.process_time()
    temperature, top_p, min_p, form = sampling
    result = generate(run, num=pieces, length=bars, unit="bars", seed=0, form=form, quiet=True,
                      sampling=Sampling(temperature=temperature, top_p=top_p, min_p=min_p))
    seconds = time.process_time() - began
    scores = to_scores(run, result, length=bars, unit="bars")
    out = {"gen_tokens_per_s": sum(len(n) for n in result.new) / max(1e-9, seconds), "gen_cpu_s": seconds}
    for name, reference in held.items():
        out[name] = compare_structure(scores, reference, bars)
        out[name]["ioi_overlap"] = compare_sets(scores, reference)["avg_ioi"]["oa"]
        out[name]["distance"] = structure_distance(out[name]["ratio"])
    return out


def val_folder(run, workdir: Path) -> Path:
    """The run's own validation songs, linked into one folder (the prepared-data cache is
    keyed by content, so the paths it lists may name another copy of the same songs)."""
    from cadenza.data.dataset import prepare

    cfg = run.config
    meta = prepare(cfg.source, cfg.representation, cfg.representation_options, cfg.val_fraction, cfg.seed,
                   log=None, progress_bar=False).meta
    names = (Path(f).name for f in meta["splits"]["val"]["files"])
    return link_files(workdir / "val", {name: workdir / "train" / name for name in names})


def nll_per_note(run, pieces) -> float:
    """Held-out NLL per note of ``pieces`` as ``heldout_pieces`` gives them (ids, notes, score)."""
    from cadenza.evaluate.nll import heldout_nll

    return heldout_nll(run, [(ids, notes) for ids, notes, _ in pieces])["nll_per_note"]


def evaluate_candidate(name: str, args, test_folder: Path) -> dict:
    import torch

    from cadenza.evaluate.run import heldout_pieces
    from cadenza.rundir import METRICS, load_run, read_metrics

    torch.set_num_threads(2)
    run_dir = args.workdir / "runs" / name
    run = load_run(run_dir)
    val = heldout_pieces(run, str(val_folder(run, args.workdir)), 30 if not args.quick else 3, quiet=True)
    test = heldout_pieces(run, str(test_folder), None, quiet=True)
    rows = read_metrics(run_dir / METRICS)
    out = {"val_nll_note": nll_per_note(run, val), "test_nll_note": nll_per_note(run, test),
           "train_tokens_per_s": float(np.median([r["tokens_per_s"] for r in rows])) if rows else None,
           "epochs": rows[-1]["progress"] if rows else None,
           "params": sum(p.numel() for p in run.model.parameters())}
    held = {"val": [s for *_, s in val], "test": [s for *_, s in test]}
    out["sampling"] = {sampling_key(*s): sample(run, args.pieces, args.bars, s, held)
                       for s in (SAMPLINGS if name in args.sweep.split(",") else SAMPLINGS[:1])}
    return out


def evaluate_all(names: list[str], args, test_folder: Path) -> str:
    record = args.workdir / "evaluation.json"
    results = json.loads(record.read_text()) if record.exists() else {}
    for name in names:
        print(f"{name}: evaluating ...", flush=True)
        results[name] = evaluate_candidate(name, args, test_folder)
        latest = json.loads(record.read_text()) if record.exists() else {}  # another eval may have written
        write_bytes_atomic(record, json.dumps({**latest, name: results[name]}, indent=1, default=float).encode())
    training = json.loads((args.workdir / "training.json").read_text())
    return table(results, training, names)


def _f(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def table(results: dict, training: dict, names: list[str]) -> str:
    lines = ["| candidate | sampling T/top-p/min-p/form | CPU min | params | epochs | train tok/s | gen tok/s | "
             "valid NLL/note | test NLL/note | valid structure distance | "
             + " | ".join(f"test ratio {k}" for k in KEYS) + " | test IOI overlap |",
             "|" + "---|" * (12 + len(KEYS))]
    for name in names:
        r, cpu = results[name], training.get(name, {}).get("cpu_s", float("nan")) / 60
        for key, smp in r["sampling"].items():
            ratios = smp["test"]["ratio"]
            lines.append(f"| {name} | {key} | {cpu:.1f} | {r['params'] / 1e6:.2f}M | {_f(r['epochs'], 2)} | "
                         f"{_f(r['train_tokens_per_s'], 0)} | {_f(smp['gen_tokens_per_s'], 0)} | "
                         f"{_f(r['val_nll_note'])} | {_f(r['test_nll_note'])} | {_f(smp['val']['distance'])} | "
                         + " | ".join(_f(ratios.get(k), 2) for k in KEYS)
                         + f" | {_f(smp['test']['ioi_overlap'], 2)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--minutes", type=float, default=30.0, help="budget of each training (whole command)")
    ap.add_argument("--quick", action="store_true", help="30 songs, tiny budgets: a check that it all runs")
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "structure")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--phase", choices=("all", "train", "eval"), default="all")
    ap.add_argument("--pieces", type=int, default=16, help="generated pieces per candidate")
    ap.add_argument("--bars", type=int, default=32)
    ap.add_argument("--out", type=Path, help="also write the Markdown table here")
    ap.add_argument("--sweep", default="", help="candidates whose sampling settings are swept (comma-separated; chosen on valid)")
    args = ap.parse_args(argv)
    names = args.candidates.split(",")
    unknown = set(names) - set(CANDIDATES)
    if unknown:
        ap.error(f"unknown candidates: {', '.join(sorted(unknown))}")
    minutes = min(args.minutes, 0.4) if args.quick else args.minutes
    train_folder, test_folder = split_songs(args.data, args.workdir, args.quick)
    if args.phase in ("all", "train"):
        prepare_caches(names, train_folder, args.quick)
        train_all(names, train_folder, args.workdir, minutes, args.quick, args.parallel)
    if args.phase in ("all", "eval"):
        table = evaluate_all(names, args, test_folder)
        print(table)
        if args.out:
            args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
