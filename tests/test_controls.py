"""Density controls: training windows carry a density token after each bar (--controls), a run
grown for them keeps its start's weights, and generate --density writes the asked level's token
after every bar; runs without them are refused in one line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cadenza.cli import main
from cadenza.config import Config
from cadenza.data import controls, fim, layouts
from cadenza.data.dataset import TokenWindows
from cadenza.data.token_stats import TokenKinds
from cadenza.generation.generate import _rules, generate
from cadenza.generation.steer import Steer
from cadenza.rundir import load_run
from midifiles import random_piece, write_piece


def _song(rep) -> np.ndarray:
    """A real piece's ids: a MIDI file of random chords written and read back as the corpus reads it."""
    import random

    from cadenza.data.corpus import read_piano_score

    path = write_piece(Path(__import__("tempfile").mkdtemp()) / "song.mid", random_piece(random.Random(3), 400))
    return np.concatenate([[rep.bos_id], rep.encode(read_piano_score(path))])


@pytest.fixture(scope="module")
def base():
    return load_run("base")


def test_each_closed_bar_gets_its_density_token(base):
    rep, kinds = base.representation, TokenKinds(base.representation)
    ids = _song(rep)
    pad = np.zeros(fim.MARKERS + controls.LEVELS, dtype=np.int64)
    bars, pitches = np.append(kinds.bars, pad), np.append(kinds.count("Pitch"), pad)
    first = controls.first_id(rep)
    window = ids[1:300]
    laid = controls.with_density(window, bars, pitches, first)
    assert len(laid) == len(window)
    plain = laid[laid < first]
    assert np.array_equal(plain, window[:len(plain)])  # the window's own tokens, in order, the end giving way
    starts = np.flatnonzero(bars[window])
    for k, at in enumerate(np.flatnonzero(bars[laid])):
        after = laid[at + 1] if at + 1 < len(laid) else None
        if k + 1 < len(starts):  # a bar the window closes: its token says its notes
            notes = pitches[window[starts[k]:starts[k + 1]]].sum()
            assert after == first + controls.bin_of(notes), (k, notes)
        else:
            assert after is None or after < first
    assert controls.bin_of(np.array([0, 1, 9, 10, 11, 17, 28, 100])).tolist() == [0, 1, 8, 9, 9, 12, 14, 19]


def test_laid_windows_score_no_density_token_and_compose_with_infill(base):
    rep = base.representation
    plain = TokenWindows(_song(rep), 256, True)
    assert layouts.training_windows(plain, rep, Config()) is plain
    first = controls.first_id(rep)
    starts = np.arange(1, 1 + 20 * 37, 37)
    for config in (Config(controls=1.0), Config(controls=1.0, infill=1.0)):
        x, y = layouts.training_windows(plain, rep, config).batch(starts, np.random.default_rng(0))
        assert (x >= first).any()  # density tokens read ...
        assert not (y >= first).any() and (y == fim.IGNORED).any()  # ... never scored
        assert layouts.model_vocab(config, rep) == rep.vocab_size + fim.MARKERS + controls.LEVELS
    both = layouts.training_windows(plain, rep, Config(controls=1.0, infill=1.0))
    x, _ = both.batch(starts, np.random.default_rng(0))
    assert (x == fim.markers(rep).suf).any()  # FIM examples among them
    x0, _ = plain.batch(starts)  # evaluation windows stay plain
    x1, _ = layouts.training_windows(plain, rep, Config(controls=1.0)).batch(starts)
    assert torch.equal(x0, x1)


@pytest.fixture(scope="module")
def controls_run(tmp_path_factory) -> Path:
    """The shipped base fine-tuned two steps with density tokens in every window."""
    from midifiles import fine_tune_eighths

    return fine_tune_eighths(tmp_path_factory.mktemp("controls"), "--controls", "1")


def test_a_grown_run_keeps_the_base_and_density_is_written_after_every_bar(base, controls_run):
    run = load_run(controls_run)
    rep, kinds = run.representation, TokenKinds(run.representation)
    assert run.model.embed.num_embeddings == layouts.model_vocab(run.config, rep) \
        >= rep.vocab_size + fim.MARKERS + controls.LEVELS
    rules = _rules(run, kinds, False, Steer(density="high"))
    state = rules.start(np.array([kinds.bar_id]))
    asked = controls.level_token(rep, "high")
    assert np.flatnonzero(rules.allowed(state)).tolist() == [asked]
    state = rules.advance(state, asked)
    mask = rules.allowed(state)
    assert not mask[asked] and mask[:kinds.size].any() and not mask[:kinds.size][kinds.count("Rest") > 0].any()
    result = generate(run, num=2, length=4, unit="bars", seed=1, quiet=True, steer=Steer(density="low"),
                      log=lambda m: None)
    assert all(len(new) and new.max() < kinds.size for new in result.new)  # the levels are not the music's


def test_density_refused_in_one_line(controls_run, plain_run, tmp_path, capsys, monkeypatch):
    from midifiles import write_eighths_corpus

    monkeypatch.setenv("CADENZA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "x.mid"
    songs = write_eighths_corpus(tmp_path / "songs", files=1)
    for argv, said in ((["generate", str(plain_run), "-o", str(out), "--density", "high"],
                        "trained with density controls"),
                       (["generate", str(controls_run), "-o", str(out), "--density", "loud"], "unknown density"),
                       (["train", str(songs), "--from", str(controls_run), "--controls", "0",
                         "--run-dir", str(tmp_path / "r"), "--epochs", "1", "--steps-per-epoch", "1",
                         "--threads", "1", "--quiet"],
                        "trained with controls")):
        assert main(argv) == 2
        err = [line for line in capsys.readouterr().err.strip().splitlines() if "error" in line]
        assert len(err) == 1 and said in err[0], err
        assert not out.exists() and not (tmp_path / "r" / "best.safetensors").exists()


def test_density_particles_keep_the_bars_near_the_target(base):
    """At a bar every particle of a candidate has closed, the particles are redrawn from those
    whose bar came near the level's target; the best particle is the nearest over all bars."""
    from types import SimpleNamespace

    from cadenza.generation.steer import BarFit

    kinds = TokenKinds(base.representation)
    fit = BarFit(4, np.random.default_rng(0), kinds, Steer(density="low"))  # target 10 notes
    bar, pitch = kinds.bar_id, int(np.flatnonzero(kinds.count("Pitch"))[0])

    def bar_of(notes):  # a bar's notes by pitch class
        return np.bincount(np.arange(notes) % 12, minlength=12).astype(float)

    pieces = [SimpleNamespace(group=0, scores=[bar_of(n), bar_of(0)], new=[pitch]) for n in (10, 30, 11, 50)]
    pieces.append(SimpleNamespace(group=1, scores=[bar_of(40), bar_of(0), bar_of(0)], new=[pitch]))  # a candidate
    rows = fit(pieces, torch.zeros(len(pieces), kinds.size))
    assert [p.scores[1].sum() for p in pieces[:4]] == [1, 1, 1, 1]  # the Pitch just written, in the open bar
    assert rows is not None and set(rows[:4]) <= {0, 2} and rows[4] == 4
    pieces[1].new, pieces[1].scores = [bar], [bar_of(30), bar_of(1)]  # a bar closed: a new one opens
    fit.observe(pieces[1], None)
    assert [s.sum() for s in pieces[1].scores] == [30, 1, 0]
    assert fit.best(pieces[:4], 1)[0] is pieces[0]

