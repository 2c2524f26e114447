"""Ctrl-C or kill during training saves the state and exits cleanly; --resume continues."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from cadenza import rundir


def _inherit_ignored_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell's background job (cmd &) starts


@pytest.mark.parametrize("how", ["ctrl-c", "ctrl-c, started as a background job", "kill"])
def test_a_stop_signal_saves_and_resume_continues(corpus_dir, tmp_path, how):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "cadenza", "train", str(corpus_dir), "--run-dir", str(run_dir), "--preset", "small",
           "--epochs", "1000", "--steps-per-epoch", "2", "--seq-len", "32", "--batch-size", "4", "--threads", "1",
           "--patience", "0", "--quiet"]  # no early stop: the run must still be going when Ctrl-C comes
    # Ctrl-C as in a terminal, whether or not the suite itself runs as a background job (whose
    # SIGINT the shell ignores, and children inherit that); and a training started as a
    # background job, which cadenza listens to all the same
    before = _inherit_ignored_sigint if "background" in how else lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
                            preexec_fn=before)
    deadline = time.time() + 120
    while not (run_dir / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.2)
    assert (run_dir / "metrics.csv").exists(), "training did not finish an epoch"
    proc.send_signal(signal.SIGTERM if how == "kill" else signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: state saved" in err and "Traceback" not in err
    assert not (run_dir / "run.lock").exists()
    state = rundir.load_state(run_dir / "state.pt")
    done = state["epoch"]
    resumed = subprocess.run([sys.executable, "-m", "cadenza", "train", "--run-dir", str(run_dir), "--resume",
                              "--epochs", str(done + 1), "--quiet", "--threads", "1"],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert rundir.load_state(run_dir / "state.pt")["epoch"] == done + 2
