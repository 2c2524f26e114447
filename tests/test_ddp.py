"""DistributedDataParallel: two CPU processes with gloo, launched by torchrun."""
from __future__ import annotations

import os
import subprocess
import sys

from cadenza import load_run, rundir


def test_two_process_gloo_training_writes_one_run(corpus_dir, tmp_path):
    run_dir = tmp_path / "ddp"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
              "-m", "cadenza", "train", "--run-dir", str(run_dir), "--threads", "1", "--quiet", "--device", "cpu"]
    cmd = launch + [str(corpus_dir), "--preset", "small", "--epochs", "2", "--steps-per-epoch", "2",
                    "--seq-len", "32", "--batch-size", "4"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = rundir.read_metrics(run_dir / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert proc.stderr.count("epoch 2/2") == 1 and proc.stdout.count("run: ") == 1  # only rank 0 logs
    state = rundir.load_state(run_dir / "state.pt")
    assert state["epoch"] == 3
    load_run(run_dir)
    # resume works the same under torchrun
    proc = subprocess.run(launch + ["--resume", "--epochs", "3"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["epoch"] for r in rundir.read_metrics(run_dir / "metrics.csv")] == [1, 2, 3]
