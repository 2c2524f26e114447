"""Infill: bars regenerated given the music before and after them (cadenza infill), learnt by
fill-in-the-middle training (--infill); runs without it load and generate as before."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from symusic import Score, TimeSignature

from cadenza.data import fim, layouts
from cadenza.data.bars import bar_tick
from cadenza.cli import main
from cadenza.config import Config
from cadenza.data.corpus import read_piano_score
from cadenza.data.dataset import TokenWindows
from cadenza.generation.generate import generate
from cadenza.rundir import load_run
from cadenza.data.token_stats import TokenKinds
from midifiles import fine_tune_infill

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
POP909 = Path(os.environ.get("CADENZA_POP909_DATA") or SHARED / "pop909")
SONGS = [POP909 / f"{n:03d}" / f"{n:03d}.mid" for n in (1, 2, 3, 4)]
pytestmark = pytest.mark.skipif(not all(p.is_file() for p in SONGS), reason="POP909 files absent")


@pytest.fixture(scope="module")
def infill_run(tmp_path_factory) -> Path:
    """The shipped base fine-tuned a few steps with half its windows made FIM examples."""
    base = tmp_path_factory.mktemp("infill")
    return fine_tune_infill(SONGS, base, base / "run")


@pytest.fixture
def excerpt(tmp_path) -> Path:
    """The first 16 bars of a POP909 song (its three tracks), as a file."""
    song = Score(str(SONGS[1]))
    end = bar_tick(read_piano_score(SONGS[1]), 16)
    path = tmp_path / "excerpt.mid"
    song.clip(0, end, clip_end=True).dump_midi(str(path))
    return path


def _notes(path: Path, start: int, end: int, inside: bool) -> list[tuple]:
    notes = read_piano_score(path).tracks[0].notes
    return sorted((n.time, n.duration, n.pitch, n.velocity) for n in notes if (start <= n.time < end) == inside)


@pytest.mark.slow
def test_infill_writes_n_candidates_that_keep_every_note_outside_the_span(infill_run, excerpt, tmp_path, capsys):
    out = tmp_path / "out.mid"
    assert main(["infill", str(infill_run), str(excerpt), "--bars", "9-10", "-o", str(out), "--num", "2",
                 "--seed", "3", "--quiet"]) == 0
    piece = read_piano_score(excerpt)
    start, end = bar_tick(piece, 8), bar_tick(piece, 10)
    written = [tmp_path / "out-1.mid", tmp_path / "out-2.mid"]
    assert all(p.is_file() for p in written) and not out.exists()
    for path in written:
        assert _notes(path, start, end, inside=False) == _notes(excerpt, start, end, inside=False)
        score = Score(str(path))
        assert [t.name for t in score.tracks][-1] == "infill 9-10"  # the new bars, beside the piece's own tracks
        assert all(start <= n.time < end for n in score.tracks[-1].notes)
        assert [(t.time, t.qpm) for t in score.tempos] == [(t.time, t.qpm) for t in Score(str(excerpt)).tempos]
    assert "wrote" in capsys.readouterr().out
    # the same seed writes the same candidates
    again = tmp_path / "again.mid"
    assert main(["infill", str(infill_run), str(excerpt), "--bars", "9-10", "-o", str(again), "--num", "2",
                 "--seed", "3", "--quiet"]) == 0
    assert _notes(tmp_path / "again-2.mid", start, end, inside=True) == _notes(written[1], start, end, inside=True)


@pytest.mark.slow
@pytest.mark.parametrize("bars, says", [("12-9", "reversed"), ("0-3", "counted from 1"), ("50-60", "has 16 bars"),
                                        ("", "FIRST-LAST"), ("9-x", "FIRST-LAST")])
def test_a_bad_span_is_one_line_and_writes_nothing(infill_run, excerpt, tmp_path, capsys, bars, says):
    out = tmp_path / "out.mid"
    assert main(["infill", str(infill_run), str(excerpt), "--bars", bars, "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["excerpt.mid"]


@pytest.mark.slow
def test_a_piece_without_notes_and_a_run_without_infill_are_refused(infill_run, plain_run, excerpt, tmp_path, capsys):
    empty = tmp_path / "empty.mid"
    score = Score(480)
    score.time_signatures.append(TimeSignature(0, 4, 4))
    score.dump_midi(str(empty))
    assert main(["infill", str(infill_run), str(empty), "--bars", "1-2", "-o", str(tmp_path / "a.mid")]) == 2
    assert "no notes" in capsys.readouterr().err
    assert main(["infill", str(plain_run), str(excerpt), "--bars", "9-12", "-o", str(tmp_path / "b.mid")]) == 2
    err = capsys.readouterr().err
    assert "not trained for infill" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mid", "excerpt.mid"]


@pytest.mark.slow
def test_the_fine_tune_has_the_markers_and_growing_keeps_the_rows_exactly(infill_run):
    base, grown = load_run("base"), load_run(infill_run)
    assert Config.load(infill_run / "config.json").infill == 0.5
    V = grown.representation.vocab_size
    assert grown.model.embed.num_embeddings == layouts.model_vocab(grown.config, grown.representation) >= V + 3
    # growing a model of the tokenizer's vocabulary alone: old rows exact, the new ones the mean row
    small = type(base.model)(vocab_size=V, **base.config.model_options)
    big = type(base.model)(vocab_size=V + 3, **base.config.model_options)
    fim.grow_vocab(small, big)
    old = small.embed.weight
    assert torch.equal(big.embed.weight[:V], old) and torch.equal(big.out.bias[:V], small.out.bias)
    assert torch.allclose(big.embed.weight[V:], old.mean(0, keepdim=True).expand(3, -1))
    assert big.out.weight is big.embed.weight  # tied weights stay tied


@pytest.mark.slow
def test_a_fine_tune_of_an_infill_run_keeps_its_markers(infill_run, tmp_path, capsys):
    assert main(["train", str(SONGS[0]), "--run-dir", str(tmp_path / "x"), "--from", str(infill_run),
                 "--infill", "0", "--epochs", "1", "--steps-per-epoch", "1", "--threads", "1", "--workers", "1",
                 "--quiet"]) == 2
    assert "keeps its markers" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_a_run_without_markers_has_the_tokenizers_vocabulary_and_a_run_with_them_samples_inside_it(plain_run):
    """A run trained without infill has its tokenizer's vocabulary, nothing grown; the shipped
    base has the markers, the density tokens and the lookahead markers after it, and what it
    samples without asking for them are the tokenizer's tokens."""
    plain = load_run(plain_run)
    assert not fim.has_markers(plain.config)
    assert layouts.model_vocab(plain.config, plain.representation) == plain.representation.vocab_size \
        == plain.model.embed.num_embeddings
    run = load_run("base")
    assert layouts.model_vocab(run.config, run.representation) == run.model.embed.num_embeddings \
        > run.representation.vocab_size
    result = generate(run, num=2, length=64, unit="tokens", seed=11, quiet=True, log=lambda m: None)
    assert max(int(t) for new in result.new for t in new) < run.representation.vocab_size


