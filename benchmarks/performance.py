"""Played music: round trip of the ASAP Bach performances, and a model trained on them.

    python benchmarks/performance.py                      # round trip, every performance
    python benchmarks/performance.py --train 20           # + a 20-CPU-minute training, generation
    python benchmarks/performance.py --skip-round-trip --folds 5 --train 20   # 5 folds by piece

Round trip: every ``.mid`` under ``../shared/data/asap-bach`` that is not ``midi_score.mid``
is read as cadenza reads a corpus, encoded and decoded with ``performance``, ``remi``, and
MidiTok's PerTok (the tokenizer made for expressive timing; its configuration below). Notes
are matched per key, each original note to the nearest unmatched decoded onset within
100 ms. Errors are in milliseconds of the original file's time. The note-off error is taken
after pedal handling, on when each note stops *sounding* (a key released under the sustain
pedal sounds until it lifts: :func:`cadenza.data.corpus.pedal.sustain` applied to both sides).
``ungrammatical`` counts the tokens that cadenza's grammar for the representation would have
masked (0: constrained sampling can produce every training sequence).

Training (``--train MINUTES``): the 59 pieces are split once (seed 0) into training pieces
and 15 % held-out pieces, all performances of a piece on one side; one ``cadenza train``
with the base preset on the performance representation, ``--threads 1`` and
``--max-minutes MINUTES`` counted in the training's own CPU time (``CADENZA_BUDGET_CLOCK=cpu``,
so a shared machine does not shorten it; CPU and wall minutes are printed). Then 16 pieces of 60 s
are generated and compared with the held-out performances (decoded from their tokens, as
``cadenza evaluate`` does): overlap (histogram intersection, 1 = same) of the pooled
inter-onset intervals (40 log-spaced bins, 5 ms to 4 s) and of the velocities (32 bins);
Yang & Lerch's overlapping area for the mean IOI (``cadenza.evaluate.compare``); and the
ratio of pedal presses per second; beside them the same figures for the training
performances themselves (what a model that reproduced its corpus would score). Generation
samples with the run's own defaults (those a ``--representation performance`` run gets,
:data:`cadenza.config.REPRESENTATION_SAMPLING`).

Choosing those defaults (``--choose-sampling``, with ``--run DIR`` or after ``--train``): the
training pieces are split once more by piece (seed 1) and the same figures are measured for
a few samplings against these validation pieces (never the held-out ones); the choice is
the sampling whose worst figure (IOI overlap, velocity overlap, pedal ratio or its inverse)
is highest. ``--run DIR`` judges a run trained before instead of training one.

``--primed SECONDS`` adds a column: one 60 s continuation of each held-out performance's
first SECONDS (a multiple of the clock's 4-second windows), the continuations alone against
the held-out performances. ``--splits N`` measures, without any model, the training
performances against the held-out ones for N splits by piece (seeds 0 to N-1), with the IOI
overlap's bins and weighting varied: how much the split decides the figures.

``--folds K`` (with ``--train MINUTES``): the 59 pieces shuffled (``--fold-seed``, 0) and
dealt round K folds, all performances of a piece in one fold; for each fold one training as
above on the other folds (in ``--workdir``/fold-F, default runs/perf-kfold), 16 pieces of
60 s generated with the run's defaults and compared with the fold's performances, beside
the training performances. Then pooled: every fold's generated pieces against every
performance (each held out once), beside every fold's training performances pooled the same
way (each fold's set weighing the same per second, as its 16 generated pieces do; every
performance is in K-1 training sets, so this reference is close to 1 by construction). A fold
whose training finished has a ``training.json`` and is not trained again (a stopped run can
continue; one stopped mid-training starts again); without ``--train`` the trained folds are
judged and the others listed as not trained. ``--no-shortest-note`` samples the folds' runs
without their corpus's shortest note (``shortest_note_beats``), as runs trained before it
was kept do: the same weights before and after.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from cadenza.data import representations
from cadenza.data.corpus import read_piano_score
from cadenza.data.corpus.pedal import sustain
from cadenza.evaluate.sanity import DURATION_BINS, duration_checks, histogram, intersection
from cadenza.files import atomic_path

ROOT = Path(__file__).resolve().parents[1]

ASAP = ROOT.parent / "shared" / "data" / "asap-bach"
MATCH_S = 0.1
HELD_OUT_SHARE, GENERATED, SECONDS = 0.15, 16, 60.0
LONG_S = 5.0  # a note held longer is rare in a performance (issue 29: stuck notes)


def performances() -> list[Path]:
    return sorted(p for p in ASAP.rglob("*.mid") if p.name != "midi_score.mid")


# -- round trip ------------------------------------------------------------------------------
class PerTokRoundTrip:
    """MidiTok's PerTok: 16ths and 8th triplets with 31 micro-timing bins of 1/240 beat,
    32 velocities, pedal tokens (``pedals=False``: without them; decoding a PedalOff raises
    in miditok 3.1.0)."""

    name = "pertok"

    def __init__(self, pedals: bool) -> None:
        from miditok import PerTok, TokenizerConfig

        self.tokenizer = PerTok(TokenizerConfig(
            pitch_range=(21, 108), beat_res={(0, 4): 4, (4, 12): 2}, num_velocities=32,
            special_tokens=["PAD", "BOS", "EOS"], use_programs=False, use_sustain_pedals=pedals,
            use_tempos=False, use_time_signatures=False, ticks_per_quarter=480, use_microtiming=True,
            max_microtiming_shift=0.125, num_microtiming_bins=30))
        self.name = "pertok" if pedals else "pertok-nopedal"

    def encode(self, score):
        from miditok import TokSequence

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seq = self.tokenizer.encode(score.resample(480, min_dur=1))
        self.tempos = score.tempos.copy()  # PerTok has no tempo tokens here: decode at the file's
        return (seq if isinstance(seq, TokSequence) else seq[0]).ids

    def decode(self, ids):
        from miditok import TokSequence

        score = self.tokenizer.decode([TokSequence(ids=list(ids))])
        if not len(score.tempos):
            score.tempos = self.tempos
        return score


def _sounding(score) -> dict[str, np.ndarray]:
    """Notes in seconds, with the pedal applied, as float arrays."""
    held = sustain(score.to("tick")).to("second")
    parts = [t.notes.numpy() for t in held.tracks if len(t.notes)]
    if not parts:
        return {k: np.zeros(0) for k in ("time", "duration", "pitch", "velocity")}
    return {k: np.concatenate([p[k] for p in parts]).astype(np.float64) for k in parts[0]}


def match(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (original, decoded): per key, each original note in onset order takes the
    nearest unmatched decoded onset within MATCH_S."""
    pairs = []
    for pitch in np.unique(a["pitch"]):
        ia, ib = np.flatnonzero(a["pitch"] == pitch), np.flatnonzero(b["pitch"] == pitch)
        free = np.ones(len(ib), dtype=bool)
        for i in ia[np.argsort(a["time"][ia])]:
            gap = np.where(free, np.abs(b["time"][ib] - a["time"][i]), np.inf)
            if len(gap) and gap.min() <= MATCH_S:
                j = int(np.argmin(gap))
                free[j] = False
                pairs.append((i, ib[j]))
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def round_trip(codec, paths: list[Path]) -> dict:
    grammar = codec.grammar() if hasattr(codec, "grammar") else None
    notes = kept = tokens = pedals_in = pedals_out = bad = failed = 0
    onset, velocity, off = [], [], []
    for path in paths:
        score = read_piano_score(path)
        ids = codec.encode(score)
        try:
            back = codec.decode(ids)
        except Exception:  # PerTok with pedals
            failed += 1
            continue
        if grammar is not None:
            state = grammar.start([])
            for i in ids:
                bad += not grammar.allowed(state)[int(i)]
                state = grammar.advance(state, int(i))
        a, b = _sounding(score), _sounding(back)
        ia, ib = match(a, b)
        notes, kept, tokens = notes + len(a["time"]), kept + len(ia), tokens + len(ids)
        pedals_in += len(score.tracks[0].pedals)
        pedals_out += sum(len(t.pedals) for t in back.tracks)
        onset.append(np.abs(a["time"][ia] - b["time"][ib]) * 1000)
        velocity.append(np.abs(a["velocity"][ia] - b["velocity"][ib]))
        off.append(np.abs(a["time"][ia] + a["duration"][ia] - b["time"][ib] - b["duration"][ib]) * 1000)
    onset, velocity, off = (np.concatenate(x) if x else np.zeros(0) for x in (onset, velocity, off))
    return {"files": len(paths) - failed, "failed": failed, "notes": notes, "kept": kept / max(1, notes),
            "onset_median": np.median(onset), "onset_p99": np.percentile(onset, 99),
            "velocity_mean": velocity.mean(), "velocity_max": velocity.max(),
            "off_median": np.median(off), "off_p99": np.percentile(off, 99),
            "pedals": f"{pedals_in:,} -> {pedals_out:,}", "tokens_per_note": tokens / max(1, kept),
            "ungrammatical": bad if grammar is not None else "-"}


