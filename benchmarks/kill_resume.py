"""Kill training with SIGKILL at random moments, resume it, and check nothing is lost.

    python benchmarks/kill_resume.py --kills 20 --seed 0

1. Generates a small corpus and trains an uninterrupted reference run
   (``python -m cadenza train``, the small preset, a checkpoint after every step).
2. Trains the same run again in a subprocess and kills it with SIGKILL at random:
   some kills land while a checkpoint file is being written (the benchmark watches the
   run directory for the temporary file of an atomic write and kills at once), some at
   a random moment between writes (during a step), some during start-up / data
   preparation. The first start of the campaign, which prepares the data (8 files,
   2 workers: the reader pool starts), is killed while its reader processes run. After
   each kill it checks the run directory: ``load_state`` reads state.pt, ``load_run``
   loads the run once best.safetensors exists, metrics.csv parses with consecutive
   epochs that agree with the state, loss.png is a whole PNG, no temporary file is left
   behind, and no process of the killed training is alive 10 s later. Then it resumes
   with ``--resume`` (or starts again when no state was saved yet) and repeats until the
   training finishes; a new round begins until ``--kills`` kills were made.
3. At the end of each round the final weights (best.safetensors and the model in
   state.pt) must equal the reference run's bit for bit (training is deterministic on
   CPU with one thread and the same seed), and metrics.csv must hold the same epochs
   with the same losses.

Prints the figures and exits 1 if any check failed.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

PNG_END = b"IEND\xaeB`\x82"


def make_corpus(folder: Path, files: int = 8, notes: int = 160) -> None:
    from symusic import Note, Score, Track

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        rng = np.random.default_rng(k)
        score, track = Score(480), Track("Piano", 0, False)
        t = 0
        for _ in range(notes):
            dur = int(rng.choice([120, 240, 480]))
            for p in rng.choice(np.arange(48, 80), size=int(rng.integers(1, 3)), replace=False):
                track.notes.append(Note(t, dur, int(p), int(rng.integers(50, 100))))
            t += dur
        score.tracks.append(track)
        score.dump_midi(str(folder / f"piece{k}.mid"))


def train_cmd(corpus: Path, run_dir: Path, args, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "cadenza", "train", str(corpus), "--run-dir", str(run_dir)]
    if resume:
        return cmd + ["--resume", "--quiet", "--workers", "2", "--device", "cpu"]
    return cmd + ["--preset", "small", "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps),
                  "--seq-len", "32", "--batch-size", "4", "--val-fraction", "0.34", "--seed", str(args.seed),
                  "--patience", "0", "--threads", "1", "--checkpoint-minutes", "0",
                  "--quiet", "--workers", "2", "--device", "cpu"]


def of_process(name: str, pid: int) -> bool:
    """Whether ``name`` is a temporary file of an atomic write by process ``pid``."""
    return re.search(rf"\.tmp{pid}(\.\w+)?$", name) is not None


def temp_files(run_dir: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(run_dir) if ".tmp" in n)
    except FileNotFoundError:
        return []


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:  # not Linux, or gone
        return []


def count_survivors(pids: list[int], wait_s: float = 10.0) -> int:
    """How many of ``pids`` still run (zombies count as dead) ``wait_s`` after the kill;
    they are killed then, so one failure does not leak processes."""
    def alive(pid):
        try:
            return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False
    deadline = time.time() + wait_s
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    survivors = [p for p in pids if alive(p)]
    for p in survivors:
        os.kill(p, signal.SIGKILL)
    return len(survivors)


class Failure(Exception):
    pass


@dataclass
class Stats:
    kills: int = 0
    kinds: dict = field(default_factory=lambda: {"mid-write": 0, "between-writes": 0, "start-up": 0,
                                                 "reader-pool": 0})
    written_at_kill: dict = field(default_factory=dict)  # file -> kills that landed while writing it
    failures: list = field(default_factory=list)
    rounds: int = 0
    starts: int = 0
    stray: int = 0
    stale_locks: int = 0
    pool_kills: int = 0  # kills while the reader pool ran
    orphans: int = 0  # processes of a killed training still alive 10 s later
    cache_tmp: int = 0
    max_diff: float = 0.0
    ref_seconds: float = 0.0
    t_start: float = field(default_factory=time.time)


def check_run_dir(run_dir: Path, final: bool = False) -> dict:
    """Everything a kill may have touched must still load. Returns what was found."""
    from cadenza import rundir
    from cadenza.errors import CadenzaError

    found = {"state_epoch": None, "metric_epochs": []}
    state_path = run_dir / rundir.STATE
    try:
        if state_path.exists():
            state = rundir.load_state(state_path)
            for key in ("model", "optimizer", "epoch", "step", "torch_rng", "data_key"):
                if key not in state:
                    raise Failure(f"state.pt lacks {key}")
            found["state_epoch"], found["state_step"] = state["epoch"], state["step"]
        if (run_dir / rundir.BEST).exists():
            rundir.load_run(run_dir)
        elif found["state_epoch"] not in (None, 1):
            raise Failure("state.pt is past epoch 1 but best.safetensors is missing")
        if (run_dir / rundir.PRIMERS).exists():
            np.load(run_dir / rundir.PRIMERS, allow_pickle=False)
        rows = rundir.read_metrics(run_dir / rundir.METRICS)
    except CadenzaError as exc:
        raise Failure(f"run directory does not load: {exc}") from None
    except (ValueError, KeyError, OSError) as exc:
        raise Failure(f"run directory damaged: {type(exc).__name__}: {exc}") from None
    epochs = [r["epoch"] for r in rows]
    found["metric_epochs"] = epochs
    if epochs != list(range(1, len(epochs) + 1)):
        raise Failure(f"metrics.csv epochs are not consecutive: {epochs}")
    if found["state_epoch"] is not None and not found["state_epoch"] - 1 <= len(epochs) <= found["state_epoch"]:
        raise Failure(f"metrics.csv has {len(epochs)} epochs but state.pt is at epoch {found['state_epoch']}")
    if (run_dir / rundir.LOSS_PLOT).exists() and not (run_dir / rundir.LOSS_PLOT).read_bytes().endswith(PNG_END):
        raise Failure("loss.png is truncated")
    return found


def compare_with_reference(run_dir: Path, ref_dir: Path) -> float:
    """Max |difference| between the round's final weights and the reference's."""
    from safetensors.torch import load_file

    from cadenza import rundir

    worst = 0.0
    a, b = load_file(str(run_dir / rundir.BEST)), load_file(str(ref_dir / rundir.BEST))
    sa, sb = rundir.load_state(run_dir / rundir.STATE), rundir.load_state(ref_dir / rundir.STATE)
    pairs = [(a, b), (sa["model"], sb["model"])]
    for x, y in pairs:
        if x.keys() != y.keys():
            raise Failure("final weights have different tensors than the reference")
        for k in x:
            worst = max(worst, (x[k].float() - y[k].float()).abs().max().item())
    for key in ("epoch", "step", "best_epoch", "best_loss"):
        if sa[key] != sb[key]:
            raise Failure(f"final state {key} = {sa[key]} but the reference has {sb[key]}")
    ma, mb = rundir.read_metrics(run_dir / rundir.METRICS), rundir.read_metrics(ref_dir / rundir.METRICS)
    la = [(m["epoch"], m["train_loss"], m["val_loss"], m["best"]) for m in ma]
    lb = [(m["epoch"], m["train_loss"], m["val_loss"], m["best"]) for m in mb]
    if la != lb:
        raise Failure(f"metrics.csv differs from the reference:\n  {la}\n  {lb}")
    return worst


def run_campaign(args) -> int:
    rnd = random.Random(args.seed)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="cadenza-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus"
    if not corpus.exists():
        make_corpus(corpus)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "CADENZA_CACHE": str(work / "cache-ref")}
    st = Stats()

    ref_dir = work / "reference"
    shutil.rmtree(ref_dir, ignore_errors=True)
    t0 = time.time()
    ref = subprocess.run(train_cmd(corpus, ref_dir, args, False), env=env, capture_output=True, text=True)
    st.ref_seconds = ref_seconds = time.time() - t0
    if ref.returncode != 0:
        print(ref.stderr, file=sys.stderr)
        print("reference run failed", file=sys.stderr)
        return 1
    print(f"reference run: {args.epochs} epochs x {args.steps} steps in {ref_seconds:.1f} s", flush=True)

    env["CADENZA_CACHE"] = str(work / "cache")  # the campaign prepares its own data: kills can hit that too
    while st.kills < args.kills:
        st.rounds += 1
        run_dir = work / f"run{st.rounds}"
        shutil.rmtree(run_dir, ignore_errors=True)
        finished, round_starts = False, 0
        while not finished:
            from cadenza import rundir

            resume = (run_dir / rundir.STATE).exists()
            st.starts += 1
            round_starts += 1
            want_kill = st.kills < args.kills
            kind = rnd.choices(["mid-write", "between-writes", "start-up"], weights=[5, 4, 1])[0] if want_kill else None
            if want_kill and st.starts == 1:
                kind = "reader-pool"  # the first start prepares the data: kill it while its reader pool runs
            stderr_path = work / "stderr.txt"
            with open(stderr_path, "wb") as err:
                proc = subprocess.Popen(train_cmd(corpus, run_dir, args, resume), env=env,
                                        stdout=subprocess.DEVNULL, stderr=err)
                if kind == "start-up":
                    time.sleep(rnd.uniform(0.0, 3.0))
                elif kind == "reader-pool":
                    while proc.poll() is None and not children(proc.pid):
                        time.sleep(0.001)
                elif kind is not None:
                    # wait for this process's n-th checkpoint write to begin
                    n, seen, inside = rnd.randint(1, 2 * args.steps), 0, False
                    while proc.poll() is None:
                        now = [t for t in temp_files(run_dir) if of_process(t, proc.pid)]
                        if now and not inside:
                            seen += 1
                            if seen >= n and kind == "mid-write":
                                break
                        inside = bool(now)
                        if seen >= n and kind == "between-writes":
                            time.sleep(rnd.uniform(0.0, 0.2))
                            break
                        time.sleep(0.0005)
                if kind is not None and proc.poll() is None:
                    kids = children(proc.pid)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    st.kills += 1
                    st.pool_kills += bool(kids)
                    st.orphans += count_survivors(kids)
                    # where it landed: a temporary file of this process left behind means mid-write
                    left = [t for t in temp_files(run_dir) if of_process(t, proc.pid)]
                    left += [f"prepared data ({t})" for t in temp_files(work / "cache" / "prepared")
                             if of_process(t, proc.pid)]
                    landed = "mid-write" if left else (kind if kind in ("start-up", "reader-pool") else "between-writes")
                    for name in left:
                        name = name.split(".tmp")[0].lstrip(".") if not name.startswith("prepared") else "prepared data"
                        st.written_at_kill[name] = st.written_at_kill.get(name, 0) + 1
                    st.kinds[landed] += 1
                    st.stale_locks += (run_dir / "run.lock").exists()  # the next start must take it over
                else:
                    proc.wait()
            text = stderr_path.read_text(errors="replace")
            if "Traceback" in text:
                st.failures.append(f"traceback in the training's stderr:\n{text[-2000:]}")
                print(st.failures[-1], file=sys.stderr)
                return report(args, st, work)
            if proc.returncode == 0:
                finished = True
            elif proc.returncode != -signal.SIGKILL:
                st.failures.append(f"training exited with {proc.returncode}: {text.strip().splitlines()[-1:]}")
                print(st.failures[-1], file=sys.stderr)
                return report(args, st, work)
            try:
                found = check_run_dir(run_dir)
                if finished:
                    leftover = temp_files(run_dir)
                    st.stray += len(leftover)
                    if leftover:
                        raise Failure(f"temporary files left in the finished run: {leftover}")
            except Failure as exc:
                st.failures.append(f"after kill {st.kills} ({kind}): {exc}")
                print(st.failures[-1], file=sys.stderr, flush=True)
                if not args.keep_going:
                    return report(args, st, work)
            if not finished:
                print(f"kill {st.kills:3d} ({kind:14s}) state at epoch {found['state_epoch']} step "
                      f"{found.get('state_step')}, metrics epochs {len(found['metric_epochs'])}: loads", flush=True)
        try:
            diff = compare_with_reference(run_dir, ref_dir)
            st.max_diff = max(st.max_diff, diff)
            if diff > args.tolerance:
                raise Failure(f"final weights differ from the reference by {diff:g}")
            print(f"round {st.rounds}: finished after {round_starts} starts; final weights equal the reference "
                  f"(max |diff| {diff:g}); metrics equal", flush=True)
        except Failure as exc:
            st.failures.append(f"round {st.rounds}: {exc}")
            print(st.failures[-1], file=sys.stderr, flush=True)
            if not args.keep_going:
                break
    return report(args, st, work)


def report(args, st: Stats, work: Path) -> int:
    st.cache_tmp = len(temp_files(work / "cache" / "prepared"))
    print()
    print(f"kills survived:         {st.kills if not st.failures else 'not all'} of {st.kills} "
          f"(seed {args.seed}; {st.rounds} training round(s), {st.starts} starts)")
    print(f"  killed mid-write:     {st.kinds['mid-write']} (" +
          ", ".join(f"{k}: {v}" for k, v in sorted(st.written_at_kill.items())) + ")")
    print(f"  killed between writes (in a step): {st.kinds['between-writes']}")
    print(f"  killed at start-up:   {st.kinds['start-up']}")
    print(f"  killed while the reader pool ran: {st.kinds['reader-pool']}")
    print(f"bytes lost:             {'0' if not st.failures else 'see failures'} (run dir loaded after every "
          f"kill; metrics rows and final weights equal the uninterrupted run, max |diff| {st.max_diff:g})")
    print(f"temp files left:        {st.stray} in finished runs; {st.cache_tmp} unfinished prepared-data folders in the cache")
    print(f"orphans:                {st.orphans} (processes alive 10 s after a kill; {st.pool_kills} kills "
          f"while the reader pool ran)")
    print(f"stale locks taken over: {st.stale_locks} (run.lock of a killed process; the next start went ahead)")
    print(f"time:                   {time.time() - st.t_start:.1f} s (uninterrupted reference run {st.ref_seconds:.1f} s)")
    if st.orphans:
        st.failures.append(f"{st.orphans} processes outlived a killed training")
    if st.failures:
        print(f"FAILED: {len(st.failures)} check(s)")
        for f in st.failures:
            print("  " + f.splitlines()[0])
        return 1
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps", type=int, default=8, help="steps per epoch")
    p.add_argument("--tolerance", type=float, default=0.0, help="allowed max |weight difference|")
    p.add_argument("--workdir", help="keep everything here (default: a temporary folder, removed)")
    p.add_argument("--keep-going", action="store_true", help="do not stop at the first failed check")
    args = p.parse_args(argv)
    remove = args.workdir is None
    if remove:
        args.workdir = tempfile.mkdtemp(prefix="cadenza-kill-")
    try:
        return run_campaign(args)
    finally:
        if remove:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
