"""scripts/build_base.py on the real POP909 songs: continuing the shipped base keeps its
chain's validation and test songs out of what it trains on."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CADENZA_POP909_DATA", ROOT.parent / "shared" / "data" / "pop909"))


@pytest.mark.slow
@pytest.mark.skipif(not any(DATA.glob("*/*.mid")), reason=f"POP909 folder {DATA} absent")
def test_continuing_the_shipped_base_leaves_out_its_validation_songs_and_the_benchmark_chorales(tmp_path, monkeypatch):
    monkeypatch.setenv("CADENZA_CACHE", str(tmp_path / "cache"))
    for folder in ("scripts", "benchmarks"):
        monkeypatch.syspath_prepend(str(ROOT / folder))
    import build_base
    from structure import split_songs

    from cadenza.data.corpus.bach import bach_chorales
    from cadenza.rundir import load_run

    train, test = split_songs(DATA, tmp_path / "w", quick=False)
    val = build_base.pop909_val(load_run("base"), tmp_path / "w")
    val_songs = {p.name for p in val.iterdir()}
    train_songs = {p.name for p in train.iterdir()}
    assert len(val_songs) == int(0.1 * len(train_songs)) == 76  # the base's val_fraction of 769 songs
    assert val_songs <= train_songs and not val_songs & {p.name for p in test.iterdir()}

    mixed = build_base.mixed_folder(train, val, tmp_path / "mixed", repeats=2)
    linked = {p.name: p.resolve() for p in mixed.iterdir()}
    assert {n[len("pop-"):] for n in linked if n.startswith("pop-")} == train_songs - val_songs
    chorales = sorted(bach_chorales())
    unseen = {p.resolve() for p in chorales[:build_base.BENCHMARK_CHORALES]}
    bach = [p for n, p in linked.items() if n.startswith("bach-")]
    assert len(bach) == 2 * (len(chorales) - build_base.BENCHMARK_CHORALES) and not unseen & set(bach)
