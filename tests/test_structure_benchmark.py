"""benchmarks/structure.py --quick end to end on real POP909 songs: split, one budget-true
training, held-out NLL per note, generation with the default form, the structure table."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CADENZA_POP909_DATA", ROOT.parent / "shared" / "data" / "pop909"))


@pytest.mark.skipif(not any(DATA.glob("*/*.mid")), reason=f"POP909 folder {DATA} absent")
def test_quick_structure_benchmark_trains_evaluates_and_prints_its_table(tmp_path):
    env = dict(os.environ, CADENZA_CACHE=str(tmp_path / "cache"))
    out = tmp_path / "table.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "structure.py"), "--quick", "--data", str(DATA),
                           "--candidates", "small-lstm", "--workdir", str(tmp_path / "w"), "--pieces", "2",
                           "--bars", "8", "--out", str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((tmp_path / "w" / "test").glob("*.mid"))) == 6
    result = json.loads((tmp_path / "w" / "evaluation.json").read_text())["small-lstm"]
    assert 0 < result["val_nll_note"] < 50 and 0 < result["test_nll_note"] < 50
    sampling = result["sampling"]["1/0.95/0/none"]
    assert set(sampling["test"]["ratio"]) >= {"repeated_bar_share", "scale_consistency", "groove_consistency"}
    assert sampling["gen_tokens_per_s"] > 0
    table = out.read_text()
    assert table.startswith("| candidate |") and "| small-lstm | 1/0.95/0/none |" in table
