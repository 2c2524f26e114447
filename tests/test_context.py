"""Context use: a model that can copy from earlier in a piece gains from it, one that cannot does not.

Two tiny LSTMs are trained for real on synthetic pieces of 13-token bars (a random pitch of
eight, then two fixed notes). Pieces whose second bar repeats the first can be predicted
only by remembering the piece 13 tokens back, out of reach of a 12-token window; long pieces
of independent random bars cannot be predicted from anything.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from cadenza import load_run, preset, train
from cadenza.cli import main
from cadenza.data.corpus import read_piano_score
from cadenza.evaluate.context import SPAN, context_use, copy_share, span
from midifiles import write_piece

PITCHES = [60, 62, 64, 65, 67, 69, 71, 72]
FIXED = [48, 55]  # the second and third note of every bar
RANDOM_BARS = 16
WINDOW = 12  # a bar is 13 tokens: the copied pitch lies one token beyond the window
SEED = int(os.environ.get("CADENZA_TEST_SEED", "0"))  # other seeds: a check that the sizes are not lucky


def bars(pitches: list[int]) -> list[tuple]:
    """Notes of bars of three quarter notes each: ``pitch`` then the fixed two."""
    return [(b * 1920 + i * 480, 480, q, 80) for b, p in enumerate(pitches) for i, q in enumerate([p] + FIXED)]


def piece(rng: random.Random, repeat: bool) -> list[tuple]:
    """Two bars, the second a copy of the first; or ``RANDOM_BARS`` independent bars."""
    if repeat:
        return bars([rng.choice(PITCHES)] * 2)
    return bars([rng.choice(PITCHES) for _ in range(RANDOM_BARS)])


def write_pieces(folder: Path, repeat: bool, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    for k in range(n):
        write_piece(folder / f"p{k:03d}.mid", piece(rng, repeat))
    return folder


def token_ids(run, folder: Path) -> list[np.ndarray]:
    rep = run.representation
    out = []
    for path in sorted(folder.glob("*.mid")):
        ids = rep.encode(read_piano_score(path))
        out.append(ids if rep.bos_id is None else np.concatenate([[rep.bos_id], ids]))
    return out


def train_tiny(base: Path, repeat: bool):
    """(run, held-out folder) of a tiny LSTM trained 400 steps on one kind of piece."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CADENZA_CACHE", str(base / "cache"))  # module scope: the per-test cache is not set up yet
    try:
        corpus = write_pieces(base / "corpus", repeat, 200 if repeat else 40, seed=0)
        cfg = preset("small", model_options={"dim": 64, "layers": 1, "dropout": 0.0}, seq_len=58, batch_size=16,
                     steps_per_epoch=400, epochs=1, threads=1, warmup_steps=10, lr=0.02, transpose=0,
                     val_fraction=0.0, patience=None, seed=SEED)
        train(str(corpus), base / "run", cfg, quiet=True)
    finally:
        mp.undo()
    return load_run(base / "run"), write_pieces(base / "held", repeat, 8, seed=1)


@pytest.fixture(scope="module")
def repeats(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("repeats"), repeat=True)


@pytest.fixture(scope="module")
def random_bars(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("random"), repeat=False)


def test_a_model_that_copies_gains_from_the_first_half(repeats):
    run, held = repeats
    c = context_use(run.model, token_ids(run, held), run.config.seq_len, window=WINDOW)
    assert c["pieces"] == 8 and c["skipped_short"] == 0 and c["second_half_pieces"] == 8
    # the second bar's pitch: certain with the first bar, one of eight without it
    assert c["gain"] > 0.6 and c["full"] < 0.05 < 0.15 < c["short"], c


def test_no_gain_where_nothing_earlier_predicts_what_comes(random_bars):
    run, held = random_bars
    c = context_use(run.model, token_ids(run, held), run.config.seq_len, window=WINDOW)
    assert c["pieces"] == 8 and c["positions"] == sum(len(ids) - len(ids) // 2 for ids in token_ids(run, held))
    assert abs(c["gain"]) < 0.15 and abs(c["full"] - np.log(8) / 13) < 0.03, c


def test_evaluate_reports_context_use_and_skips_short_pieces(random_bars, tmp_path):
    run, _ = random_bars
    held = write_pieces(tmp_path / "held", repeat=False, n=3, seed=2)
    write_piece(held / "short.mid", bars([60]))  # 16 tokens: fewer than two windows of 32
    out = tmp_path / "report"
    assert main(["evaluate", str(run.directory), "--data", str(held), "--samples", "2", "--bars", "2",
                 "--quiet", "--out", str(out)]) == 0
    c = json.loads((out / "report.json").read_text())["context"]
    assert c["pieces"] == 3 and c["skipped_short"] == 1 and c["second_half_pieces"] == 3 and c["window"] == 32
    assert c["positions"] == sum(len(ids) - len(ids) // 2 for ids in token_ids(run, held)[:3])
    assert c["gain"] == pytest.approx((c["short"] - c["full"]) / c["short"])
    text = (out / "report.md").read_text()
    assert "## Context use" in text and "1 shorter than 64 tokens skipped" in text


def test_the_span_is_positions_1024_to_2048_or_the_second_half():
    assert span(5000) == SPAN == (1024, 2048)
    assert span(2048) == (1024, 2048)
    assert span(1000) == (500, 1000)
    assert span(63) is None and span(64) == (32, 64)
    assert span(5000, max_len=1500) == (750, 1500)  # a transformer sees at most max_len tokens


def test_copy_share_counts_positions_an_exact_copy_predicts():
    motif = list(range(10, 30))
    ids = np.array(motif + motif + list(range(100, 120)))
    # targets 20-59: the second motif from its 9th token on is an exact copy (12 of 40); the rest is new
    assert copy_share(ids, 20, 60) == pytest.approx(12 / 40)
    assert copy_share(np.arange(200), 100, 200) == 0
