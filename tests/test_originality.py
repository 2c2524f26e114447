"""Originality: spans and 4-bar windows of a piece found verbatim in the training pieces."""
from __future__ import annotations

import json
import shutil

import numpy as np

from cadenza import load_run, preset, train
from cadenza.cli import main
from cadenza.evaluate.originality import TrainingIndex, compare_originality, originality, piece_bars
from cadenza.evaluate.run import _read_pieces, _run_corpus, _training_scores
from midifiles import train_tiny_run, write_piece

TPQ, BAR = 480, 4 * 480


def random_bars(rng, n: int) -> list[list[tuple]]:
    """``n`` bars of 3-8 eighth-grid notes each, pitches 40-90: no two alike by chance."""
    bars = []
    for _ in range(n):
        steps = rng.choice(8, size=int(rng.integers(3, 9)), replace=False)
        bars.append([(int(k) * TPQ // 2, TPQ // 2, int(rng.integers(40, 91)), 80) for k in steps])
    return bars


def events(bars: list[list[tuple]]) -> list[tuple]:
    return [(b * BAR + t, d, p, v) for b, bar in enumerate(bars) for t, d, p, v in bar]


def write_bars(path, bars):
    return write_piece(path, events(bars))


def training_files(tmp_path, rng, pieces: int = 5, bars: int = 24):
    music = [random_bars(rng, bars) for _ in range(pieces)]
    return music, [write_bars(tmp_path / "train" / f"t{k}.mid", m) for k, m in enumerate(music)]


def test_six_copied_bars_are_found(tmp_path):
    rng = np.random.default_rng(1)
    music, files = training_files(tmp_path, rng)
    copy = random_bars(rng, 5) + music[2][7:13] + random_bars(rng, 5)  # bars 5-10 are bars 7-12 of piece 2
    generated = write_bars(tmp_path / "gen" / "copy.mid", copy)
    result = originality([generated], TrainingIndex(files), bars=16)
    assert result["longest_copied_bars"] == {"max": 6, "median": 6.0, "per_piece": [6]}
    assert result["windows"] == 13 and result["copied_4bar_share"] == 3 / 13  # windows at bars 5, 6 and 7


def test_independent_random_bars_copy_nothing(tmp_path):
    rng = np.random.default_rng(2)
    _, files = training_files(tmp_path, rng)
    generated = [write_bars(tmp_path / "gen" / f"g{k}.mid", random_bars(rng, 16)) for k in range(3)]
    held_out = [write_bars(tmp_path / "held" / f"h{k}.mid", random_bars(rng, 20)) for k in range(2)]
    result = compare_originality(generated, held_out, TrainingIndex(files), bars=16)
    for side in ("generated", "held_out"):
        assert result[side]["longest_copied_bars"]["max"] == 0 and result[side]["copied_4bar_share"] == 0.0
        assert result[side]["windows"] == 13 * len(result[side]["longest_copied_bars"]["per_piece"])
    assert result["training_pieces"] == 5 and result["training_windows"] == 5 * 21


def test_a_copy_rests_where_its_source_rests_and_never_ends_on_silence(tmp_path):
    rng = np.random.default_rng(3)
    source = random_bars(rng, 3) + [[]] + random_bars(rng, 2) + [[]] + random_bars(rng, 4)
    index = TrainingIndex([write_bars(tmp_path / "train.mid", source)])
    # bars 1-5 of the source, a rest inside them, then the rest after them and a bar of its own
    copy = random_bars(rng, 1) + source[1:7] + random_bars(rng, 1)
    assert originality([write_bars(tmp_path / "copy.mid", copy)], index, 16)["longest_copied_bars"]["max"] == 5
    # the same with a note where the source rests: the copy breaks there
    broken = copy[:3] + random_bars(rng, 1) + copy[4:]
    assert originality([write_bars(tmp_path / "broken.mid", broken)], index, 16)["longest_copied_bars"]["max"] == 2


def intro_corpus(folder, rng, files: int = 12):
    """Pieces that all open with the same 6 bars, then go their own ways for 10."""
    intro = random_bars(rng, 6)
    for k in range(files):
        write_bars(folder / f"p{k:02d}.mid", intro + random_bars(rng, 10))
    return folder


def test_evaluate_reports_originality_beside_held_out_pieces(tmp_path, capsys):
    corpus = intro_corpus(tmp_path / "corpus", np.random.default_rng(4))
    run_dir = tmp_path / "run"
    cfg = preset("small", model_options={"dim": 32, "layers": 1, "dropout": 0.0}, seq_len=32, batch_size=4,
                 steps_per_epoch=2, epochs=1, threads=1)
    train(str(corpus), run_dir, cfg, quiet=True)
    assert main(["evaluate", str(run_dir), "--samples", "2", "--bars", "8", "--quiet"]) == 0
    report = json.loads((run_dir / "report.json").read_text())["originality"]
    assert report["training_pieces"] == 11 and report["bars"] == 8
    held = report["held_out"]  # the held-out piece's intro is in every training piece; the rest is its own
    assert held["pieces"] == 1 and held["longest_copied_bars"]["max"] == 6
    assert held["copied_4bar_share"] == 3 / 5
    assert report["generated"]["pieces"] == 2 and report["generated"]["longest_copied_bars"]["max"] >= 0
    assert "## Originality" in (run_dir / "report.md").read_text()
    err = capsys.readouterr().err  # the pieces trained on, decoded from their tokens
    assert "decoding training pieces: 11/11" in err and "originality: longest span copied" in err

    run = load_run(run_dir)  # the decoded tokens are the files put through the run's tokenizer
    prepared, source = _run_corpus(run, True, "")
    from_files = _read_pieces(run, prepared.split_files("train", source), "reading", True)
    assert [piece_bars(s) for s in _training_scores(run, prepared, source, True)] == \
        [piece_bars(s) for *_, s in from_files]

    shutil.copytree(corpus, tmp_path / "held")
    shutil.rmtree(corpus)  # the run's source is gone: the figures are skipped, not an error
    assert main(["evaluate", str(run_dir), "--data", str(tmp_path / "held"), "--samples", "1", "--bars", "4",
                 "--max-pieces", "2", "--quiet", "--force"]) == 0
    report = json.loads((run_dir / "report.json").read_text())["originality"]
    assert report == {"skipped": f"the run's training source {corpus} is not on this machine"}
    assert f"Not measured: the run's training source {corpus} is not on this machine." in \
        (run_dir / "report.md").read_text()


def test_a_fine_tune_is_measured_against_the_tokens_it_trained_on(tmp_path, capsys):
    start = train_tiny_run(tmp_path / "start")
    corpus = intro_corpus(tmp_path / "corpus", np.random.default_rng(5))
    run_dir = tmp_path / "tuned"
    train(str(corpus), run_dir, start_from=str(start), overrides=dict(steps_per_epoch=2, epochs=1, threads=1),
          quiet=True, workers=1)
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--samples", "1", "--bars", "8", "--quiet"]) == 0
    err = capsys.readouterr().err  # the fine-tune's own prepared tokens: not prepared again by another tokenizer
    assert "preparing" not in err and "decoding training pieces: 11/11" in err
    held = json.loads((run_dir / "report.json").read_text())["originality"]["held_out"]
    assert held["longest_copied_bars"]["max"] == 6 and held["copied_4bar_share"] == 3 / 5


def test_the_shipped_base_is_measured_without_originality(tmp_path):
    from cadenza.evaluate.run import _training_corpus
    from cadenza.pretrained import resolve_run

    corpus, why = _training_corpus(load_run(resolve_run("base")), str(tmp_path), True)
    assert corpus is None and why == "the shipped model's training files are not on this machine"
