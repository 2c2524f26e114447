"""Shared fixtures: real MIDI files written with symusic into temporary folders."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from midifiles import fine_tune_infill, random_piece, write_piece


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """Twelve small random piano pieces."""
    rng = random.Random(7)
    folder = tmp_path / "corpus"
    for k in range(12):
        write_piece(folder / f"piece{k:02d}.mid", random_piece(rng))
    return folder


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Prepared data goes to a per-test cache, never the user's; the bach corpus is shared."""
    monkeypatch.setenv("CADENZA_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def studio(tmp_path_factory):
    """A real `cadenza studio` process offering a tiny run named `tiny` (see studio_server.py)."""
    from studio_server import Studio, studio_env, tiny_runs

    base = tmp_path_factory.mktemp("studio")
    mp = pytest.MonkeyPatch()
    mp.setenv("CADENZA_CACHE", str(base / "cache"))
    try:
        runs = tiny_runs(base)
    finally:
        mp.undo()
    server = Studio(runs, studio_env(base / "cache"), "--corpora", str(base))
    server.corpus = base / "corpus"
    server.runs = runs
    yield server
    server.stop()


POP909 = Path(os.environ.get("CADENZA_POP909_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data" / "pop909")


@pytest.fixture(scope="session")
def infill_model(studio, tmp_path_factory) -> str:
    """A model of the studio trained for infill, ``infill`` in its runs folder: the shipped base
    fine-tuned 2 steps on 4 POP909 songs (midifiles.fine_tune_infill, seconds); skipped without them."""
    songs = [POP909 / f"{n:03d}" / f"{n:03d}.mid" for n in (1, 2, 3, 4)]
    if not all(p.is_file() for p in songs):
        pytest.skip("POP909 files absent")
    fine_tune_infill(songs, tmp_path_factory.mktemp("infill"), studio.runs / "infill")
    return "infill"


@pytest.fixture(scope="session")
def plain_run(tmp_path_factory) -> Path:
    """A tiny REMI run trained without infill, density controls or lookahead (seconds): what the
    commands that need them refuse."""
    from midifiles import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("plain"))
