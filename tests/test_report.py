"""write_report on two small sets of pieces."""

from __future__ import annotations

import json

import numpy as np
import symusic

from cadenza.evaluate.features import FEATURES
from cadenza.evaluate.report import write_report
from cadenza.evaluate.sanity import MEASURES

TPQ = 480


def piece(rng, spread, n=48):
    score = symusic.Score(TPQ)
    track = symusic.Track("piano", 0, False)
    for i in range(n):
        pitch = int(rng.integers(60 - spread, 61 + spread))
        track.notes.append(symusic.Note(i * TPQ // 2, TPQ // 2, pitch, 80))
    score.tracks.append(track)
    return score


def _strict(text):
    def bad(const):
        raise AssertionError(f"non-standard JSON constant {const}")

    return json.loads(text, parse_constant=bad)


def test_report_sections_and_files(tmp_path):
    rng = np.random.default_rng(0)
    generated = [piece(rng, 12) for _ in range(3)]
    reference = [piece(rng, 5) for _ in range(4)]
    nll = {"nll_per_token": 1.25, "perplexity": 3.49, "nll_per_note": 4.1, "tokens": 2048, "notes": 620}
    result = write_report(tmp_path / "eval", generated, reference, nll, "Run demo")
    out = tmp_path / "eval"
    md = (out / "report.md").read_text()
    for section in ("# Run demo", "## Likelihood", "## Features", "## Sanity", "## Figures"):
        assert section in md
    assert "3.490" in md and "2048" in md and "not computed" not in md
    for label, _ in FEATURES.values():
        assert f"| {label}" in md
    for label in MEASURES.values():
        assert f"| {label} |" in md
    for name in ("report.json", "report_pitch_classes.png", "report_kde.png"):
        assert (out / name).is_file()
        assert f"({name})" in md or name == "report.json"
    data = _strict((out / "report.json").read_text())
    assert data == result
    assert set(data["features"]) == set(FEATURES)
    assert data["n_generated"] == 3 and data["n_real"] == 4
    pr = data["features"]["pitch_range"]
    assert 0 <= pr["oa"] <= 1 and pr["kl"] >= 0
    assert data["sanity"]["generated"]["scale_consistency"]["mean"] <= 1.0


def test_report_without_nll_and_tiny_sets(tmp_path):
    rng = np.random.default_rng(1)
    result = write_report(tmp_path, [piece(rng, 3)], [piece(rng, 3)], None, "tiny")
    md = (tmp_path / "report.md").read_text()
    assert "## Likelihood" in md and "not computed" in md
    assert "n/a" in md  # one piece per set: no intra-set distances, OA/KL undefined
    assert result["likelihood"] is None
    _strict((tmp_path / "report.json").read_text())
