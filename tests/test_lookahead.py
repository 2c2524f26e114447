"""Melody lookahead: training windows give each bar's top line before the bar (--lookahead), a run
grown for it keeps its start's ids, and accompany writes the melody's blocks ahead of each bar
and leaves them out of the piece."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from symusic import Score

from cadenza.cli import main
from cadenza.config import Config
from cadenza.data import controls, fim, layouts, lookahead
from cadenza.data.corpus import read_piano_score
from cadenza.data.dataset import TokenWindows
from cadenza.data.lookahead import Note, Tables, top_line, with_lookahead
from cadenza.generation.accompany import accompany
from cadenza.rundir import load_run
from test_accompany import _melody

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
POP909 = Path(os.environ.get("CADENZA_POP909_DATA") or SHARED / "pop909")
needs_pop909 = pytest.mark.skipif(not (POP909 / "001" / "001.mid").is_file(), reason="POP909 not beside the repo")


@pytest.fixture(scope="module")
def base():
    return load_run("base")


def _n(position, pitch, length):
    return Note(position, pitch, length, (position, pitch, length))


def test_top_line_is_the_melody_over_its_accompaniment():
    held = _n(0, 72, 16)  # a half note, an arpeggio under it, then a bass note alone
    notes = [_n(0, 48, 4), held, _n(4, 55, 4), _n(8, 60, 4), _n(16, 74, 4), _n(16, 50, 8), _n(20, 71, 4),
             _n(24, 40, 8)]
    assert top_line(notes) == [held, _n(16, 74, 4), _n(20, 71, 4)]  # the bass at 24 is two octaves under
    assert top_line([_n(0, 60, 2), _n(4, 58, 2)]) == [_n(0, 60, 2), _n(4, 58, 2)]  # the first has ended
    assert top_line([]) == []


@needs_pop909
def test_each_closed_bar_reads_its_top_line_first(base):
    rep = base.representation
    tables, top = Tables(rep), layouts.lookahead_id(rep)
    ids = np.asarray(rep.encode(read_piano_score(POP909 / "001" / "001.mid")), dtype=np.int64)
    window = ids[200:1000]
    laid = with_lookahead(window, tables, top)
    assert len(laid) == len(window)
    music = laid[lookahead.outside_blocks(laid, top)]
    assert np.array_equal(music, window[:len(music)])  # the music, in order, the end giving way
    bars = np.flatnonzero(tables.bar[window])
    opened = np.flatnonzero(laid == top)
    assert len(opened) >= len(bars) - 2 and (laid == top + 1).sum() >= len(opened) - 1
    for at in opened[:-1]:  # each block: after a Bar token, the top line of the bar that follows it
        assert tables.bar[laid[at - 1]]
        end = at + 1 + int(np.flatnonzero(laid[at + 1:] == top + 1)[0])
        listed = laid[at + 1:end].reshape(-1, 3)
        nxt = np.flatnonzero(tables.bar[np.minimum(laid[end + 1:], tables.size - 1)] & (laid[end + 1:] < tables.size))
        bar = laid[end + 1:end + 1 + int(nxt[0])] if len(nxt) else laid[end + 1:]
        notes = tables.bar_notes(bar)
        assert [tuple(row) for row in listed] == [n.ids for n in top_line(notes)]
        if notes:
            assert len(listed) and max(tables.pitch[listed[:, 1]]) == max(n.pitch for n in notes)


@needs_pop909
def test_laid_windows_read_the_top_marker_and_compose_with_controls_and_infill(base):
    rep = base.representation
    ids = np.asarray(rep.encode(read_piano_score(POP909 / "002" / "002.mid")), dtype=np.int64)
    plain = TokenWindows(ids, 512, True)
    top = layouts.lookahead_id(rep)
    starts = np.arange(1, 1 + 12 * 97, 97)
    config = Config(controls=1.0, infill=1.0, lookahead=1.0)
    assert layouts.model_vocab(config, rep) == rep.vocab_size + fim.MARKERS + controls.LEVELS + lookahead.MARKERS
    assert layouts.extra_ids(Config(lookahead=0.5)) == layouts.extra_ids(config)  # ids never move
    assert layouts.extra_ids(Config(infill=0.5)) == fim.MARKERS
    x, y = layouts.training_windows(plain, rep, Config(lookahead=1.0)).batch(starts, np.random.default_rng(0))
    assert (x == top).sum() >= 12 and (x == top + 1).any()
    assert not (y == top).any() and (y == top + 1).any()  # the marker read, the block and its end scored
    x, _ = layouts.training_windows(plain, rep, config).batch(starts, np.random.default_rng(0))
    assert (x == top).any() and (x >= controls.first_id(rep)).any() and (x == fim.markers(rep).suf).any()


@pytest.fixture(scope="module")
def lookahead_run(tmp_path_factory) -> Path:
    """The shipped base fine-tuned two steps with lookahead blocks in every window."""
    from midifiles import fine_tune_eighths

    return fine_tune_eighths(tmp_path_factory.mktemp("lookahead"), "--lookahead", "1")


def test_accompany_reads_the_melody_ahead_and_keeps_it_out_of_the_piece(base, lookahead_run, tmp_path):
    run = load_run(lookahead_run)
    rep = run.representation
    top = layouts.lookahead_id(rep)
    assert run.model.embed.num_embeddings == rep.vocab_size + fim.MARKERS + controls.LEVELS + lookahead.MARKERS
    melody = _melody(tmp_path / "ode.mid")
    result = accompany(run, melody, num=2, seed=0, quiet=True, particles=2)
    original = Score(str(melody)).tracks[0].notes.numpy()
    for score, new, forced in zip(result.scores, result.new, result.forced):
        assert (new == top).sum() == result.bars  # a block before each bar ...
        first = new[:int(np.flatnonzero(new == top + 1)[0]) + 1]
        assert len(first) == 2 + 3 * 4  # ... the first bar's: its four quarter notes
        assert forced[new >= rep.vocab_size].all()  # ... read by the model, not the piece's music
        kept, part = score.tracks
        assert np.array_equal(kept.notes.numpy()["pitch"], original["pitch"])
        assert len(part.notes) >= 8


def test_a_lookahead_run_keeps_its_markers(lookahead_run, tmp_path, capsys, monkeypatch):
    from midifiles import write_eighths_corpus

    monkeypatch.setenv("CADENZA_CACHE", str(tmp_path / "cache"))
    songs = write_eighths_corpus(tmp_path / "songs", files=1)
    assert main(["train", str(songs), "--from", str(lookahead_run), "--lookahead", "0", "--run-dir", str(tmp_path / "r"),
                 "--epochs", "1", "--steps-per-epoch", "1", "--threads", "1", "--quiet"]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "error" in line]
    assert len(err) == 1 and "trained with lookahead" in err[0], err
    assert not (tmp_path / "r" / "best.safetensors").exists()
