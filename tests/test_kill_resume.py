"""The kill/resume campaign in small: 3 SIGKILLs, each run directory still loads, the
resumed training ends with exactly the weights of an uninterrupted one, and no process of a
killed training survives it (the corpus has 8 files and 2 workers: the reader pool starts)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_kill_resume_three_kills(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kill_resume.py"), "--kills", "3", "--seed", "0",
                           "--epochs", "2", "--steps", "4", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert re.search(r"kills survived:\s+3 of 3", out), out
    assert re.search(r"bytes lost:\s+0 ", out), out
    assert "max |diff| 0)" in out
    assert re.search(r"temp files left:\s+0 in finished runs", out), out
    assert re.search(r"orphans:\s+0 ", out), out
    assert "Traceback" not in proc.stderr
