"""The Makefile's targets that touch files: ``make clean`` removes what the build made,
never a user's trained models in ``runs/``."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_clean_keeps_runs_and_removes_the_build(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    made = [".venv/bin/python", "src/cadenza.egg-info/PKG-INFO", "src/cadenza/__pycache__/cli.cpython-312.pyc",
            ".pytest_cache/README.md", "build/lib/x.py"]
    kept = ["runs/mine/best.safetensors", "runs/mine/config.json", "runs/mine/__pycache__/note.txt",
            "src/cadenza/cli.py", "README.md"]
    for name in made + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    done = subprocess.run(["make", "clean"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [n for n in kept if (tmp_path / n).read_text() != n] == []
    assert [n for n in made if (tmp_path / n).exists()] == []
    assert not (tmp_path / ".venv").exists() and not (tmp_path / "src/cadenza.egg-info").exists()
