"""Prepared data: flat token files read through np.memmap, cached, split by file."""
from __future__ import annotations

import numpy as np
import pytest

from cadenza.data import dataset, representations
from cadenza import preset, train
from cadenza.data.dataset import TokenWindows, prepare, split_files, transpose_tables


def test_prepare_writes_flat_uint16_files_with_a_piece_index(corpus_dir):
    data = prepare(str(corpus_dir), "remi", log=None)
    assert data.meta["dtype"] == "uint16"
    train_tokens = data.tokens("train")
    assert isinstance(train_tokens, np.memmap)
    index = data.index("train")
    rep = data.representation()
    assert len(index) == data.meta["splits"]["train"]["pieces"] == 11  # 10% of 12 files held out
    assert (train_tokens[index[:, 0]] == rep.bos_id).all()  # every piece starts with BOS
    assert index[:, 1].sum() == data.meta["splits"]["train"]["notes"]
    assert (data.directory / "train.bin").stat().st_size == 2 * len(train_tokens)
    val_files = data.meta["splits"]["val"]["files"]
    assert len(val_files) == 1 and val_files[0] not in data.meta["splits"]["train"]["files"]


def test_preparing_the_same_data_again_reads_the_cache(corpus_dir, monkeypatch):
    first = prepare(str(corpus_dir), "remi", log=None)

    def no_reading(*args, **kwargs):
        raise AssertionError("the corpus was read again")

    monkeypatch.setattr(dataset, "read_files", no_reading)
    again = prepare(str(corpus_dir), "remi", log=None)
    assert again.directory == first.directory
    with pytest.raises(AssertionError):  # another representation config is another key
        prepare(str(corpus_dir), "remi", {"num_velocities": 8}, log=None)
    (corpus_dir / "piece00.mid").write_bytes((corpus_dir / "piece01.mid").read_bytes())
    with pytest.raises(AssertionError):  # changed content is another key
        prepare(str(corpus_dir), "remi", log=None)


def test_windows_teacher_force_every_position_or_predict_the_next_token():
    tokens = np.arange(100, dtype=np.uint16)
    every = TokenWindows(tokens, 10, every_position=True)
    x, y = every.batch(np.array([0, 5]))
    assert x.shape == (2, 10) and y.shape == (2, 10)
    assert (y == x + 1).all()
    last = TokenWindows(tokens, 10, every_position=False)
    x, y = last.batch(np.array([3]))
    assert x[0].tolist() == list(range(3, 13)) and y.tolist() == [[13]]
    assert len(last.epoch_starts(np.random.default_rng(0), all_windows=True)) == 90  # the notebook's epoch
    assert len(every.epoch_starts(np.random.default_rng(0), all_windows=False)) == 10


def test_transposition_augmentation_stays_in_range(corpus_dir):
    data = prepare(str(corpus_dir), "remi", log=None)
    rep = data.representation()
    tables = transpose_tables(rep, 5)
    assert tables.shape == (11, rep.vocab_size)
    windows = TokenWindows(data.tokens("train"), 64, True, tables)
    rng = np.random.default_rng(0)
    x, y = windows.batch(windows.epoch_starts(rng, False)[:16], rng)
    plain, _ = TokenWindows(data.tokens("train"), 64, True).batch(windows.epoch_starts(np.random.default_rng(0), False)[:16])
    assert (x >= 0).all()
    assert not np.array_equal(x.numpy(), plain.numpy())  # some windows were transposed
    names = rep.describe(x.flatten().tolist())
    assert all(21 <= int(n.split("_")[1]) <= 108 for n in names if n.startswith("Pitch_"))


def test_split_is_by_file_seeded_and_absent_for_few_files():
    files = [f"f{k}.mid" for k in range(30)]
    a = split_files(files, 0.1, seed=0)
    assert len(a[1]) == 3 and set(a[0]) | set(a[1]) == set(files) and not set(a[0]) & set(a[1])
    assert split_files(files, 0.1, seed=0) == a and split_files(files, 0.1, seed=1)[1] != a[1]
    train_files, val, note = split_files(files[:5], 0.1, seed=0)
    assert val == [] and "no validation split" in note


@pytest.mark.parametrize("model,options", [
    ("lstm", {"dim": 32, "layers": 2, "dropout": 0.1}),
    ("transformer", {"dim": 32, "layers": 2, "heads": 2, "dropout": 0.1}),
    ("seed_lstm", {"hidden": 16, "layers": 3, "dense": 8, "dropout": 0.3}),
])
def test_one_tiny_epoch_for_each_model(corpus_dir, tmp_path, model, options):
    rep = "seed" if model == "seed_lstm" else "remi"
    cfg = preset("small", model=model, representation=rep, model_options=options, seq_len=32, batch_size=4,
                 steps_per_epoch=3, epochs=1, threads=1)
    result = train(str(corpus_dir), tmp_path / model, cfg, quiet=True)
    assert result.epochs_done == 1 and np.isfinite(result.metrics[0]["train_loss"])
    assert (tmp_path / model / "best.safetensors").exists()


