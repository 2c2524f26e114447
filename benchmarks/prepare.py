"""How fast cadenza prepares a corpus, beside the tokenizer alone, in one run.

    python benchmarks/prepare.py [--pop909 DIR] [--synthetic 2000,20000] [--reps seed,remi,...]
        [--synthetic-reps remi,seed] [--repeat 3] [--music21-files 12] [--music21-repeat 3]
        [--workdir runs/prepare-bench] [--out FILE.md]

For POP909 and synthetic corpora of small files (written once into ``--workdir``), each
representation is prepared with ``cadenza.data.dataset.prepare`` (one worker) in a fresh
process, cold (empty cache, ``--repeat`` times) and then cached (the same call again), and
beside it:

* MidiTok representations: MidiTok's own tokenisation of the same files with the same
  tokenizer (``Score(path)`` then ``tokenizer.encode``), also in a fresh process,
  interleaved with the cold preparations; each row is the repetition of median CPU time;
* seed: the notebook's music21 loop (``benchmarks/seed_agreement.py``) on an evenly spaced
  sample of ``--music21-files`` files, interleaved file by file with cadenza's seed
  tokenisation of the same file (``read_piano_score`` + ``pretokenize``), its first run
  on a file and its run again (music21 reads its own pickle of the file then) apart,
  and each beside cadenza's whole cold preparation a file (the cold row's CPU time over
  its files: reading with checks, the spool, the split, the token files).

Times are CPU seconds of the measuring process (``resource.getrusage``), one thread, so
other jobs on a shared machine slow them less than wall time; peak memory is the process's
maximum resident set, and "MB above imports" what it grew while preparing (the goal: the
same for 2,000 and 20,000 files).
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
    from cadenza.data import dataset, representations

    representations._class_for(rep)  # imports (MidiTok's among them) outside the timing, as for MidiTok's own
    imports_mb = _peak_mb()
    start, wall = _cpu(), time.time()
    data = dataset.prepare(corpus, rep, val_fraction=0.1, workers=1, cache_dir=Path(cache),
                           log=None, progress_bar=False)
    summary = data.summary
    return {"cpu_s": _cpu() - start, "wall_s": time.time() - wall, "peak_mb": _peak_mb(),
            "grown_mb": _peak_mb() - imports_mb, "files": summary.files_read, "tokens": summary.tokens}


def measure_miditok(corpus: str, rep: str) -> dict:
    import warnings

    from symusic import Score

    from cadenza.data import representations
    from cadenza.data.corpus import find_midi_files

    tokenizer = representations.create(rep).tokenizer
    paths = find_midi_files(corpus)
    imports_mb = _peak_mb()
    start, wall, tokens = _cpu(), time.time(), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            seqs = tokenizer.encode(Score(str(path)))
            tokens += sum(len(s.ids) for s in (seqs if isinstance(seqs, list) else [seqs]))
    return {"cpu_s": _cpu() - start, "wall_s": time.time() - wall, "peak_mb": _peak_mb(),
            "grown_mb": _peak_mb() - imports_mb, "files": len(paths), "tokens": tokens}


def measure_music21(corpus: str, n: int, repeats: int) -> dict:
    """The notebook's loop and cadenza's seed tokenisation, interleaved file by file on a
    sample, ``repeats`` rounds; each figure a file's median over the rounds. music21 stores
    every file it parses as a pickle in its scratch folder and reads that pickle on the next
    parse: its first run (parse, then store) and a run again (the pickle) are timed apart,
    with a scratch folder of its own so no earlier pickle is found."""
    from music21 import environment

    from cadenza.data.corpus import find_midi_files, read_piano_score
    from cadenza.seed.representation import SeedRepresentation
    from seed_agreement import notebook_loop

    paths = find_midi_files(corpus)
    sample = [paths[round(i * (len(paths) - 1) / max(1, n - 1))] for i in range(min(n, len(paths)))]
    rep = SeedRepresentation()
    with tempfile.TemporaryDirectory() as scratch:
        environment.Environment()["directoryScratch"] = scratch  # this process only, not saved
        notebook_loop(sample[0])  # music21's imports and first-use tables outside the timing
        times: dict[str, list[list[float]]] = {k: [[] for _ in sample] for k in ("first", "again", "cadenza")}
        counts = [0] * len(sample)
        for _ in range(repeats):
            for k, path in enumerate(sample):
                for old in Path(scratch).iterdir():  # its pickle from the last round
                    old.unlink()
                for kind in ("first", "again"):
                    start = _cpu()
                    notes = notebook_loop(path)[0]
                    times[kind][k].append(_cpu() - start)
                for _ in range(3):
                    start = _cpu()
                    mine = rep.pretokenize(read_piano_score(path, merge=False))
                    times["cadenza"][k].append(_cpu() - start)
                assert len(mine) > 0  # (the notebook finds no note in some files: its first part is empty)
                counts[k] = len(notes)
    med = {kind: [statistics.median(t) for t in per_file] for kind, per_file in times.items()}
    out = {"files": len(sample), "repeats": repeats, "tokens": sum(counts)}
    for kind in ("first", "again", "cadenza"):
        out[f"{kind}_cpu_s"] = sum(med[kind])
    for kind in ("first", "again"):
        ratios = [a / b for a, b in zip(med[kind], med["cadenza"])]
        out[f"{kind}_ratio"] = sum(med[kind]) / sum(med["cadenza"])
        out[f"{kind}_median_ratio"], out[f"{kind}_min_ratio"] = statistics.median(ratios), min(ratios)
    return out


ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def child(kind: str, *args: str) -> dict:
    """Run one measurement in a fresh process (its own imports, caches and peak memory),
    on one thread."""
    proc = subprocess.run([sys.executable, __file__, "--measure", kind, *args], capture_output=True,
                          text=True, env={**os.environ, **ONE_THREAD, "PYTHONPATH": str(ROOT / "src")})
    if proc.returncode:
        raise SystemExit(f"{kind} {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_row(rows: list[dict]) -> dict:
    """The repetition of median CPU time (its memory and counts with it)."""
    return sorted(rows, key=lambda r: r["cpu_s"])[(len(rows) - 1) // 2]


def rate(row: dict) -> str:
    return (f"{row['cpu_s']:.1f} | {row['files'] / row['cpu_s']:,.0f} | "
            f"{row['tokens'] / row['cpu_s']:,.0f} | {row['peak_mb']:.0f} | {row['grown_mb']:.0f}")


def run_rep(name: str, corpus: Path, rep: str, repeats: int, workdir: Path) -> tuple[list[str], dict]:
    """Cold preparation and MidiTok's own encoding interleaved ``repeats`` times (medians),
    then the cached preparation once; the table's lines and the cold row."""
    colds, bases = [], []
    with tempfile.TemporaryDirectory(dir=workdir) as keep:
        for r in range(repeats):
            with tempfile.TemporaryDirectory(dir=workdir) as cache:
                colds.append(child("prepare", str(corpus), rep, cache if r else keep))
            if rep != "seed":
                bases.append(child("miditok", str(corpus), rep))
        cached = child("prepare", str(corpus), rep, keep)
    cold, base = median_row(colds), median_row(bases) if bases else None
    ratio = f"{cold['cpu_s'] / base['cpu_s']:.2f}x" if base else ""
    spread = f" ({min(r['cpu_s'] for r in colds):.1f}-{max(r['cpu_s'] for r in colds):.1f})" if repeats > 1 else ""
    lines = [f"| {name} | {rep} | cadenza prepare, cold{spread} | {rate(cold)} | {ratio} |",
             f"| {name} | {rep} | cadenza prepare, cached | {rate(cached)} | |"]
    if base:
        spread = f" ({min(r['cpu_s'] for r in bases):.1f}-{max(r['cpu_s'] for r in bases):.1f})" if repeats > 1 else ""
        lines.append(f"| {name} | {rep} | MidiTok's own encode{spread} | {rate(base)} | 1.00x |")
    return lines, cold


