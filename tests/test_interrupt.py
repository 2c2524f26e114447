"""Ctrl-C or kill during training saves the state and exits cleanly; --resume continues.
Ctrl-C while the command is still starting is one line and exit code 130."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cadenza import rundir

ROOT = Path(__file__).resolve().parents[1]


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


def _interrupt_while_torch_loads(cmd: list[str]) -> subprocess.CompletedProcess:
    """Start ``cmd`` and send it SIGINT as soon as torch's library is mapped into it, that
    is, in the middle of ``import torch``, which takes a second or more after that point."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        loading = False
        while not loading and proc.poll() is None and time.monotonic() < deadline:
            with open(f"/proc/{proc.pid}/maps") as maps:
                loading = "libtorch" in maps.read()
            time.sleep(0.002)
        assert loading, "torch was never imported"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.parametrize("how", ["python -m cadenza", "console script"])
def test_ctrl_c_while_the_command_imports_is_one_line(tmp_path, how):
    script = Path(sys.executable).with_name("cadenza")
    if how == "console script" and not script.exists():
        pytest.skip("cadenza is not installed as a console script here")
    start = [sys.executable, "-m", "cadenza"] if how == "python -m cadenza" else [str(script)]
    done = _interrupt_while_torch_loads([*start, "train", "bach", "--run-dir", str(tmp_path / "run")])
    assert (done.returncode, done.stderr, done.stdout) == (130, "cadenza: interrupted\n", "")
    assert not (tmp_path / "run").exists()


def test_ctrl_c_while_a_script_imports_cadenza_stays_a_keyboard_interrupt():
    """Only the command is guarded: a program importing cadenza keeps Python's Ctrl-C."""
    done = _interrupt_while_torch_loads([sys.executable, "-c", "from cadenza import train"])
    assert done.returncode == -signal.SIGINT and "KeyboardInterrupt" in done.stderr