def test_tempo_stretch_moves_only_tempo_tokens(corpus_dir):
    data = prepare(str(corpus_dir), "remi", log=None)
    rep = data.representation()
    table = rep.tempo_table(2)
    names = rep.describe(range(rep.vocab_size))
    tempos = sorted((float(n.split("_")[1]), i) for i, n in enumerate(names) if n.startswith("Tempo_"))
    assert table[tempos[0][1]] == tempos[2][1] and table[tempos[-1][1]] == tempos[-1][1]  # clamped at the top
    others = [i for i, n in enumerate(names) if not n.startswith("Tempo_")]
    assert (table[others] == others).all()
    windows = TokenWindows(data.tokens("train"), 64, True, None, dataset.tempo_tables(rep, 3))
    rng = np.random.default_rng(1)
    starts = windows.epoch_starts(rng, False)[:32]
    x, _ = windows.batch(starts, rng)
    plain = np.asarray(data.tokens("train")[starts[:, None] + np.arange(64)], dtype=np.int64)
    changed = x.numpy() != plain
    assert changed.any() and all(names[i].startswith("Tempo_") for i in plain[changed])


def test_a_one_beat_time_signature_becomes_four_four_bars(tmp_path):
    from symusic import Note, Score, Tempo, TimeSignature, Track

    from cadenza.data.corpus import read_piano_score

    score = Score(480)
    score.time_signatures = [TimeSignature(0, 1, 4)]  # as POP909 files carry for 4/4 songs
    score.tempos = [Tempo(0, 90)]
    track = Track("Piano", 0, False)
    track.notes = [Note(480 * k, 480, 60 + k % 5, 80) for k in range(32)]
    score.tracks = [track]
    score.dump_midi(str(tmp_path / "one.mid"))
    merged = read_piano_score(tmp_path / "one.mid")
    assert [(t.time, t.numerator, t.denominator) for t in merged.time_signatures] == [(0, 4, 4)]
    rep = representations.create("remi")
    bars = [t for t in rep.describe(rep.encode(merged)) if t == "Bar_None"]
    assert len(bars) == 8  # 32 beats in 4/4, not 32 one-beat bars
    score.time_signatures = [TimeSignature(0, 3, 4)]  # a real signature is kept
    score.dump_midi(str(tmp_path / "three.mid"))
    assert read_piano_score(tmp_path / "three.mid").time_signatures[0].numerator == 3


def test_bpe_windows_are_transposed_by_merging_again(corpus_dir):
    from cadenza.data.dataset import BPETransposition, transposition

    data = prepare(str(corpus_dir), "remi", {"vocab_size": 500}, log=None)
    rep = data.representation()
    tables, retokenize = transposition(rep, 5)
    assert tables is None and isinstance(retokenize, BPETransposition)
    tokens = np.asarray(data.tokens("train"), dtype=np.int64)
    piece = tokens[:np.flatnonzero(tokens == rep.bos_id)[1]]  # BOS, first piece
    up = rep.transpose_ids(piece, 3)
    before, after = rep.decode(piece).tracks[0].notes, rep.decode(up).tracks[0].notes
    assert [(n.time, n.pitch + 3) for n in before] == [(n.time, n.pitch) for n in after]
    assert up[0] == rep.bos_id and up.max() >= len(rep.tokenizer.vocab)  # merged tokens again
    assert rep.transpose_ids(piece, 80) is None  # out of the piano's range
    windows = TokenWindows(data.tokens("train"), 64, True, retokenize=retokenize)
    rng = np.random.default_rng(0)
    starts = windows.epoch_starts(rng, False)[:16]
    x, y = windows.batch(starts, np.random.default_rng(1))
    plain, _ = windows.batch(starts)
    assert x.shape == plain.shape and not np.array_equal(x.numpy(), plain.numpy())
    assert np.array_equal(x[:, 1:].numpy(), y[:, :-1].numpy())


def test_copies_of_one_file_stay_on_one_side_of_the_split(corpus_dir, tmp_path):
    """A folder holding a piece under several names (users' collections often do): every copy
    is trained on, or every copy is held out, never both."""
    originals = sorted(corpus_dir.glob("*.mid"))
    folder = tmp_path / "with-copies"
    folder.mkdir()
    for k, path in enumerate(originals):
        for copy in range(1 + (k < 4) * 3):  # four pieces four times each
            (folder / f"{copy}-{path.name}").write_bytes(path.read_bytes())
    data = prepare(str(folder), "remi", val_fraction=0.3, log=None)
    sides = {}
    for split in ("train", "val"):
        for name in data.meta["splits"][split]["files"]:
            sides.setdefault(name.split("-", 1)[1], set()).add(split)
    assert all(len(s) == 1 for s in sides.values()) and {"val"} in sides.values()
    assert sum(len(data.meta["splits"][s]["files"]) for s in ("train", "val")) == len(originals) + 12
    files = [f"f{k}.mid" for k in range(30)]
    assert split_files(files, 0.1, 0, {f: b"same" for f in files})[1] == []  # all copies: nothing held out


def test_corpus_files_come_in_the_order_of_their_paths(tmp_path):
    """The corpus's file list (its digest, the spool's order, the split) is in Path order,
    part by part, which plain string order is not ("a-c.mid" before "a/b.mid" there)."""
    import os
    from pathlib import Path

    from cadenza.data.corpus import find_midi_files, midi_file_names

    names = ["a/b.mid", "a-c.mid", "a.b/x.MID", "a/sub/y.mid", "a/x.midi", "a b/c.mid", "ab/c.mid",
             "a/sub.mid", "deep/er/q.mid", "notes.txt"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"MThd")
    os.symlink(tmp_path / "a", tmp_path / "link")  # a symlinked folder is not entered
    walked = sorted(Path(root) / n for root, _, files in os.walk(tmp_path) for n in files
                    if n.lower().endswith((".mid", ".midi")))
    assert midi_file_names(tmp_path) == [str(p) for p in walked] != sorted(str(p) for p in walked)
    assert find_midi_files(tmp_path) == walked and len(walked) == 9
