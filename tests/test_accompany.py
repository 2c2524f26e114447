"""Accompany: a piano part composed under a given melody by the shipped base (cadenza accompany),
the melody kept note for note; bad input refused in one line, nothing written."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from symusic import Score, Track

from cadenza.cli import main
from cadenza.data.layouts import lookahead_id
from cadenza.data.lookahead import outside_blocks
from cadenza.data.token_stats import TokenKinds
from cadenza.generation.accompany import accompany
from cadenza.rundir import load_run
from midifiles import write_piece

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
POP909 = Path(os.environ.get("CADENZA_POP909_DATA") or SHARED / "pop909")
# "Ode to Joy", 4/4 at 480 ticks a beat: a melody of quarter notes and a dotted figure over 8 bars
ODE = [64, 64, 65, 67, 67, 65, 64, 62, 60, 60, 62, 64, (64, 1.5), (62, 0.5), (62, 2)] * 2


def _melody(path: Path, tpq: int = 480) -> Path:
    events, time = [], 0
    for item in ODE:
        pitch, beats = item if isinstance(item, tuple) else (item, 1)
        events.append((time, int(beats * tpq) - 10, pitch, 90))
        time += int(beats * tpq)
    return write_piece(path, events, tpq)


def _notes(track) -> dict:
    return track.notes.numpy()


@pytest.fixture(scope="module")
def base():
    return load_run("base")


def test_melody_kept_and_accompaniment_under_it(base, tmp_path):
    melody = _melody(tmp_path / "ode.mid")
    result = accompany(base, melody, num=2, seed=0, quiet=True, particles=2)
    assert result.bars == 8 and len(result.scores) == 2
    original = _notes(Score(str(melody)).tracks[0])
    for score, new, forced in zip(result.scores, result.new, result.forced):
        kept, part = score.tracks
        assert all(np.array_equal(_notes(kept)[k], original[k]) for k in ("time", "duration", "pitch", "velocity"))
        notes = _notes(part)
        assert len(notes["time"]) >= 8  # something in every bar on average
        assert notes["time"].max() < 8 * 4 * 480  # nothing past the melody's last bar
        # the melody's notes are written in the token stream where they fall: decoded, the whole
        # stream holds every melody note at its onset, and three tokens a note are the melody's
        kinds = TokenKinds(base.representation)
        music = outside_blocks(new, lookahead_id(base.representation))  # a lookahead block is read, not played
        new, forced = new[music], forced[music]
        whole = base.representation.decode([kinds.bar_id] + [int(t) for t in new])
        cols = _notes(whole.tracks[0])
        heard = {(t * 480 // whole.tpq, p) for t, p in zip(cols["time"], cols["pitch"])}
        assert {(int(t), int(p)) for t, p in zip(original["time"], original["pitch"])} <= heard
        assert forced.sum() == 3 * len(original["time"])
        # the accompaniment stays under the melody: no note above both the melody note at its
        # onset and the next one to come
        for t, p in zip(notes["time"], notes["pitch"]):
            here = original["pitch"][original["time"] == t]
            later = original["pitch"][original["time"] > t]
            if len(later):
                assert p <= max([*here.tolist(), int(later[0])])


def test_cli_writes_candidates_and_refuses_bad_input(tmp_path, capsys):
    melody = _melody(tmp_path / "ode.mid")
    out = tmp_path / "out.mid"
    assert main(["accompany", "base", str(melody), "-o", str(out), "--num", "2", "--seed", "3", "--quiet"]) == 0
    written = [tmp_path / "out-1.mid", tmp_path / "out-2.mid"]
    assert all(p.is_file() for p in written)
    assert [t.name for t in Score(str(written[0])).tracks] == ["Piano", "Accompaniment"]
    stamp = written[0].stat().st_mtime_ns
    capsys.readouterr()
    # existing outputs are not overwritten
    assert main(["accompany", "base", str(melody), "-o", str(out), "--num", "2"]) == 2
    assert written[0].stat().st_mtime_ns == stamp
    assert "already exists" in capsys.readouterr().err
    # a file of several tracks needs --melody-track; an unknown track; a melody without notes
    two = write_piece(tmp_path / "two.mid", None, tracks=[[(0, 480, 72, 90)], [(0, 960, 48, 70)]])
    empty = Score(480)
    empty.tracks.append(Track("Lead", 0, False))
    empty.dump_midi(str(tmp_path / "empty.mid"))
    for argv, said in ((["accompany", "base", str(two), "-o", str(tmp_path / "a.mid")], "--melody-track"),
                       (["accompany", "base", str(two), "--melody-track", "Lead", "-o", str(tmp_path / "a.mid")],
                        "no track 'Lead'"),
                       (["accompany", "base", str(tmp_path / "empty.mid"), "-o", str(tmp_path / "a.mid")],
                        "no notes"),
                       (["accompany", "base", str(tmp_path / "missing.mid"), "-o", str(tmp_path / "a.mid")],
                        "no such MIDI file")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0], err
        assert not (tmp_path / "a.mid").exists()


@pytest.mark.skipif(not (POP909 / "003" / "003.mid").is_file(), reason="POP909 files absent")
def test_pop909_melody_track_named(tmp_path):
    """A POP909 arrangement's MELODY track named on the command line is kept as it is."""
    song = Score(str(POP909 / "003" / "003.mid"))
    first = int(min(n.time for t in song.tracks if t.name == "MELODY" for n in t.notes))  # after the intro
    song = song.clip(first, first + 480 * 16).shift_time(-first)
    song.dump_midi(str(tmp_path / "song.mid"))
    out = tmp_path / "acc.mid"
    assert main(["accompany", "base", str(tmp_path / "song.mid"), "--melody-track", "MELODY", "-o", str(out),
                 "--seed", "0", "--quiet"]) == 0
    melody = [t for t in song.tracks if t.name == "MELODY"][0]
    kept, part = Score(str(out)).tracks
    assert all(np.array_equal(_notes(kept)[k], _notes(melody)[k]) for k in ("time", "duration", "pitch"))
    assert len(part.notes) > 0
