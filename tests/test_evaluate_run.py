"""`cadenza evaluate` on a tiny trained run writes a report with every section."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cadenza import load_run, preset, train
from cadenza.cli import main
from cadenza.evaluate.nll import heldout_nll, piece_nll
from cadenza.evaluate.structure import STRUCTURE


@pytest.mark.slow
def test_evaluate_writes_every_section(corpus_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    cfg = preset("small", model_options={"dim": 32, "layers": 1, "dropout": 0.0}, seq_len=32, batch_size=4,
                 steps_per_epoch=3, epochs=1, threads=1, gen_length=60)
    train(str(corpus_dir), run_dir, cfg, quiet=True)
    assert main(["evaluate", str(run_dir), "--samples", "3", "--bars", "4", "--max-pieces", "5", "--quiet"]) == 0
    text = (run_dir / "report.md").read_text()
    for section in ("## Likelihood", "## Features", "## Sanity", "## Structure", "## Figures", "perplexity",
                    "NLL per note", "pitch-class transition matrix", "note-length histogram", "scale consistency",
                    "empty-bar rate", "longest run", "groove consistency", "(report_self_similarity.png)"):
        assert section in text, section
    report = json.loads((run_dir / "report.json").read_text())
    nll = report["likelihood"]
    assert nll["nll_per_token"] > 0 and abs(nll["perplexity"] - np.exp(nll["nll_per_token"])) < 1e-6
    for name in ("report_pitch_classes.png", "report_self_similarity.png"):
        assert (run_dir / name).stat().st_size > 0
    assert not list(run_dir.glob(".report*"))  # no temporary files left behind
    structure = report["structure"]
    assert structure["bars"] == 4 and structure["pieces"]["generated"] == 3
    assert 1 <= structure["pieces"]["held_out"] <= 5
    for side in ("generated", "held_out", "ratio"):
        assert set(structure[side]) == set(STRUCTURE)
    assert structure["held_out"]["distinct_velocities"] >= 1 and structure["generated"]["notes_per_bar"] > 0
    err = capsys.readouterr().err
    assert "generating 3 pieces of 4 bars" in err and "scoring held-out NLL:" in err


def test_state_carrying_nll_equals_one_full_pass(corpus_dir, tmp_path):
    run_dir = tmp_path / "run"
    cfg = preset("small", model_options={"dim": 32, "layers": 2, "dropout": 0.0}, seq_len=16, batch_size=4,
                 steps_per_epoch=2, epochs=1, threads=1)
    train(str(corpus_dir), run_dir, cfg, quiet=True)
    run = load_run(run_dir)
    ids = np.random.default_rng(0).integers(0, run.representation.vocab_size, size=100)
    total, n = piece_nll(run.model, ids, 16, True)
    x = torch.as_tensor(ids)
    logits, _ = run.model(x[None, :-1])
    full = torch.nn.functional.cross_entropy(logits[0], x[1:], reduction="sum").item()
    assert n == 99 and abs(total - full) < 1e-3
    stats = heldout_nll(run, [(ids, 50)])
    assert abs(stats["nll_per_note"] - full / 50) < 1e-3
