"""The seed representation's tokens equal the notebook's music21 loop on real files.

The notebook (``obtain_notes``) parses each file with music21 and keeps the first part of
``instrument.partitionByInstrument``. Where that part holds every note of the file (the
POP909 songs) cadenza's tokens, read the way ``cadenza prepare`` reads the file, must be
the same list. The ASAP Bach scores keep their left hand in a track without a program
change or name, which music21 leaves out of every part: there the tokens must be equal on
the hand the notebook keeps, and cadenza keeps the other hand as well.
"""
from __future__ import annotations

import functools
import hashlib
import os
import random
import shutil
from pathlib import Path

import pytest

from cadenza.data import dataset
from cadenza.data.corpus import read_piano_score
from cadenza.seed import music21_replica
from cadenza.seed.representation import SeedRepresentation, score_to_seed_tokens
from seed_agreement import notebook_loop  # the notebook's loop, as written (benchmarks/)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ASAP = Path(os.environ.get("CADENZA_ASAP_DATA") or SHARED / "asap-bach")
POP909 = Path(os.environ.get("CADENZA_POP909_DATA") or SHARED / "pop909")
PIANO_MIDI = SHARED / "piano-midi"
# small scores; songs whose PIANO track makes music21 build voices, move measures (a cut
# chord's stale highest time) and put remainders outside the voices; 180: notes of one
# pitch overlap (music21 ends both at the first note-off); 177 and 413: whether the last
# tempo mark is stored at the end of a part (177: its offset is off the barlines, so it
# is not; 413: quantized, it lands on one, so it is); 766: 1/4 bars and triplets, where
# whether a measure stays sorted (and so keeps a stale highest time) depends on its last
# insert only and on the float music21 computes for a third past a barline
ASAP_SCORES = ["Fugue/bwv_846", "Prelude/bwv_889"]
POP909_SONGS = ["012", "014", "023", "177", "180", "413", "766"]


@functools.lru_cache(maxsize=None)
def notebook(path: Path):
    """The notebook's loop as written, and the notes of the part it walked."""
    return notebook_loop(path)


def cadenza_tokens(path: Path) -> list[str]:
    """As ``cadenza prepare`` does: the reader's tracks and the file's bytes, then the
    representation."""
    rep = SeedRepresentation()
    return rep.pretokenize(read_piano_score(path, merge=not rep.reads_tracks), midi=path.read_bytes())


@pytest.mark.slow
@pytest.mark.skipif(not POP909.is_dir(), reason=f"POP909 folder {POP909} absent")
@pytest.mark.parametrize("song", POP909_SONGS)
def test_pop909_song_gives_the_notebooks_token_list(song):
    path = POP909 / song / f"{song}.mid"
    tokens, parsed_song, s2 = notebook(path)
    every_note = sum(len(p.recurse().notes) for p in parsed_song.parts)
    assert len(s2.parts[0].recurse().notes) == every_note  # the notebook's part is the whole file
    assert cadenza_tokens(path) == tokens


@pytest.mark.skipif(not ASAP.is_dir(), reason=f"ASAP folder {ASAP} absent")
@pytest.mark.parametrize("piece", ASAP_SCORES)
def test_asap_score_matches_on_the_hand_the_notebook_keeps_and_keeps_the_other(piece):
    path = ASAP / "Bach" / piece / "midi_score.mid"
    tokens, parsed_song, s2 = notebook(path)
    kept = {id(n) for n in s2.parts[0].recurse().notes}
    hands = [k for k, p in enumerate(parsed_song.parts) if any(id(n) in kept for n in p.recurse().notes)]
    assert hands == [0] and len(parsed_song.parts) == 2  # the left hand is lost to the notebook
    score = read_piano_score(path, merge=False)
    both = score_to_seed_tokens(score)
    score.tracks = score.tracks[:1]
    assert score_to_seed_tokens(score) == tokens
    assert len(both) > len(tokens) and both == cadenza_tokens(path)


@pytest.mark.slow
@pytest.mark.skipif(not POP909.is_dir(), reason=f"POP909 folder {POP909} absent")
def test_prepare_stores_the_notebooks_tokens(tmp_path):
    song = tmp_path / "corpus" / "014.mid"
    song.parent.mkdir()
    shutil.copy(POP909 / "014" / "014.mid", song)
    data = dataset.prepare(str(song.parent), "seed", val_fraction=0, log=None, workers=1)
    rep = data.representation()
    assert rep.describe(data.tokens("train")) == notebook(song)[0]


def test_chord_names_are_music21s_normal_order():
    from music21 import chord

    rng = random.Random(15)
    sets = [[pc for pc in range(12) if mask >> pc & 1] for mask in rng.sample(range(1, 4096), 60)]
    sets += [[2, 7, 8, 9], [0, 2, 4, 7, 8, 9], [1, 5, 9], [2, 3, 7, 11]]  # music21's own hard cases
    for pcs in sets:
        mask = sum(1 << pc for pc in pcs)
        expected = ".".join(str(pc) for pc in chord.Chord([60 + pc for pc in pcs]).normalOrder)
        assert music21_replica.CHORD_NAMES[mask] == expected, pcs


RAVEL = PIANO_MIDI / "midis" / "Ravel" / "ravel_miroirs_1.mid"


@pytest.mark.skipif(not RAVEL.is_file(), reason=f"piano-midi file {RAVEL} absent")
def test_note_ons_written_before_a_note_off_of_their_pitch_give_music21s_tokens():
    """Ravel's Miroirs 1 writes four note-ons before a note-off of their pitch at the same
    tick (113040 and 113280), which music21 pairs in file order (grace notes). The notebook's
    loop keeps no note of this file (its first part is a track name's, empty), so music21's
    tokens were taken once (music21 10.5.1, 25 CPU-s) from the file with its track names
    removed, where the first part holds both hands: 1594 tokens, these around the first such
    note (symusic's pairing gave 1593, without the F4), and the whole list's digest."""
    tokens = cadenza_tokens(RAVEL)
    assert len(tokens) == 1594
    assert tokens[846:858] == ["A3", "E-3", "5.7", "C3", "5.7", "F4", "F2", "F2", "B3", "F2", "0.5", "G#3"]
    assert hashlib.sha256(" ".join(tokens).encode()).hexdigest()[:16] == "df0278234cf045be"
