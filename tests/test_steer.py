"""Steering generation (``--key``, ``--tempo``), on the shipped base: every tempo event of a
written piece is the asked bpm; a piece written without a warning is in the asked key by
music21's estimate; without either, the same tokens as before for the same seed; bad input
is one line, exit 2, nothing written."""
from __future__ import annotations

import numpy as np
import pytest
from symusic import Score

from cadenza import generate, load_run
from cadenza.cli import main
from cadenza.data.bars import bar_tick
from cadenza.data.token_stats import TEMPO, TokenKinds
from cadenza.generation.generate import _rules, _training_windows
from cadenza.generation.steer import Steer, estimate_key, keyed_windows, key_name, tempo_token

# generate("base", num=2, length=40, seed=11) before steering existed

@pytest.fixture(scope="module")
def base():
    return load_run("base")


def test_without_key_or_tempo_generation_is_left_alone(base):
    """No controls (none given, or an empty Steer): the same tokens, no key checked, nothing
    redrawn."""
    plain, empty = (generate(base, num=2, length=40, seed=11, quiet=True, steer=steer) for steer in (None, Steer()))
    assert [n.tolist() for n in plain.new] == [n.tolist() for n in empty.new]
    assert plain.keys == empty.keys == [] and plain.redraws == empty.redraws == 0


def test_key_and_tempo_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "song.mid"
    assert main(["generate", "base", "-o", str(out), "--num", "2", "--length", "4", "--unit", "bars",
                 "--seed", "3", "--quiet", "--key", "A:minor", "--tempo", "97"]) == 0
    said = capsys.readouterr()
    for k in (1, 2):
        path = tmp_path / f"song-{k}.mid"
        score = Score(str(path))
        assert score.note_num() and [round(t.qpm, 3) for t in score.tempos] == [97.0]
        assert f"wrote {path}" in said.out and "tempo 97 bpm (asked)" in said.out
        if f"piece {k} is in" not in said.err:  # written without a warning: in the asked key
            assert key_name(estimate_key(score)) == "A:minor"
            assert "key A:minor by the key estimate" in said.out


def test_pieces_in_a_key_with_flats_and_the_redraws_counted(base):
    result = generate(base, num=2, length=4, unit="bars", seed=8, quiet=True, steer=Steer(key="Eb:minor"))
    warned = " ".join(result.warnings)
    assert len(result.keys) == 2 and result.redraws >= 0
    for k, found in enumerate(result.keys):
        assert found == "Eb:minor" or f"piece {k + 1} is in {found}" in warned


def test_keyed_windows_are_in_the_asked_key_and_in_range(base):
    rep, kinds = base.representation, TokenKinds(base.representation)
    windows = keyed_windows(rep, kinds, _training_windows(base), "F#:major")
    assert len(windows)
    for window in windows[:6]:
        assert key_name(estimate_key(rep.decode(window.tolist()))) == "F#:major"


def test_the_asked_tempo_is_the_only_one_sampling_may_write(base):
    kinds = TokenKinds(base.representation)
    token, value = tempo_token(kinds, 96)
    rules = _rules(base, kinds, False, Steer(tempo=96))
    state = rules.start([kinds.bos_id])  # nothing in force yet: the asked tempo is
    allowed = np.flatnonzero(rules.allowed(state))
    tempos = [i for i in allowed if kinds.values(TEMPO)[i]]
    assert all(kinds.values(TEMPO)[i] == (value,) for i in tempos)
    assert abs(float(value) - 96) < 3


def test_a_primer_keeps_its_tempo_and_the_continuation_takes_the_asked_one(tmp_path, capsys):
    from symusic import Note, Tempo, Track

    primer = Score(480)
    track = Track("Piano", 0, False)
    track.notes.extend([Note(beat * 480, 480, 60 + beat % 5, 80) for beat in range(8)])
    primer.tracks.append(track)
    primer.tempos.append(Tempo(0, 120.0))
    primer.dump_midi(str(tmp_path / "primer.mid"))
    out, only = tmp_path / "whole.mid", tmp_path / "only.mid"
    common = ["--primer", str(tmp_path / "primer.mid"), "--length", "2", "--unit", "bars", "--seed", "1",
              "--quiet", "--tempo", "72"]
    assert main(["generate", "base", "-o", str(out)] + common) == 0
    assert main(["generate", "base", "-o", str(only), "--continuation-only"] + common) == 0
    whole = Score(str(out))
    assert [(t.time, round(t.qpm, 3)) for t in whole.tempos] == [(0, 120.0), (bar_tick(whole, 2), 72.0)]
    assert [round(t.qpm, 3) for t in Score(str(only)).tempos] == [72.0]


@pytest.mark.parametrize("args, said", [
    (["--key", "H:major"], "unknown key 'H:major'"),
    (["--key", "A:dorian"], "unknown key 'A:dorian'"),
    (["--tempo", "1000"], "--tempo must be a number in [15, 480]"),
    (["--tempo", "-96"], "--tempo must be a number in [15, 480]"),
    (["--tempo", "nan"], "--tempo must be a number in [15, 480]"),
    (["--key", "C:major", "--primer", "PRIMER"], "--key cannot be used with --primer"),
])
def test_bad_key_or_tempo_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, args, said):
    primer = tmp_path / "primer.mid"
    Score(480).dump_midi(str(primer))
    args = [str(primer) if a == "PRIMER" else a for a in args]
    assert main(["generate", "base", "-o", str(tmp_path / "x.mid"), "--length", "2", "--unit", "bars"] + args) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["primer.mid"]


def test_key_particles_keep_the_pieces_in_the_asked_key(base):
    """Asked A minor, the particles whose notes so far are A minor's (its tonic triad and the
    leading tone G#) are kept over those that went to C major on the same white keys."""
    from types import SimpleNamespace

    import torch

    from cadenza.generation.steer import BarFit

    kinds = TokenKinds(base.representation)
    fit = BarFit(4, np.random.default_rng(0), kinds, Steer(key="A:minor"))

    def bar_of(classes):
        return np.bincount(classes, minlength=12).astype(float)

    a_minor, c_major = bar_of([9, 9, 0, 4, 4, 8, 11, 2, 9, 5]), bar_of([0, 0, 4, 7, 7, 2, 5, 11, 0, 9])
    pieces = [SimpleNamespace(group=0, scores=[s, bar_of([])], new=[kinds.bar_id]) for s in
              (c_major, a_minor, c_major, c_major)]
    assert fit.weight(pieces[1], 0) > 0 > fit.weight(pieces[0], 0)
    rows = fit(pieces, torch.zeros(len(pieces), kinds.size))
    assert rows == [1, 1, 1, 1]