def test_training_without_infill_reads_the_plain_windows_and_with_it_lays_out_fim_examples():
    rep = load_run("base").representation
    ids = np.concatenate([[rep.bos_id], rep.encode(read_piano_score(SONGS[0]))])
    plain = TokenWindows(ids, 256, True)
    assert layouts.training_windows(plain, rep, Config()) is plain  # infill 0: today's windows, untouched
    windows = layouts.training_windows(plain, rep, Config(infill=1.0))
    starts = np.arange(1, 1 + 40 * 97, 97)
    x0, y0 = plain.batch(starts, np.random.default_rng(5))
    x, y = windows.batch(starts, np.random.default_rng(5))
    marks, bar = fim.markers(rep), TokenKinds(rep).bar_id
    laid = 0
    for k, start in enumerate(starts):
        row, window = np.append(x[k].numpy(), y[k, -1].item()), ids[start:start + 257]
        if (row == marks.suf).sum() == 0:  # a window with too few bars stays as it was
            assert np.array_equal(x[k], x0[k])
            continue
        laid += 1
        assert len(row) == 257 and row[-1] == marks.end
        s, m = int(np.flatnonzero(row == marks.suf)[0]), int(np.flatnonzero(row == marks.mid)[0])
        prefix, suffix, middle = row[:s], row[s + 1:m], row[m + 1:-1]
        assert middle[0] == bar and suffix[0] == bar  # whole bars, cut at bar tokens
        assert np.array_equal(np.concatenate([prefix, middle, suffix]), window[:254])
        assert not ((y[k] == marks.suf) | (y[k] == marks.mid)).any()  # where a span starts is not scored
        assert (y[k] == -100).sum() == (s > 0) + 1
    assert laid > 30


@pytest.mark.slow
def test_an_infill_run_still_generates_and_never_samples_a_marker(infill_run):
    for constrained in (True, False):
        result = generate(infill_run, num=2, length=48, seed=1, constrained=constrained, quiet=True,
                          log=lambda m: None)
        assert all(len(n) == 48 and n.max() < 342 for n in result.new)


@pytest.mark.slow
def test_infill_trains_from_scratch_and_resumes_and_needs_bar_tokens(tmp_path, capsys):
    songs = tmp_path / "songs"
    songs.mkdir()
    for song in SONGS[:2]:
        (songs / song.name).symlink_to(song)
    run = tmp_path / "run"
    flags = ["--infill", "1", "--seq-len", "64", "--batch-size", "4", "--steps-per-epoch", "2", "--threads", "1",
             "--workers", "1", "--quiet", "--max-minutes", "0"]
    assert main(["train", str(songs), "--run-dir", str(run), "--epochs", "1", *flags]) == 0
    assert main(["train", "--run-dir", str(run), "--resume", "--epochs", "2", "--quiet"]) == 0
    loaded = load_run(run)
    assert loaded.config.infill == 1.0 and loaded.model.embed.num_embeddings == loaded.representation.vocab_size + 3
    capsys.readouterr()
    assert main(["train", str(songs), "--run-dir", str(tmp_path / "perf"), "--representation", "performance",
                 "--epochs", "1", *flags]) == 2
    err = capsys.readouterr().err
    assert "bar tokens" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "perf").exists()