ROWS = (("files decoded", "files", "{:,}"), ("files whose decoding raised", "failed", "{:,}"),
        ("notes kept", "kept", "{:.2%}"), ("onset error, median (ms)", "onset_median", "{:.2f}"),
        ("onset error, 99th percentile (ms)", "onset_p99", "{:.2f}"),
        ("velocity error, mean", "velocity_mean", "{:.2f}"), ("velocity error, max", "velocity_max", "{:.0f}"),
        ("note-off error after the pedal, median (ms)", "off_median", "{:.1f}"),
        ("note-off error after the pedal, 99th percentile (ms)", "off_p99", "{:.1f}"),
        ("pedal events (read -> decoded)", "pedals", "{}"), ("tokens per note", "tokens_per_note", "{:.2f}"),
        ("ungrammatical tokens", "ungrammatical", "{}"))


def print_table(results: dict[str, dict]) -> None:
    names = list(results)
    print("| | " + " | ".join(f"`{n}`" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for label, key, fmt in ROWS:
        print(f"| {label} | " + " | ".join(fmt.format(results[n][key]) for n in names) + " |")


# -- training --------------------------------------------------------------------------------
def split_by_piece(paths: list[Path], seed: int = 0) -> tuple[list[Path], list[Path]]:
    """All performances of a piece on one side; HELD_OUT_SHARE of the pieces held out."""
    pieces = sorted({p.parent for p in paths})
    order = np.random.default_rng(seed).permutation(len(pieces))
    held = {pieces[i] for i in order[:max(1, round(HELD_OUT_SHARE * len(pieces)))]}
    return [p for p in paths if p.parent not in held], [p for p in paths if p.parent in held]


def _linked(paths: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for p in paths:
        link = folder / "_".join(p.relative_to(ASAP).parts[-3:])
        if not link.exists():
            link.symlink_to(p)
    return folder


def train(train_paths: list[Path], workdir: Path, minutes: float, log: Path | None = None) -> tuple[Path, float, float]:
    """``cadenza train`` in ``workdir``/run; its output in ``log`` if given."""
    run_dir = workdir / "run"
    cmd = [sys.executable, "-m", "cadenza", "train", str(_linked(train_paths, workdir / "train")), "--run-dir",
           str(run_dir), "--preset", "base", "--representation", "performance", "--threads", "1",
           "--max-minutes", str(minutes), "--quiet", "--workers", "1"]
    before, began = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    with open(log, "w") if log else contextlib.nullcontext() as out:  # None: the terminal
        subprocess.run(cmd, check=True, env={**os.environ, "CADENZA_BUDGET_CLOCK": "cpu"}, stdout=out)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / 60
    return run_dir, cpu, (time.monotonic() - began) / 60


def _onsets(score) -> np.ndarray:
    notes = score.to("second").tracks[0].notes.numpy()["time"] if score.tracks else np.zeros(0)
    return np.unique(np.round(notes, 3))


IOI_BINS = np.geomspace(0.005, 4.0, 41)          # seconds, log-spaced: a ratio of 1.18 a bin
VELOCITY_BINS = np.linspace(0.5, 127.5, 33)      # the representation's 32 velocity bins


def piece_stats(score) -> dict[str, np.ndarray | float]:
    """What the figures are made of, for one piece: its inter-onset intervals (onsets within
    1 ms one onset), velocities, pedal presses and length in seconds."""
    notes = score.tracks[0].notes.numpy() if score.tracks else {"velocity": np.zeros(0)}
    return {"ioi": np.diff(_onsets(score)), "velocity": notes["velocity"].astype(np.float64),
            "duration": score.to("second").tracks[0].notes.numpy()["duration"].astype(np.float64)
            if score.tracks else np.zeros(0),
            "pedals": len(score.tracks[0].pedals) if score.tracks else 0, "seconds": score.to("second").end()}


def _pooled(stats: list[dict]) -> dict[str, np.ndarray | float]:
    """The pieces' ``stats`` pooled: every interval and note counts once."""
    seconds = sum(s["seconds"] for s in stats)
    return {"ioi": np.concatenate([s["ioi"] for s in stats]),
            "velocity": np.concatenate([s["velocity"] for s in stats]),
            "pedal_rate": sum(s["pedals"] for s in stats) / max(seconds, 1e-9)}


def _decoded(rep, paths: list[Path]) -> list:
    return [rep.decode(rep.encode(read_piano_score(p))) for p in paths]


def overlaps(g: dict, h: dict) -> dict[str, float]:
    """The three targets for pooled stats ``g`` against pooled stats ``h``."""
    return {"ioi_overlap": intersection(g["ioi"], h["ioi"], IOI_BINS),
            "velocity_overlap": intersection(g["velocity"], h["velocity"], VELOCITY_BINS),
            "pedal_rate_ratio": g["pedal_rate"] / max(h["pedal_rate"], 1e-9)}


def figures(made: list, held: list) -> dict:
    """The scores ``made`` against the scores ``held``."""
    from cadenza.evaluate.compare import compare_sets

    g, h = _pooled([piece_stats(s) for s in made]), _pooled([piece_stats(s) for s in held])
    d, long = duration_checks(made, held), duration_checks(made, held, LONG_S)
    return {**overlaps(g, h), "mean_ioi_oa": compare_sets(made, held)["avg_ioi"]["oa"],
            "long_share_generated": long["long_share_generated"], "long_share_held_out": long["long_share_real"],
            "p999_share_generated": d["long_share_generated"], "p999_share_held_out": d["long_share_real"],
            "p999_s": d["long_note_s"], "duration_overlap": d["duration_overlap"],
            "median_duration_generated": d["median_duration_generated"],
            "median_duration_held_out": d["median_duration_real"],
            "pedal_rate_generated": g["pedal_rate"], "pedal_rate_held_out": h["pedal_rate"],
            "median_ioi_generated": float(np.median(g["ioi"])), "median_ioi_held_out": float(np.median(h["ioi"])),
            "mean_velocity_generated": float(g["velocity"].mean()),
            "mean_velocity_held_out": float(h["velocity"].mean()),
            "notes_generated": sum(s.note_num() for s in made)}


def judge(run, held_paths: list[Path], **sampling) -> dict:
    """Generated pieces of ``run`` (sampled as ``sampling`` says, else the run's defaults)
    against the performances ``held_paths`` decoded from their tokens."""
    from cadenza import Sampling, generate, to_scores

    held = _decoded(run.representation, held_paths)
    began = time.process_time()
    made = to_scores(run, generate(run, num=GENERATED, length=SECONDS, unit="seconds", seed=0, quiet=True,
                                   sampling=Sampling(**sampling)))
    return {**figures(made, held), "generation_cpu_minutes": (time.process_time() - began) / 60}


HELD_ROWS = (("IOI overlap", "ioi_overlap", "{:.3f}"), ("velocity-histogram overlap", "velocity_overlap", "{:.3f}"),
             ("OA of the mean IOI (Yang & Lerch)", "mean_ioi_oa", "{:.3f}"),
             ("pedal presses per second", "pedal_rate_generated", "{:.3f}"),
             ("pedal rate ratio", "pedal_rate_ratio", "{:.3f}"), ("median IOI (s)", "median_ioi_generated", "{:.3f}"),
             ("mean velocity", "mean_velocity_generated", "{:.1f}"),
             (f"notes longer than {LONG_S:g} s", "long_share_generated", "{:.2%}"),
             ("notes longer than the held-out 99.9th percentile", "p999_share_generated", "{:.2%}"),
             ("duration-histogram overlap", "duration_overlap", "{:.3f}"),
             ("median duration (s)", "median_duration_generated", "{:.3f}"))


def judge_primed(run, held_paths: list[Path], seconds: float) -> dict:
    """One continuation of SECONDS seconds per performance of ``held_paths``, primed with its
    first ``seconds`` (the primer's "bars" are the clock's 4-second windows), the new part
    alone against the performances."""
    from cadenza import generate, to_scores

    windows = seconds / run.representation.seconds_per_bar
    if windows != int(windows) or windows < 1:
        sys.exit(f"--primed must be a multiple of {run.representation.seconds_per_bar:g} seconds")
    began, made = time.process_time(), []
    for k, path in enumerate(held_paths):
        result = generate(run, num=1, length=SECONDS, unit="seconds", seed=k, quiet=True, primer=path,
                          primer_bars=int(windows))
        made += to_scores(run, result, continuation_only=True)
    return {**figures(made, _decoded(run.representation, held_paths)),
            "generation_cpu_minutes": (time.process_time() - began) / 60}


def print_held_out(run, train_paths: list[Path], held_paths: list[Path], primed: float | None = None) -> None:
    """The generated pieces (and with ``primed`` the continuations of each held-out
    performance's first ``primed`` seconds) and, as a reference, the training performances
    themselves against the held-out performances, side by side."""
    columns = {"generated": judge(run, held_paths)}
    if primed:
        columns[f"generated, primed with the first {primed:g} s of each held-out performance"] = judge_primed(
            run, held_paths, primed)
    columns["training performances"] = figures(_decoded(run.representation, train_paths),
                                               _decoded(run.representation, held_paths))
    print(f"| against the held-out performances | {' | '.join(columns)} | held-out |")
    print("|---|" + "---:|" * (len(columns) + 1))
    made = columns["generated"]
    own = {**HELD_OWN, "p999_share_generated": "p999_share_held_out"}
    for label, key, fmt in HELD_ROWS:
        held = fmt.format(made[own[key]]) if key in own else ""
        print(f"| {label} | {' | '.join(fmt.format(c[key]) for c in columns.values())} | {held} |")
    print(f"generated: {made['notes_generated']:,} notes in {GENERATED} pieces of {SECONDS:g} s, "
          f"{made['generation_cpu_minutes']:.2f} CPU minutes")
    if primed:
        c = list(columns.values())[1]
        print(f"primed: {c['notes_generated']:,} notes in {len(held_paths)} continuations of {SECONDS:g} s, "
              f"{c['generation_cpu_minutes']:.2f} CPU minutes")


# -- k folds by piece: every performance held out once ----------------------------------------
def fold_split(paths: list[Path], k: int, seed: int = 0) -> list[list[Path]]:
    """The held-out performances of each of ``k`` folds: the pieces shuffled (``seed``) and
    dealt round the folds, all performances of a piece in one fold."""
    pieces = sorted({p.parent for p in paths})
    order = np.random.default_rng(seed).permutation(len(pieces))
    fold_of = {pieces[i]: n % k for n, i in enumerate(order)}
    return [[p for p in paths if fold_of[p.parent] == f] for f in range(k)]


def train_fold(train_paths: list[Path], held_paths: list[Path], fold_dir: Path, minutes: float | None) -> dict | None:
    """The fold's training record, training it first if it has none and ``minutes`` is given.
    A run without a record was stopped before its budget was spent: it starts again."""
    record_path, held = fold_dir / "training.json", [str(p) for p in held_paths]
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record["held_out"] != held:
            sys.exit(f"{fold_dir} was trained on another split (other --folds or --fold-seed?): choose another --workdir")
        return record
    if minutes is None:
        return None
    if (fold_dir / "run").exists():
        print(f"{fold_dir / 'run'}: stopped before its budget was spent; trained again from the start", flush=True)
    for stale in (fold_dir / "run", fold_dir / "train"):
        shutil.rmtree(stale, ignore_errors=True)
    _, cpu, wall = train(train_paths, fold_dir, minutes, log=fold_dir / "train.log")
    record = {"held_out": held, "max_minutes": minutes, "cpu_minutes": cpu, "wall_minutes": wall}
    with atomic_path(record_path) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return record


def mixture(groups: list[list[dict]]) -> dict:
    """Pooled stats of several sets, each set weighing the same per second (as each fold's
    generated pieces do: 16 of 60 s): intervals and notes weighted by 1 / the set's seconds."""
    seconds = [sum(s["seconds"] for s in g) for g in groups]
    def cat(key):
        return np.concatenate([s[key] for g in groups for s in g])
    def weights(key):
        return np.concatenate([np.full(len(s[key]), 1 / t) for g, t in zip(groups, seconds) for s in g])
    return {"ioi": cat("ioi"), "ioi_w": weights("ioi"), "velocity": cat("velocity"), "velocity_w": weights("velocity"),
            "duration": cat("duration"), "duration_w": weights("duration"),
            "pedal_rate": float(np.mean([sum(s["pedals"] for s in g) / max(t, 1e-9) for g, t in zip(groups, seconds)]))}


def mixture_figures(g: dict, h: dict) -> dict:
    """The targets for the mixture ``g`` against the mixture ``h``, with the medians and means."""
    def overlap(key, bins):
        return intersection(g[key], h[key], bins, g[key + "_w"], h[key + "_w"])
    return {"ioi_overlap": overlap("ioi", IOI_BINS), "velocity_overlap": overlap("velocity", VELOCITY_BINS),
            "pedal_rate_ratio": g["pedal_rate"] / max(h["pedal_rate"], 1e-9), "pedal_rate_generated": g["pedal_rate"],
            "pedal_rate_held_out": h["pedal_rate"], "median_ioi_generated": float(np.median(g["ioi"])),
            "median_ioi_held_out": float(np.median(h["ioi"])),
            "mean_velocity_generated": float(np.average(g["velocity"], weights=g["velocity_w"])),
            "mean_velocity_held_out": float(np.average(h["velocity"], weights=h["velocity_w"])),
            "duration_overlap": overlap("duration", DURATION_BINS),
            "long_share_generated": float(np.average(g["duration"] > LONG_S, weights=g["duration_w"])),
            "long_share_held_out": float(np.average(h["duration"] > LONG_S, weights=h["duration_w"])),
            "median_duration_generated": float(np.median(g["duration"])),
            "median_duration_held_out": float(np.median(h["duration"]))}


TARGETS = (("IOI", "ioi_overlap", 0.8, None), ("velocity", "velocity_overlap", 0.8, None),
           ("pedal", "pedal_rate_ratio", 0.8, 1.2))  # the issue's: name, figure, lowest, highest


def targets_met(f: dict) -> list[str]:
    return [name for name, key, low, high in TARGETS if f[key] >= low and (high is None or f[key] <= high)]


def met(f: dict) -> str:
    return ", ".join(targets_met(f)) or "none"


def kfold(paths: list[Path], k: int, seed: int, workdir: Path, minutes: float | None, shortest: bool = True) -> None:
    """One training per fold on the other folds (``minutes`` of CPU each, for the folds not
    trained yet), its generated pieces against the fold's performances; then every fold's
    generated pieces pooled against every performance (each held out once), beside the
    training performances of every fold pooled the same way. ``shortest=False``: sampled
    without the corpus's shortest note, as a run from before it was kept."""
    from cadenza import load_run

    rep = representations.create("performance")
    stats = dict(zip(paths, (piece_stats(s) for s in _decoded(rep, paths))))
    folds = fold_split(paths, k, seed)
    print(f"\n{k} folds by piece (seed {seed}) of {len(paths)} performances of {len({p.parent for p in paths})} pieces; "
          f"one training per fold on the other folds, in {workdir}")
    print("| fold | held-out pieces (performances) | training CPU min (wall) | generated: IOI, velocity, pedal ratio, "
          "duration | training performances: IOI, velocity, pedal ratio, duration | targets met by the generated |")
    print("|---|---:|---:|---:|---:|---:|", flush=True)
    done = []
    for f, held_paths in enumerate(folds):
        train_paths = [p for p in paths if p.parent not in {h.parent for h in held_paths}]
        record = train_fold(train_paths, held_paths, workdir / f"fold-{f}", minutes)
        if record is None:
            print(f"| {f} | not trained | | | | |", flush=True)
            continue
        run = load_run(workdir / f"fold-{f}" / "run")
        if not shortest:
            run.representation.limit_notes(run.representation.longest_note, run.representation.longest_pedal)
        made = [piece_stats(s) for s in generated(run)]
        train_s, held_s = [stats[p] for p in train_paths], [stats[p] for p in held_paths]
        g, r = mixture_figures(mixture([made]), mixture([held_s])), mixture_figures(mixture([train_s]), mixture([held_s]))
        print(f"| {f} | {len({p.parent for p in held_paths})} ({len(held_paths)}) | {record['cpu_minutes']:.1f} "
              f"({record['wall_minutes']:.1f}) | {_four(g)} | {_four(r)} | {met(g)} |", flush=True)
        done.append((made, train_s, held_s))
    if done:
        print_pooled(done, k)


def generated(run) -> list:
    from cadenza import to_scores, generate

    return to_scores(run, generate(run, num=GENERATED, length=SECONDS, unit="seconds", seed=0, quiet=True))


def _four(f: dict) -> str:
    return f"{f['ioi_overlap']:.3f}, {f['velocity_overlap']:.3f}, {f['pedal_rate_ratio']:.3f}, {f['duration_overlap']:.3f}"


def print_pooled(done: list[tuple], k: int) -> None:
    held = mixture([[s for _, _, h in done for s in h]])
    columns = {"generated, every fold's": mixture_figures(mixture([m for m, _, _ in done]), held),
               "training performances, every fold's": mixture_figures(mixture([t for _, t, _ in done]), held)}
    print(f"\npooled over {len(done)} of {k} folds: {sum(len(m) for m, _, _ in done)} generated pieces of {SECONDS:g} s "
          f"(each fold's weighing the same per second, as do the training sets beside them) against the "
          f"{sum(len(h) for _, _, h in done)} held-out performances of those folds")
    print(f"| pooled | {' | '.join(columns)} | held-out |")
    print("|---|---:|---:|---:|")
    for label, key, fmt in POOLED_ROWS:
        held_value = fmt.format(columns["generated, every fold's"][HELD_OWN[key]]) if key in HELD_OWN else ""
        print(f"| {label} | {' | '.join(fmt.format(c[key]) for c in columns.values())} | {held_value} |")
    print("| targets met | " + " | ".join(met(c) for c in columns.values()) + " | |", flush=True)


POOLED_ROWS = tuple(r for r in HELD_ROWS if r[1] not in ("mean_ioi_oa", "p999_share_generated"))
HELD_OWN = {"pedal_rate_generated": "pedal_rate_held_out", "median_ioi_generated": "median_ioi_held_out",
            "mean_velocity_generated": "mean_velocity_held_out", "long_share_generated": "long_share_held_out",
            "median_duration_generated": "median_duration_held_out"}


# -- how much the split decides: the training performances against many held-out splits ---
def _per_performance(stats: list[dict], g: dict) -> dict:
    """``g`` with its histograms' weights per performance instead of per interval or note:
    each performance's histogram, averaged (pedal rate: the mean of each one's rate)."""
    return {**g, "ioi_hist": np.mean([histogram(s["ioi"], IOI_BINS) for s in stats], axis=0),
            "velocity_hist": np.mean([histogram(s["velocity"], VELOCITY_BINS) for s in stats], axis=0),
            "pedal_rate": float(np.mean([s["pedals"] / max(s["seconds"], 1e-9) for s in stats]))}


def split_variants(train_stats: list[dict], held_stats: list[dict]) -> dict[str, float]:
    """The training performances against the held-out ones: the benchmark's figures
    (pooled, 40 IOI bins), then the same with 20 and with 80 IOI bins, and weighted per
    performance."""
    g, h = _pooled(train_stats), _pooled(held_stats)
    out = overlaps(g, h)
    for n in (20, 80):
        out[f"ioi_overlap_{n}_bins"] = intersection(g["ioi"], h["ioi"], np.geomspace(0.005, 4.0, n + 1))
    pg, ph = _per_performance(train_stats, g), _per_performance(held_stats, h)
    out["ioi_overlap_per_performance"] = float(np.minimum(pg["ioi_hist"], ph["ioi_hist"]).sum())
    out["velocity_overlap_per_performance"] = float(np.minimum(pg["velocity_hist"], ph["velocity_hist"]).sum())
    out["pedal_rate_ratio_per_performance"] = pg["pedal_rate"] / max(ph["pedal_rate"], 1e-9)
    return out


SPLIT_ROWS = (("IOI overlap (the benchmark's: pooled, 40 bins)", "ioi_overlap", 0.8, None),
              ("velocity overlap (pooled)", "velocity_overlap", 0.8, None),
              ("pedal rate ratio (pooled)", "pedal_rate_ratio", 0.8, 1.2),
              ("IOI overlap, 20 bins", "ioi_overlap_20_bins", 0.8, None),
              ("IOI overlap, 80 bins", "ioi_overlap_80_bins", 0.8, None),
              ("IOI overlap, each performance weighted alike", "ioi_overlap_per_performance", 0.8, None),
              ("velocity overlap, each performance weighted alike", "velocity_overlap_per_performance", 0.8, None),
              ("pedal rate ratio, mean of the performances' rates", "pedal_rate_ratio_per_performance", 0.8, 1.2))


def split_effect(paths: list[Path], seeds: int) -> None:
    """The training performances against the held-out ones, for ``seeds`` splits by piece
    (seed 0 is the benchmark's): no model, only how far apart the two sides of a split are."""
    rep = representations.create("performance")
    began = time.process_time()
    stats = dict(zip(paths, (piece_stats(s) for s in _decoded(rep, paths))))
    rows = []
    for seed in range(seeds):
        train_paths, held_paths = split_by_piece(paths, seed)
        rows.append(split_variants([stats[p] for p in train_paths], [stats[p] for p in held_paths]))
    print(f"\ntraining performances against the held-out ones, {seeds} splits by piece (seeds 0-{seeds - 1}, "
          f"{HELD_OUT_SHARE:.0%} of the pieces held out; {(time.process_time() - began) / 60:.2f} CPU minutes)")
    print("| figure | seed 0 | median | 10th-90th percentile | min-max | splits meeting the target |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, key, low, high in SPLIT_ROWS:
        v = np.array([r[key] for r in rows])
        hits = (v >= low) & (v <= high if high else True)
        p10, p50, p90 = np.percentile(v, [10, 50, 90])
        print(f"| {label} | {v[0]:.3f} | {p50:.3f} | {p10:.3f}-{p90:.3f} | {v.min():.3f}-{v.max():.3f} | "
              f"{hits.sum()} of {len(v)} |")
    ratio = np.array([r["pedal_rate_ratio"] for r in rows])
    all_met = sum(len(targets_met(r)) == len(TARGETS) for r in rows)
    ioi = np.array([r["ioi_overlap"] for r in rows])
    print(f"all three targets met by the training performances themselves: {all_met} of {seeds} splits; seed 0 "
          f"ranks {int((ioi < ioi[0]).sum()) + 1} of {seeds} by IOI overlap and "
          f"{int((np.minimum(ratio, 1 / ratio) < min(ratio[0], 1 / ratio[0])).sum()) + 1} of {seeds} by pedal ratio "
          "(1: furthest from the target)")


# -- choosing the sampling on validation pieces ----------------------------------------------
CANDIDATES = (("base preset: T 1, min-p 0.1", dict(temperature=1.0, top_p=1.0, min_p=0.1)),
              ("T 1, min-p 0.02", dict(temperature=1.0, top_p=1.0, min_p=0.02)),
              ("T 1, top-p 0.98", dict(temperature=1.0, top_p=0.98, min_p=0.0)),
              ("T 0.95, unfiltered", dict(temperature=0.95, top_p=1.0, min_p=0.0)),
              ("T 1, unfiltered", dict(temperature=1.0, top_p=1.0, min_p=0.0)),
              ("T 1.05, unfiltered", dict(temperature=1.05, top_p=1.0, min_p=0.0)),
              ("T 1.1, unfiltered", dict(temperature=1.1, top_p=1.0, min_p=0.0)))


def worst(figures: dict) -> float:
    """The figure furthest from its target: IOI overlap, velocity overlap, pedal ratio (or
    its inverse, above 1)."""
    ratio = figures["pedal_rate_ratio"]
    return min(figures["ioi_overlap"], figures["velocity_overlap"], min(ratio, 1 / max(ratio, 1e-9)))


def choose_sampling(run, train_paths: list[Path]) -> None:
    _, val_paths = split_by_piece(train_paths, seed=1)
    print(f"\nsampling chosen on {len(val_paths)} performances of {len({p.parent for p in val_paths})} "
          "validation pieces (training pieces, split by piece with seed 1)")
    print("| sampling | IOI overlap | velocity overlap | pedal presses/s (ratio) | median IOI (s) | worst |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, sampling in CANDIDATES:
        f = judge(run, val_paths, **sampling)
        print(f"| {name} | {f['ioi_overlap']:.3f} | {f['velocity_overlap']:.3f} | {f['pedal_rate_generated']:.3f} "
              f"({f['pedal_rate_ratio']:.2f}) | {f['median_ioi_generated']:.3f} | {worst(f):.3f} |", flush=True)
    print(f"| validation performances | | | {f['pedal_rate_held_out']:.3f} | {f['median_ioi_held_out']:.3f} | |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=float, metavar="MINUTES", help="also train for this many CPU minutes")
    ap.add_argument("--run", type=Path, help="judge this run (trained on the training split) instead of training")
    ap.add_argument("--choose-sampling", action="store_true", help="compare samplings on validation pieces")
    ap.add_argument("--workdir", type=Path, help="where runs go (default runs/performance, with --folds "
                    "runs/perf-kfold)")
    ap.add_argument("--folds", type=int, metavar="K", help="k folds by piece: one training per fold (--train "
                    "MINUTES for the folds not trained yet; without it, the trained folds are judged)")
    ap.add_argument("--fold-seed", type=int, default=0, help="the shuffle of the pieces into folds")
    ap.add_argument("--skip-round-trip", action="store_true")
    ap.add_argument("--no-shortest-note", action="store_true", help="with --folds: sample without the corpus's "
                    "shortest note, as runs from before it was kept did")
    ap.add_argument("--primed", type=float, metavar="SECONDS", help="also continue the first SECONDS of each "
                    "held-out performance (a multiple of 4)")
    ap.add_argument("--splits", type=int, metavar="N", help="the training performances against the held-out "
                    "ones for N splits by piece (no model)")
    args = ap.parse_args()
    paths = performances()
    if not paths:
        sys.exit(f"no performances under {ASAP}")
    pieces = len({p.parent for p in paths})
    if args.folds is not None and not 2 <= args.folds <= pieces:
        ap.error(f"--folds must be 2 to {pieces}, got {args.folds}")  # exit code 2, before any work
    if not args.skip_round_trip:
        print(f"round trip of {len(paths)} ASAP Bach performances")
        results = {name: round_trip(representations.create(name), paths) for name in ("performance", "remi")}
        for pedals in (False, True):
            results[PerTokRoundTrip(pedals).name] = round_trip(PerTokRoundTrip(pedals), paths)
        print_table(results)
    if args.splits:
        split_effect(paths, args.splits)
    if args.folds:
        kfold(paths, args.folds, args.fold_seed, args.workdir or ROOT / "runs" / "perf-kfold", args.train,
              not args.no_shortest_note)
    elif args.train or args.run:
        from cadenza import load_run

        train_paths, held_paths = split_by_piece(paths)
        print(f"\ntraining on {len(train_paths)} performances of {len({p.parent for p in train_paths})} pieces; "
              f"{len(held_paths)} performances of {len({p.parent for p in held_paths})} pieces held out")
        run_dir = args.run
        if args.train:
            run_dir, cpu, wall = train(train_paths, args.workdir or ROOT / "runs" / "performance", args.train)
            print(f"training: {cpu:.1f} CPU minutes, {wall:.1f} wall minutes (--threads 1, --max-minutes "
                  f"{args.train:g} of CPU time)")
        run = load_run(run_dir)
        if args.choose_sampling:
            choose_sampling(run, train_paths)
            return
        c = run.config
        print(f"held-out pieces, the run's sampling: temperature {c.gen_temperature:g}, top-p {c.gen_top_p:g}, "
              f"min-p {c.gen_min_p:g}")
        print_held_out(run, train_paths, held_paths, args.primed)


if __name__ == "__main__":
    main()
