"""Preparation keeps each file's tokens: what ``prepare`` writes is, piece by piece, the
representation's own encoding of the file, on real files (POP909 songs of three tracks,
ASAP performances with and without the sustain pedal), however the corpus was read
(pretokens spooled to disk, the vocabulary fitted from there)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from symusic import Note, Score, Track

from cadenza.data import dataset, representations
from cadenza.data.corpus import read_piano_score
from cadenza.data.corpus.pedal import pedal_spans, set_pedals, sustain
from cadenza.data.corpus.reader import PIANO_HIGH, PIANO_LOW, merge_piano
from cadenza.data.representations.performance import in_milliseconds
from cadenza.data.spool import PretokenSpool

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
POP909 = Path(os.environ.get("CADENZA_POP909_DATA") or SHARED / "pop909")
ASAP = Path(os.environ.get("CADENZA_ASAP_DATA") or SHARED / "asap-bach")
FILES = {"pop001.mid": POP909 / "001" / "001.mid", "pop002.mid": POP909 / "002" / "002.mid",
         "pop003.mid": POP909 / "003" / "003.mid",
         "pedalled.mid": ASAP / "Bach" / "Prelude" / "bwv_846" / "Shi05M.mid",  # 67 pedals
         "controls.mid": ASAP / "Bach" / "Prelude" / "bwv_848" / "Lin04M.mid",  # CCs, no pedal
         "score.mid": ASAP / "Bach" / "Prelude" / "bwv_846" / "midi_score.mid"}  # two hands
pytestmark = pytest.mark.skipif(not all(p.is_file() for p in FILES.values()),
                                reason="POP909 or ASAP files absent")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("real")
    for name, path in FILES.items():
        (folder / name).symlink_to(path)
    return folder


def plain_merge(path: Path) -> Score:
    """The merge written plainly: every note of the non-drum tracks in the 88 keys with a
    length, sorted by onset then pitch (tracks in file order at a tie), pedals joined."""
    score = Score(str(path))
    tracks = [t for t in score.tracks if not t.is_drum]
    notes = sorted(((n.time, n.pitch, k, n.duration, n.velocity) for k, t in enumerate(tracks) for n in t.notes
                    if PIANO_LOW <= n.pitch <= PIANO_HIGH and n.duration > 0 and n.time >= 0), key=lambda n: n[:3])
    out = Score(score.tpq)
    out.tempos = score.tempos.copy()
    out.time_signatures = score.time_signatures.copy()
    out.key_signatures = score.key_signatures.copy()
    track = Track("Piano", 0, False)
    for time, pitch, _, duration, velocity in notes:
        track.notes.append(Note(time, duration, pitch, max(1, velocity)))
    set_pedals(track, *pedal_spans(tracks))
    out.tracks.append(track)
    return out


def miditok_encoding(rep, path: Path) -> np.ndarray:
    """MidiTok's own encoding of the plain merge, the pedal applied (or on the clock)."""
    part = plain_merge(path)
    part = in_milliseconds(part) if rep.name == "performance" else sustain(part)
    seqs = rep.tokenizer.encode(part)
    return np.concatenate([s.ids for s in (seqs if isinstance(seqs, list) else [seqs])])


def pieces(data: dataset.PreparedData, source: Path) -> dict[str, np.ndarray]:
    """Each file's tokens in the prepared data, BOS and all."""
    out = {}
    for split in dataset.SPLITS:
        tokens, index = np.asarray(data.tokens(split)), data.index(split)
        ends = list(index[1:, 0]) + [len(tokens)]
        for path, (start, _), end in zip(data.split_files(split, source), index, ends):
            out[Path(path).name] = tokens[start:end]
    return out


def test_merging_gives_the_plain_merge_and_leaves_a_merged_part_alone():
    for path in FILES.values():
        merged, plain = merge_piano(Score(str(path))), plain_merge(path)
        got, want = merged.tracks[0].notes.numpy(), plain.tracks[0].notes.numpy()
        for column in ("time", "duration", "pitch", "velocity"):
            assert np.array_equal(got[column], want[column]), (path, column)
        assert np.array_equal(merged.tracks[0].pedals.numpy()["time"], plain.tracks[0].pedals.numpy()["time"])
        assert merge_piano(merged) is merged
        shuffled = merged.copy()
        shuffled.tracks[0].notes = Note.from_numpy(**{k: v[::-1].copy() for k, v in got.items()}, ttype="tick")
        assert merge_piano(shuffled) is not shuffled  # out of order: merged again, sorted
        assert np.array_equal(merge_piano(shuffled).tracks[0].notes.numpy()["time"], got["time"])


