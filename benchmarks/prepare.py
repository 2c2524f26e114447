"""How fast cadenza prepares a corpus, beside the tokenizer alone, in one run.

    python benchmarks/prepare.py [--pop909 DIR] [--synthetic 20000] [--reps seed,remi,...]
        [--music21-files 12] [--workdir runs/prepare-bench] [--out FILE.md]

For POP909 and a synthetic corpus of small files (written once into ``--workdir``), each
representation is prepared with ``cadenza.dataset.prepare`` (one worker) in a fresh
process, cold (empty cache) and then cached (the same call again), and beside it:

* MidiTok representations: MidiTok's own tokenisation of the same files with the same
  tokenizer (``Score(path)`` then ``tokenizer.encode``), also in a fresh process;
* seed: the notebook's music21 loop (``benchmarks/seed_agreement.py``) on an evenly spaced
  sample of ``--music21-files`` files, interleaved file by file with cadenza's seed
  tokenisation of the same file (``read_piano_score`` + ``pretokenize``).

Times are CPU seconds of the measuring process (``resource.getrusage``), so other jobs on
a shared machine slow them less than wall time; peak memory is the process's maximum
resident set. Memory that stays flat from 809 to 20,000 files is the goal.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

REPS = ("seed", "remi", "tsd", "midilike", "structured")
SHARED = ROOT.parent / "shared" / "data"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_synthetic(folder: Path, files: int, seed: int = 0) -> Path:
    """``files`` small two-hand pieces (8 bars of random chords and eighths), once."""
    from symusic import Note, Score, Track

    from cadenza.files import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.mid"))) >= files:
        return folder
    rng = random.Random(seed)
    for k in range(files):
        score = Score(480)
        for low, high, step in ((60, 84, 240), (36, 60, 960)):
            track = Track("Piano", 0, False)
            for t in range(0, 8 * 1920, step):
                for p in rng.sample(range(low, high), rng.choice([1, 1, 2, 3])):
                    track.notes.append(Note(t, step, p, rng.choice([60, 80, 100])))
            score.tracks.append(track)
        with atomic_path(folder / f"piece{k:05d}.mid", ".mid") as tmp:
            score.dump_midi(str(tmp))
    return folder


def measure_prepare(corpus: str, rep: str, cache: str) -> dict:
    from cadenza import dataset, representations

    representations._class_for(rep)  # imports (MidiTok's among them) outside the timing, as for MidiTok's own
    start, wall = _cpu(), time.time()
    data = dataset.prepare(corpus, rep, val_fraction=0.1, workers=1, cache_dir=Path(cache),
                           log=None, progress_bar=False)
    summary = data.summary
    return {"cpu_s": _cpu() - start, "wall_s": time.time() - wall, "peak_mb": _peak_mb(),
            "files": summary.files_read, "tokens": summary.tokens}


def measure_miditok(corpus: str, rep: str) -> dict:
    import warnings

    from symusic import Score

    from cadenza import representations
    from cadenza.corpus import find_midi_files

    tokenizer = representations.create(rep).tokenizer
    paths = find_midi_files(corpus)
    start, wall, tokens = _cpu(), time.time(), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            seqs = tokenizer.encode(Score(str(path)))
            tokens += sum(len(s.ids) for s in (seqs if isinstance(seqs, list) else [seqs]))
    return {"cpu_s": _cpu() - start, "wall_s": time.time() - wall, "peak_mb": _peak_mb(),
            "files": len(paths), "tokens": tokens}


def measure_music21(corpus: str, n: int) -> dict:
    """The notebook's loop and cadenza's seed tokenisation, file by file, on a sample."""
    from cadenza.corpus import find_midi_files, read_piano_score
    from cadenza.representations.seed import SeedRepresentation
    from seed_agreement import notebook_loop

    paths = find_midi_files(corpus)
    sample = [paths[round(i * (len(paths) - 1) / max(1, n - 1))] for i in range(min(n, len(paths)))]
    rep = SeedRepresentation()
    notebook_loop(sample[0])  # music21's imports and first-use tables outside the timing
    m21, ours, ratios, tokens = [], [], [], 0
    for path in sample:  # interleaved: music21 once, cadenza three times (median), per file
        start = _cpu()
        notes = notebook_loop(path)[0]
        m21.append(_cpu() - start)
        runs = []
        for _ in range(3):
            start = _cpu()
            mine = rep.pretokenize(read_piano_score(path, merge=False))
            runs.append(_cpu() - start)
        ours.append(statistics.median(runs))
        ratios.append(m21[-1] / ours[-1])
        tokens += len(notes)
        assert len(mine) > 0
    return {"files": len(sample), "music21_cpu_s": sum(m21), "cadenza_cpu_s": sum(ours), "tokens": tokens,
            "median_ratio": statistics.median(ratios), "min_ratio": min(ratios)}


def child(kind: str, *args: str) -> dict:
    """Run one measurement in a fresh process (its own imports, caches and peak memory)."""
    proc = subprocess.run([sys.executable, __file__, "--measure", kind, *args], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    if proc.returncode:
        raise SystemExit(f"{kind} {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rate(row: dict) -> str:
    return (f"{row['cpu_s']:.1f} | {row['files'] / row['cpu_s']:,.0f} | "
            f"{row['tokens'] / row['cpu_s']:,.0f} | {row['peak_mb']:.0f}")


def run_corpus(name: str, corpus: Path, reps: list[str], music21_files: int, workdir: Path) -> list[str]:
    lines: list[str] = []
    for rep in reps:
        shown = len(lines)
        with tempfile.TemporaryDirectory(dir=workdir) as cache:
            cold = child("prepare", str(corpus), rep, cache)
            cached = child("prepare", str(corpus), rep, cache)
        base = child("miditok", str(corpus), rep) if rep != "seed" else None
        ratio = f"{cold['cpu_s'] / base['cpu_s']:.2f}x" if base else ""
        lines.append(f"| {name} | {rep} | cadenza prepare, cold | {rate(cold)} | {ratio} |")
        lines.append(f"| {name} | {rep} | cadenza prepare, cached | {rate(cached)} | |")
        if base:
            lines.append(f"| {name} | {rep} | MidiTok's own encode | {rate(base)} | 1.00x |")
        if rep == "seed" and music21_files:
            m = child("music21", str(corpus), str(music21_files))
            lines.append(f"| {name} | seed | notebook music21 loop, {m['files']} files | "
                         f"{m['music21_cpu_s']:.1f} | {m['files'] / m['music21_cpu_s']:.2f} | "
                         f"{m['tokens'] / m['music21_cpu_s']:,.0f} | | "
                         f"{m['music21_cpu_s'] / m['cadenza_cpu_s']:.0f}x cadenza's CPU on these files "
                         f"(per file: median {m.get('median_ratio', 0):.0f}x, least {m.get('min_ratio', 0):.0f}x) |")
        print("\n".join(lines[shown:]), flush=True)
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--pop909", type=Path, default=Path(os.environ.get("CADENZA_POP909_DATA") or SHARED / "pop909"))
    ap.add_argument("--synthetic", type=int, default=20000, help="files in the synthetic corpus (0: none)")
    ap.add_argument("--reps", default=",".join(REPS))
    ap.add_argument("--music21-files", type=int, default=12)
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "prepare-bench")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.measure:
        kind, *rest = args.measure
        fn = {"prepare": measure_prepare, "miditok": measure_miditok, "music21": measure_music21}[kind]
        print(json.dumps(fn(*rest[:-1], int(rest[-1])) if kind == "music21" else fn(*rest)))
        return 0
    reps = [r for r in args.reps.split(",") if r]
    args.workdir.mkdir(parents=True, exist_ok=True)
    corpora = []
    if args.pop909.is_dir():
        corpora.append(("POP909", args.pop909))
    if args.synthetic:
        corpora.append((f"synthetic {args.synthetic:,}", write_synthetic(args.workdir / f"synthetic{args.synthetic}", args.synthetic)))
    if not corpora:
        print("no corpus: POP909 absent and --synthetic 0", file=sys.stderr)
        return 2
    header = ["| corpus | representation | what | CPU s | files/CPU-s | tokens/CPU-s | peak MB | vs MidiTok / notebook |",
              "|---|---|---|---:|---:|---:|---:|---|"]
    print("\n".join(header), flush=True)
    lines = header[:]
    for name, folder in corpora:
        lines += run_corpus(name, folder, reps, args.music21_files, args.workdir)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
