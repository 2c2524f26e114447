"""The seed preset reproduces the notebook: its tokens, its decoding, its network."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from symusic import Score

from cadenza import models
from cadenza.data import representations
from cadenza.seed.model import SeedLSTM
from cadenza.seed.representation import parse_pitch_name, pitch_name, score_to_seed_tokens

from midifiles import write_piece
from seed_agreement import notebook_loop  # the notebook's loop, as written (benchmarks/)


def notebook_tokens(path) -> list[str]:
    """The notebook's own obtain_notes() loop, on one file."""
    return notebook_loop(path)[0]


Q = 480
CASES = {
    # single notes with sharps and flats in several octaves
    "melody": [(k * Q, Q, p, 80) for k, p in enumerate([60, 61, 63, 66, 70, 72, 49, 84])],
    # chords of equal length, in different octaves and inversions
    "chords": [(0, Q, p, 80) for p in (60, 64, 67)] + [(Q, Q, p, 80) for p in (52, 55, 60)]
              + [(2 * Q, 2 * Q, p, 80) for p in (62, 65, 69, 72)] + [(4 * Q, Q, 71, 80)],
    # a note that crosses the barline becomes two tied notes in music21
    "tied": [(0, Q, 60, 80), (3 * Q + Q // 2, Q, 62, 80), (5 * Q, Q, 64, 80)],
    # notes that start together but end apart are separate voices, not a chord
    "voices": [(0, Q, 65, 80), (0, 2 * Q, 69, 80), (2 * Q, Q, 67, 80)],
    # music21 ends a note at the first note-off of its pitch after it (symusic pairs them first
    # in, first out): both C4 end at the first, so they make a chord without the E4, and the
    # second G4 ends at the barline instead of crossing it
    "same_pitch": [(0, Q, 60, 80), (0, 2 * Q, 60, 80), (0, 2 * Q, 64, 80),
                   (6 * Q, 2 * Q, 67, 80), (7 * Q, 2 * Q, 67, 80)],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tokens_match_the_notebooks_music21_extraction(tmp_path, name):
    path = write_piece(tmp_path / f"{name}.mid", CASES[name])
    assert score_to_seed_tokens(Score(str(path))) == notebook_tokens(path)


def test_two_hand_file_matches_music21_and_keeps_the_left_hand(tmp_path):
    right = [(k * Q, Q, p, 80) for k, p in enumerate([72, 74, 76, 77])]
    left = [(0, 2 * Q, 48, 80), (2 * Q, 2 * Q, 43, 80)]
    path = write_piece(tmp_path / "two_hands.mid", None, tracks=[right, left])
    tokens = score_to_seed_tokens(Score(str(path)))
    assert tokens == notebook_tokens(path)
    assert "C3" in tokens and "G2" in tokens


def test_pitch_names_round_trip():
    for midi in range(21, 109):
        assert parse_pitch_name(pitch_name(midi)) == midi
    assert pitch_name(63) == "E-4" and pitch_name(61) == "C#4"


def test_decoding_writes_one_token_every_half_beat_with_chords_in_octave_4():
    rep = representations.create("seed")
    rep.fit([["C#5", "4.9", "E-3"]])
    score = rep.decode(rep.to_ids(["C#5", "4.9", "E-3"]))
    notes = score.tracks[0].notes.numpy()
    step = score.tpq // 2
    assert sorted(set(notes["time"].tolist())) == [0, step, 2 * step]
    assert sorted(notes["pitch"][notes["time"] == step].tolist()) == [64, 69]  # E4, A4
    assert notes["pitch"][notes["time"] == 0].tolist() == [73]
    assert notes["pitch"][notes["time"] == 2 * step].tolist() == [51]
    assert score.tracks[0].program == 0


def test_vocabulary_is_the_sorted_set_and_survives_save_and_load(tmp_path):
    rep = representations.create("seed")
    rep.fit([["E4", "C4", "0.4.7"], ["C4", "G2"]])
    assert rep.vocab == ["0.4.7", "C4", "E4", "G2"]
    representations.save(rep, tmp_path / "tok")
    again = representations.load(tmp_path / "tok")
    assert again.vocab == rep.vocab


def test_transposition_table_moves_notes_and_chords():
    rep = representations.create("seed")
    rep.fit([["C4", "D4", "0.4.7", "2.6.9"]])
    table = rep.transposition_table(2)
    assert rep.vocab[table[rep.vocab.index("C4")]] == "D4"
    assert rep.vocab[table[rep.vocab.index("0.4.7")]] == "2.6.9"
    assert table[rep.vocab.index("D4")] == -1  # E4 is not in the vocabulary


def test_seed_network_has_the_notebooks_parameter_count():
    vocab = 358
    model = models.create("seed_lstm", vocab, {"hidden": 512, "layers": 3, "dense": 256, "dropout": 0.3})
    trainable = sum(p.numel() for p in model.parameters())
    keras = SeedLSTM.keras_parameter_count(vocab)
    # Keras: LSTM 1,052,672 + 2,099,200 + 2,099,200; BN 1,024; Dense 131,328; BN 512; Dense 257*vocab
    assert keras == 1_052_672 + 2 * 2_099_200 + 1_024 + 131_328 + 512 + 257 * vocab
    assert trainable == keras + 3 * 4 * 512  # PyTorch's second LSTM bias per gate and layer


def test_seed_network_reads_the_index_over_vocabulary_size_and_predicts_every_token():
    model = models.create("seed_lstm", 50, {"hidden": 16, "layers": 3, "dense": 8}).eval()
    ids = torch.randint(0, 50, (4, 100))
    logits, _ = model(ids, last_only=True)
    assert logits.shape == (4, 1, 50)
    full, _ = model(ids)
    assert torch.allclose(full[:, -1:], logits, atol=1e-6)
    assert model.lstm.input_size == 1


def test_the_shortcuts_for_plain_tracks_give_what_music21s_general_steps_give(tmp_path, monkeypatch):
    """Tracks grouped by onset and left uncut without the per-note loops (the common case
    of small typeset files) must give the tokens of the general grouping and layout."""
    import random

    from cadenza.seed import music21_replica

    rng = random.Random(7)
    paths = [write_piece(tmp_path / f"p{k}.mid", None, tracks=[
        [(t, d, p, 80) for t, d in zip(range(0, 32 * Q, Q // 2), [Q // 2] * 64)
         for p in rng.sample(range(60, 80), rng.choice([1, 1, 2, 3]))],
        [(t, 2 * Q, p, 80) for t in range(0, 32 * Q, 2 * Q) for p in rng.sample(range(36, 55), 2)]])
        for k in range(6)]
    paths.append(write_piece(tmp_path / "tied.mid", CASES["tied"]))
    shortcut = [score_to_seed_tokens(Score(str(p))) for p in paths]
    assert all(t == notebook_tokens(p) for t, p in zip(shortcut[:2], paths))  # and what music21 gives
    monkeypatch.setattr(music21_replica, "_onset_groups", lambda *args: None)
    monkeypatch.setattr(music21_replica, "_uncut", lambda *args: False)
    assert [score_to_seed_tokens(Score(str(p))) for p in paths] == shortcut


def write_events(path: Path, events, tpq: int = 480, marks=(), own_track: bool = True) -> Path:
    """A MIDI file whose piano track holds ``events`` ((tick, mido message)) in exactly the
    order given, as symusic would not write them; ``marks`` ((tick, meta message)) go in a
    conductor track of their own (``own_track``, format 1) or into the piano track (format 0)."""
    import mido

    def track(timed):
        out, now = mido.MidiTrack(), 0
        for tick, msg in timed:
            out.append(msg.copy(time=tick - now))
            now = tick
        return out

    piano = [(0, mido.MetaMessage("track_name", name="Piano"))]
    piano += [(0, mido.Message("program_change", program=0, channel=c)) for c in (0, 1)]
    mid = mido.MidiFile(type=1 if own_track else 0, ticks_per_beat=tpq)
    if own_track:
        mid.tracks += [track(list(marks)), track(piano + list(events))]
    else:
        mid.tracks.append(track(sorted([*marks, *piano, *events], key=lambda e: e[0])))  # stable: file order kept
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(str(path))
    return path


def on(tick, pitch, channel=0):
    import mido
    return tick, mido.Message("note_on", note=pitch, velocity=80, channel=channel)


def off(tick, pitch, channel=0):
    import mido
    return tick, mido.Message("note_off", note=pitch, velocity=0, channel=channel)


def two_channel_hands(path: Path) -> Path:
    """Both hands in one track, the left on channel 1, each note a little after the right's."""
    events = []
    for k in range(8):
        events += [on(k * Q, 72 + k), on(k * Q + 1, 48 + k % 3, 1)]
        events += [off(k * Q + Q - 10, 48 + k % 3, 1), off(k * Q + Q, 72 + k)]
    return write_events(path, sorted(events, key=lambda e: e[0]))


def test_two_hands_on_two_channels_of_one_track_are_one_part_as_music21_reads_it(tmp_path):
    """symusic splits the track by channel; music21 makes one part of it, whose chords
    join the hands (C5 with C3 is the chord '0')."""
    path = two_channel_hands(tmp_path / "channels.mid")
    tokens = score_to_seed_tokens(Score(str(path)), path.read_bytes())
    assert tokens == notebook_tokens(path)
    assert tokens[:3] == ["0", "1", "2"]
    assert score_to_seed_tokens(Score(str(path)))[:2] == ["C5", "C3"]  # symusic's two tracks


def test_a_note_on_written_before_a_note_off_of_its_pitch_at_its_tick_is_a_grace_note(tmp_path):
    """music21 pairs each note-on with the next note-off of its pitch in the file, so the
    second E5, written before the first one's note-off, ends where it starts: a grace note,
    not a note held across the barline (two tokens)."""
    tpq = 960
    first, second = [on(5680, 76), off(6160, 76)], [on(6160, 76), off(8080, 76)]
    grace = write_events(tmp_path / "on_first.mid", [first[0], second[0], first[1], second[1]], tpq)
    plain = write_events(tmp_path / "off_first.mid", [first[0], first[1], second[0], second[1]], tpq)
    assert score_to_seed_tokens(Score(str(grace)), grace.read_bytes()) == notebook_tokens(grace) == ["E5", "E5"]
    assert score_to_seed_tokens(Score(str(plain)), plain.read_bytes()) == notebook_tokens(plain) == ["E5"] * 3


def test_marks_in_the_note_track_are_looked_ahead_to_when_quantizing_a_length(tmp_path):
    """A time signature in the track with the notes is in the part while music21 quantizes
    it: a 5-tick note at 1835 (3.75 quarters) fills toward it in thirds (1/3 long, cut at
    the barline); one in a conductor track joins the part after, and the note is 1/4 long."""
    import mido

    notes = [on(1835, 68), off(1840, 68)]
    meter = [(5920, mido.MetaMessage("time_signature", numerator=3, denominator=4))]
    inside = write_events(tmp_path / "format0.mid", notes, marks=meter, own_track=False)
    apart = write_events(tmp_path / "format1.mid", notes, marks=meter)
    assert score_to_seed_tokens(Score(str(inside)), inside.read_bytes()) == notebook_tokens(inside) == ["G#4"] * 2
    assert score_to_seed_tokens(Score(str(apart)), apart.read_bytes()) == notebook_tokens(apart) == ["G#4"]


def test_prepare_reads_the_file_as_music21_does(tmp_path):
    """``cadenza prepare`` hands the seed representation the file's bytes."""
    from cadenza.data import dataset

    path = two_channel_hands(tmp_path / "corpus" / "channels.mid")
    data = dataset.prepare(str(path.parent), "seed", val_fraction=0, log=None, workers=1)
    assert data.representation().describe(data.tokens("train")) == notebook_tokens(path)


def test_bytes_it_cannot_follow_music21_through_fall_back_to_symusics_tracks(tmp_path):
    from cadenza.seed.midi_parts import read_parts

    path = two_channel_hands(tmp_path / "channels.mid")
    data = path.read_bytes()
    assert read_parts(data)[0] == Q and len(read_parts(data)[1]) == 1  # one part: both channels
    for bad in (data[:-5], b"MThd" + data[4:12] + b"\x80\x00" + data[14:], data[:14] + b"MTrX" + data[18:]):
        assert read_parts(bad) is None  # cut short, SMPTE time, no MTrk
        assert score_to_seed_tokens(Score(str(path)), bad) == score_to_seed_tokens(Score(str(path)))