@pytest.mark.parametrize("name", ["remi", "performance"])
def test_prepared_tokens_are_each_files_own_encoding(corpus, tmp_path, name):
    data = dataset.prepare(str(corpus), name, val_fraction=0.3, workers=2, cache_dir=tmp_path, log=None,
                           progress_bar=False)
    rep = data.representation()
    got = pieces(data, corpus)
    assert sorted(got) == sorted(FILES) and data.meta["splits"]["val"]["pieces"] == 1
    for file, tokens in got.items():
        want = miditok_encoding(rep, corpus / file)
        assert tokens[0] == rep.bos_id and np.array_equal(tokens[1:], want), file
    assert not list(tmp_path.rglob(dataset.SPOOL))  # the spool is no part of the entry


def test_seed_tokens_and_vocabulary_come_back_from_the_spool(corpus, tmp_path):
    data = dataset.prepare(str(corpus), "seed", val_fraction=0.3, cache_dir=tmp_path, log=None,
                           progress_bar=False)
    rep = data.representation()
    strings = {f: rep.pretokenize(read_piano_score(corpus / f, merge=False)) for f in FILES}
    train = data.split_files("train", corpus)
    assert rep.vocab == sorted({t for f in train for t in strings[f.name]})
    for file, tokens in pieces(data, corpus).items():
        assert rep.describe(tokens) == [t for t in strings[file] if t in set(rep.vocab)], file


def test_bpe_fitted_from_disk_is_the_bpe_fitted_in_memory(corpus, tmp_path):
    data = dataset.prepare(str(corpus), "remi", {"vocab_size": 700}, val_fraction=0.3, cache_dir=tmp_path,
                           log=None, progress_bar=False)
    in_memory = representations.create("remi", vocab_size=700)
    base = {f: in_memory.pretokenize(read_piano_score(corpus / f)) for f in FILES}
    in_memory.fit([base[f.name] for f in data.split_files("train", corpus)])
    assert data.representation().vocab_size == in_memory.vocab_size == 700
    for file, tokens in pieces(data, corpus).items():
        assert np.array_equal(tokens[1:], in_memory.to_ids(base[file])), file


def test_a_spool_gives_back_what_it_was_given(tmp_path):
    ids = PretokenSpool(tmp_path / "ids")
    arrays = [np.arange(5, dtype=np.int32), np.array([7, 3], dtype=np.int32), np.array([2**31 - 1])]
    assert [ids.add(a) for a in arrays] == [0, 1, 2]
    with pytest.raises(TypeError):
        ids.add(["C4"])
    ids.close()
    assert all(np.array_equal(ids[k], a) for k, a in enumerate(arrays))
    assert (tmp_path / "ids").stat().st_size == 4 * 8
    words = PretokenSpool(tmp_path / "words")
    lists = [["C4", "4.7", "C4"], [], ["E-5"]]
    for piece in lists:
        words.add(piece)
    words.close()
    assert list(words.pieces([2, 0])) == [lists[2], lists[0]] and words[1] == []
    assert words.pieces([2, 0, 1]).lengths() == [1, 3, 0] and ids.pieces([0, 2]).lengths() == [5, 1]
    words.remove()
    assert not (tmp_path / "words").exists()


class _CountingSpool(PretokenSpool):
    reads = 0

    def __getitem__(self, number):
        self.reads += 1
        return super().__getitem__(number)


def test_bpe_training_reads_each_spooled_piece_once(tmp_path):
    from cadenza.data.representations.midi_tokens import _TrainingIterator

    rep = representations.create("remi", vocab_size=700)
    spool = _CountingSpool(tmp_path / "spool")
    score = read_piano_score(FILES["pop001.mid"])
    for piece in (rep.pretokenize(score), np.zeros(0, dtype=np.int32), rep.pretokenize(score)):
        spool.add(piece)
    spool.close()
    iterator = _TrainingIterator(rep.tokenizer, spool.pieces([0, 1, 2]))
    assert len(iterator) == 2 and spool.reads == 0  # counted from the spool's bounds
    assert len(list(iterator)) == 2 and spool.reads == 3  # then read once, to train
