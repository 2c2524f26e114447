"""MidiTok representations (REMI, TSD, MIDI-Like, Structured): round trips through real
MIDI files, save/load, BPE, transposition and grammar-constrained sampling."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from miditok import TokSequence
from symusic import Note, Score, Track

from cadenza.errors import CadenzaError
from cadenza.data.representations import create, load, save
from cadenza.data.representations.grammar import MIDILikeGrammar

NAMES = ("remi", "tsd", "midilike", "structured")
TPQ = 480


def _piece(bars: int = 4, seed: int = 0) -> Score:
    """A piano piece on the 1/8-beat grid: chords in different octaves, several
    durations (sixteenth to two beats), velocities at bin centres, off-beat onsets."""
    rng = np.random.default_rng(seed)
    score = Score(TPQ)
    right, left = Track("rh", 0, False), Track("lh", 0, False)
    durations = [120, 240, 480, 960, 360]
    velocities = [39, 55, 71, 87, 103]
    t = 0
    for bar in range(bars):
        # left hand: a low chord on the downbeat, a mid chord on beat 3
        for p in (36, 43):
            left.notes.append(Note(bar * 4 * TPQ, 960, p + bar % 3, velocities[bar % 5]))
        for p in (48, 52, 55):
            left.notes.append(Note(bar * 4 * TPQ + 2 * TPQ, 480, p, 55))
        # right hand: a melody with off-beat onsets and a high chord
        t = bar * 4 * TPQ
        while t < (bar + 1) * 4 * TPQ:  # no pitch overlaps itself (see MIDILike grammar)
            step = [120, 240, 360][int(rng.integers(3))]
            d = min(step, int(durations[rng.integers(len(durations))]))
            right.notes.append(Note(t, d, int(rng.integers(60, 72)), int(rng.choice(velocities))))
            t += step
        for p in (72, 76, 79, 84):
            right.notes.append(Note(bar * 4 * TPQ + 3 * TPQ + 240, 240, p, 87))
    score.tracks.extend([right, left])
    return score


def _write_read(score: Score, path) -> Score:
    score.dump_midi(path)
    return Score(str(path))


def _notes(score: Score) -> list[tuple[int, int, int, int]]:
    tpq = score.tpq
    return sorted((n.time * 8 // tpq, n.duration * 8 // tpq, n.pitch, n.velocity)
                  for t in score.tracks for n in t.notes)


@pytest.fixture(scope="module")
def midi_score(tmp_path_factory):
    return _write_read(_piece(), tmp_path_factory.mktemp("midi") / "piece.mid")


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_tokens_midi_tokens(name, midi_score, tmp_path):
    rep = create(name)
    ids = rep.encode(midi_score)
    assert ids.dtype == np.int64 and len(ids) > 50
    decoded = rep.decode(ids)
    assert len(decoded.tracks) == 1 and decoded.tracks[0].program == 0
    assert not decoded.tracks[0].is_drum
    again = _write_read(decoded, tmp_path / "decoded.mid")
    assert np.array_equal(rep.encode(again), ids)
    # same notes as the source, in their real octaves, at grid resolution
    assert _notes(decoded) == _notes(midi_score)
    pitches = {n.pitch for n in decoded.tracks[0].notes}
    assert {36, 43, 48, 52, 55, 72, 76, 79, 84} <= pitches
    durations = {n.duration for n in decoded.tracks[0].notes}
    assert len(durations) >= 4
    beat = decoded.tpq
    assert any(n.time % beat for n in decoded.tracks[0].notes)  # off-beat onsets
    assert len({n.velocity for n in decoded.tracks[0].notes}) >= 4


@pytest.mark.parametrize("name", NAMES)
def test_pretokens_picklable_and_config(name, midi_score):
    rep = create(name)
    pre = rep.pretokenize(midi_score)
    assert np.array_equal(pickle.loads(pickle.dumps(pre)), pre)
    rep2 = pickle.loads(pickle.dumps(rep))
    assert np.array_equal(rep2.pretokenize(midi_score), pre)
    cfg = rep.config_dict()
    assert cfg["name"] == name and cfg["num_velocities"] == 16 and cfg["vocab_size"] is None
    assert cfg["beat_res"] == [[0, 4, 8], [4, 12, 4]]
    assert create(name, num_velocities=8).config_dict() != cfg
    assert rep.describe([rep.bos_id]) == ["BOS_None"]
    assert rep.decode([]).tracks[0].notes.__len__() == 0
    # empty score and drums only: empty pretokens
    drums = Score(TPQ)
    drums.tracks.append(Track("d", 0, True))
    drums.tracks[0].notes.append(Note(0, 120, 36, 100))
    assert len(rep.pretokenize(drums)) == 0


def test_options_recorded():
    remi = create("remi", use_rests=False, use_tempos=False, use_time_signatures=False,
                  beat_res={(0, 4): 4})
    cfg = remi.config_dict()
    assert (cfg["use_rests"], cfg["use_tempos"], cfg["use_time_signatures"]) == (False,) * 3
    assert not any(t.startswith(("Rest", "Tempo", "TimeSig")) for t in remi.tokenizer.vocab)
    assert create("structured").config_dict()["use_rests"] is False
    with pytest.raises(CadenzaError):
        create("structured", use_tempos=True)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_identical(name, midi_score, tmp_path):
    rep = create(name, num_velocities=8)
    save(rep, tmp_path)
    back = load(tmp_path)
    assert type(back) is type(rep) and back.config_dict() == rep.config_dict()
    assert back.vocab_size == rep.vocab_size
    assert np.array_equal(back.encode(midi_score), rep.encode(midi_score))


@pytest.mark.parametrize("name", ["remi", "midilike"])
def test_bpe_trains_and_round_trips(name, tmp_path):
    pieces = [_write_read(_piece(bars=3, seed=s), tmp_path / f"{s}.mid") for s in range(6)]
    base = create(name)
    rep = create(name, vocab_size=base.vocab_size + 60)
    pre = [rep.pretokenize(p) for p in pieces]
    rep.fit(pre)
    assert rep.vocab_size > base.vocab_size and rep.is_trained
    assert rep.transposition_table(2) is None
    for p, piece in zip(pre, pieces):
        ids = rep.to_ids(p)
        assert len(ids) < len(p) and ids.max() >= base.vocab_size
        assert rep.base_ids(ids) == [int(i) for i in p]
        assert _notes(rep.decode(ids)) == _notes(piece)
    # the prepared data separates pieces with BOS; decoding strips it
    ids = rep.to_ids(pre[0])
    assert _notes(rep.decode(np.concatenate([[rep.bos_id], ids]))) == _notes(pieces[0])
    save(rep, tmp_path / "run")
    back = load(tmp_path / "run")
    assert back.vocab_size == rep.vocab_size and back.bos_id == rep.bos_id
    assert np.array_equal(back.to_ids(pre[1]), rep.to_ids(pre[1]))
    # the BPE grammar accepts the real sequence and its tokens
    g = rep.grammar()
    state = g.start([rep.bos_id])
    for i in ids:
        assert g.allowed(state)[i], rep.describe([i])
        state = g.advance(state, int(i))


def test_bpe_options_checked():
    with pytest.raises(CadenzaError):
        create("tsd", vocab_size=10).fit([np.arange(10)])
    rep = create("tsd")
    rep.fit([np.arange(10)])  # no vocab_size: nothing to do
    assert not rep.is_trained


@pytest.mark.parametrize("name", NAMES)
def test_transposition_table(name):
    rep = create(name)
    vocab = rep.tokenizer.vocab
    up = rep.transposition_table(3)
    assert up.shape == (rep.vocab_size,)
    kind = "NoteOn" if name == "midilike" else "Pitch"
    assert up[vocab[f"{kind}_60"]] == vocab[f"{kind}_63"]
    assert up[vocab[f"{kind}_107"]] == -1
    assert up[vocab["Velocity_71"]] == vocab["Velocity_71"]
    assert up[rep.bos_id] == rep.bos_id
    if name == "midilike":
        assert up[vocab["NoteOff_100"]] == vocab["NoteOff_103"]
    down = rep.transposition_table(-5)
    assert down[vocab[f"{kind}_22"]] == -1 and down[vocab[f"{kind}_30"]] == vocab[f"{kind}_25"]


def test_transposed_encoding_matches_table(midi_score):
    rep = create("remi")
    table = rep.transposition_table(2)
    shifted = midi_score.copy()
    for t in shifted.tracks:
        t.shift_pitch(2, inplace=True)
    assert np.array_equal(table[rep.encode(midi_score)], rep.encode(shifted))


def _sample(rep, grammar, rng, length=200):
    state = grammar.start([rep.bos_id])
    out = []
    for _ in range(length):
        mask = grammar.allowed(state)
        choices = np.flatnonzero(mask)
        assert len(choices) > 0
        token = int(rng.choice(choices))
        out.append(token)
        state = grammar.advance(state, token)
    return out, state


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_constrained_sampling_decodes(name):
    rep = create(name)
    grammar = rep.grammar()
    special = {rep.bos_id, *(rep.tokenizer.vocab[f"{t}_None"] for t in ("PAD", "EOS"))}
    for seed in range(200):
        ids, state = _sample(rep, grammar, np.random.default_rng(seed))
        assert not special & set(ids)
        score = rep.decode(ids)
        assert score.note_num() >= 1, seed
        if isinstance(grammar, MIDILikeGrammar):  # end the notes still sounding
            closing = grammar.closing(state)
            if seed < 20:  # decode already ends them (MidiTok's MIDI-Like decoding is slow)
                assert score.note_num() == rep.decode(ids + closing).note_num()
            ids += closing
        seq = TokSequence(ids=list(ids))
        assert rep.tokenizer.tokens_errors(seq) == 0, (seed, rep.describe(ids))


def _three_four(tmp_path) -> Score:
    """A 3/4 piece with a tempo change and a long silence (rests)."""
    from symusic import Tempo, TimeSignature

    score = _piece(bars=3, seed=7)
    score.time_signatures.append(TimeSignature(0, 3, 4))
    score.tempos.append(Tempo(0, 100.0))
    score.tempos.append(Tempo(6 * TPQ, 140.0))
    for n in score.tracks[0].notes:
        if n.time > 8 * TPQ:
            n.time += 9 * TPQ
    return _write_read(score, tmp_path / "three_four.mid")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("variant", ["four_four", "three_four"])
def test_grammar_accepts_real_sequences(name, variant, midi_score, tmp_path):
    rep = create(name)
    score = midi_score if variant == "four_four" else _three_four(tmp_path)
    ids = rep.encode(score)
    if variant == "three_four" and name != "structured":
        described = rep.describe(ids)
        assert "TimeSig_3/4" in described and any(t.startswith("Rest") for t in described)
        assert len([t for t in described if t.startswith("Tempo")]) >= 2
    for prefix in ([], [rep.bos_id]):
        g = rep.grammar()
        state = g.start(prefix)
        for i in ids:
            assert g.allowed(state)[i], (rep.describe([i]), state)
            state = g.advance(state, int(i))
    # a primer: the state after a real prefix still allows something
    state = rep.grammar().start(list(ids[:37]))
    assert rep.grammar().allowed(state).any()


def test_bpe_grammar_sampling(tmp_path):
    pieces = [_piece(bars=3, seed=s) for s in range(4)]
    rep = create("remi", vocab_size=create("remi").vocab_size + 40)
    rep.fit([rep.pretokenize(p) for p in pieces])
    g = rep.grammar()
    base = rep.tokenizer
    for seed in range(20):
        ids, _ = _sample(rep, g, np.random.default_rng(seed), length=100)
        base_ids = rep.base_ids(ids)
        assert base.tokens_errors(TokSequence(ids=base_ids)) == 0
        assert rep.decode(ids).note_num() >= 1


def test_decode_garbage_returns_score():
    rep = create("remi")
    rng = np.random.default_rng(0)
    for _ in range(20):
        score = rep.decode(rng.integers(-5, rep.vocab_size + 5, size=100))
        assert isinstance(score, Score) and len(score.tracks) == 1


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing"])
def test_damaged_tokenizer_file(damage, tmp_path):
    rep = create("tsd")
    save(rep, tmp_path)
    path = tmp_path / rep.TOKENIZER_FILE
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
    elif damage == "garbage":
        path.write_text('{"config": 42}')
    else:
        path.unlink()
    with pytest.raises(CadenzaError, match=rep.TOKENIZER_FILE):
        type(rep).load(tmp_path)
    with pytest.raises(CadenzaError):
        load(tmp_path)


def test_damaged_options_file(tmp_path):
    rep = create("remi")
    save(rep, tmp_path)
    (tmp_path / rep.OPTIONS_FILE).write_text("{nope")
    with pytest.raises(CadenzaError, match=rep.OPTIONS_FILE):
        load(tmp_path)


@pytest.mark.parametrize("name", ["remi", "tsd", "midilike", "structured"])
def test_the_vocabulary_holds_the_88_piano_keys_only(name):
    rep = create(name)
    pitches = {int(t.split("_")[1]) for t in rep.tokenizer.vocab if t.split("_")[0] in ("Pitch", "NoteOn")}
    assert pitches == set(range(21, 109))