def music21_rows(name: str, corpus: Path, files: int, repeats: int, cold: dict) -> list[str]:
    """The notebook's loop beside cadenza's seed tokenisation of the same files, and beside
    cadenza's whole cold preparation a file (``cold``: its row)."""
    m = child("music21", str(corpus), str(files), str(repeats))
    whole = cold["cpu_s"] / cold["files"]
    lines = []
    for kind, what in (("first", "first run: parse, store its pickle"), ("again", "again: from its pickle")):
        cpu = m[f"{kind}_cpu_s"]
        lines.append(f"| {name} | seed | notebook music21 loop, {m['files']} files, {what} | {cpu:.1f} | "
                     f"{m['files'] / cpu:.2f} | {m['tokens'] / cpu:,.0f} | | | {m[f'{kind}_ratio']:.0f}x cadenza's "
                     f"{m['cadenza_cpu_s']:.3f} CPU-s on these files (per file: median "
                     f"{m[f'{kind}_median_ratio']:.0f}x, least {m[f'{kind}_min_ratio']:.0f}x); "
                     f"{cpu / m['files'] / whole:.0f}x cadenza's whole cold preparation, "
                     f"{1000 * whole:.2f} ms a file |")
    return lines


def run_corpus(name: str, corpus: Path, reps: list[str], args) -> list[str]:
    lines: list[str] = []
    for rep in reps:
        shown = len(lines)
        rows, cold = run_rep(name, corpus, rep, args.repeat, args.workdir)
        lines += rows
        if rep == "seed" and args.music21_files:
            lines += music21_rows(name, corpus, args.music21_files, args.music21_repeat, cold)
        print("\n".join(lines[shown:]), flush=True)
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--pop909", type=Path, default=Path(os.environ.get("CADENZA_POP909_DATA") or SHARED / "pop909"))
    ap.add_argument("--synthetic", default="2000,20000", help="sizes of synthetic corpora, comma-separated ('': none)")
    ap.add_argument("--reps", default=",".join(REPS), help="representations on POP909")
    ap.add_argument("--synthetic-reps", default="remi,seed", help="representations on the synthetic corpora")
    ap.add_argument("--repeat", type=int, default=3, help="cold preparations and MidiTok encodings, interleaved")
    ap.add_argument("--music21-files", type=int, default=12)
    ap.add_argument("--music21-repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "prepare-bench")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.measure:
        kind, *rest = args.measure
        fn = {"prepare": measure_prepare, "miditok": measure_miditok, "music21": measure_music21}[kind]
        print(json.dumps(fn(rest[0], int(rest[1]), int(rest[2])) if kind == "music21" else fn(*rest)))
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    corpora = []
    if args.pop909.is_dir():
        corpora.append(("POP909", args.pop909, args.reps))
    for size in (int(n) for n in args.synthetic.split(",") if n):
        corpora.append((f"synthetic {size:,}", write_synthetic(args.workdir / f"synthetic{size}", size),
                        args.synthetic_reps))
    if not corpora:
        print("no corpus: POP909 absent and no synthetic size", file=sys.stderr)
        return 2
    header = ["| corpus | representation | what | CPU s | files/CPU-s | tokens/CPU-s | peak MB | MB above imports "
              "| vs MidiTok / notebook |", "|---|---|---|---:|---:|---:|---:|---:|---|"]
    print("\n".join(header), flush=True)
    lines = header[:]
    for name, folder, reps in corpora:
        lines += run_corpus(name, folder, [r for r in reps.split(",") if r], args)
    if args.out:
        from cadenza.files import write_bytes_atomic

        write_bytes_atomic(args.out, ("\n".join(lines) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
