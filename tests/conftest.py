"""Shared fixtures: real MIDI files written with symusic into temporary folders."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from midifiles import random_piece, write_piece


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
