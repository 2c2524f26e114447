"""The prepared-data cache is checked before use: a damaged entry is rebuilt with one line;
its key cannot be shared by two different folders; a failed or killed preparation leaves
no temporary folder behind."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cadenza.data import dataset
from cadenza.cli import main
from cadenza.data.dataset import prepare
from cadenza.errors import CadenzaError


def damage_truncate(d: Path) -> None:
    data = (d / "train.bin").read_bytes()
    (d / "train.bin").write_bytes(data[: len(data) // 2])


def damage_out_of_vocabulary(d: Path) -> None:
    tokens = np.fromfile(d / "train.bin", dtype=np.uint16)
    tokens[5] = 65535
    tokens.tofile(d / "train.bin")


def damage_twenty_tokens(d: Path) -> None:
    """In-vocabulary ids: sizes and ranges still fit, only the checksum can tell."""
    tokens = np.fromfile(d / "train.bin", dtype=np.uint16)
    tokens[100:120] = tokens[200:220]
    tokens.tofile(d / "train.bin")


def damage_meta(text: str):
    return lambda d: (d / "meta.json").write_text(text)


def damage_dtype(d: Path) -> None:
    meta = json.loads((d / "meta.json").read_text())
    meta["dtype"] = "uint32"
    (d / "meta.json").write_text(json.dumps(meta))


def damage_index(d: Path) -> None:
    np.save(d / "val.idx.npy", np.zeros((3, 5)))


DAMAGE = {"truncated train.bin": (damage_truncate, "bytes"),
          "id outside the vocabulary": (damage_out_of_vocabulary, "checksum"),
          "20 in-vocabulary ids overwritten": (damage_twenty_tokens, "checksum"),
          "garbled meta.json": (damage_meta('{"key": '), "meta.json unreadable"),
          "empty meta.json": (damage_meta(""), "meta.json unreadable"),
          "meta.json a list": (damage_meta("[1, 2]"), "not an object"),
          "changed dtype": (damage_dtype, "uint32"),
          "piece index replaced": (damage_index, "val.idx.npy")}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_entry_is_rebuilt_with_one_line(corpus_dir, case):
    first = prepare(str(corpus_dir), "remi", log=None)
    good = np.array(first.tokens("train"))
    damage, reason = DAMAGE[case]
    damage(first.directory)
    lines = []
    again = prepare(str(corpus_dir), "remi", log=lines.append)
    assert lines[0].startswith(f"the prepared data in {first.directory} does not verify (")
    assert reason in lines[0] and lines[0].endswith("; preparing it again")
    assert lines[1].startswith("preparing 12 files")
    assert np.array_equal(np.array(again.tokens("train")), good)
    assert again.meta["dtype"] == "uint16"
    quiet = []
    prepare(str(corpus_dir), "remi", log=quiet.append)  # the rebuilt entry verifies
    assert quiet == []


def test_train_on_a_damaged_cache_says_so_and_trains(corpus_dir, tmp_path, capsys):
    first = prepare(str(corpus_dir), "remi", log=None)
    damage_out_of_vocabulary(first.directory)
    code = main(["train", str(corpus_dir), "--run-dir", str(tmp_path / "run"), "--preset", "small", "--epochs", "1",
                 "--steps-per-epoch", "1", "--seq-len", "32", "--batch-size", "2", "--threads", "1", "--quiet",
                 "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "does not verify (train.bin does not match its checksum); preparing it again" in err
    assert "Traceback" not in err


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_two_different_folders_never_share_a_digest(tmp_path):
    """Under the old digest (name and content back to back) one file holding
    ``X + b"b.mid" + Y`` hashed like two files a.mid = X and b.mid = Y."""
    x, y = b"MThd one", b"MThd two"
    two = [write(tmp_path / "two" / "a.mid", x), write(tmp_path / "two" / "b.mid", y)]
    one = [write(tmp_path / "one" / "a.mid", x + b"b.mid" + y)]
    assert dataset._corpus_digest(one) != dataset._corpus_digest(two)
    swapped = [write(tmp_path / "s" / "a.mid", x + b"b"), write(tmp_path / "s" / ".mid", y)]  # name/content border
    assert dataset._corpus_digest(swapped) != dataset._corpus_digest(two)
    copy = [write(tmp_path / "copy" / p.name, p.read_bytes()) for p in two]
    assert dataset._corpus_digest(copy) == dataset._corpus_digest(two)  # content, not location


def test_disk_full_while_preparing_leaves_nothing_and_says_where(corpus_dir, tmp_path, monkeypatch, capsys):
    real = dataset._write_split

    def half_then_enospc(directory, split, *args):
        if split == "val":
            (directory / "val.bin").write_bytes(b"\0" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory / "val.bin"))
        return real(directory, split, *args)

    monkeypatch.setattr(dataset, "_write_split", half_then_enospc)
    prepared = Path(os.environ["CADENZA_CACHE"]) / "prepared"
    with pytest.raises(CadenzaError) as info:
        prepare(str(corpus_dir), "remi", log=None)
    message = str(info.value)
    assert f"cannot write the prepared data in {prepared}: No space left on device" in message
    assert "\n" not in message and os.listdir(prepared) == []
    code = main(["train", str(corpus_dir), "--run-dir", str(tmp_path / "run"), "--preset", "small", "--quiet",
                 "--workers", "1"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "No space left on device" in err and str(prepared) in err
    assert "--resume" not in err and "checkpoint" not in err
    assert os.listdir(prepared) == [] and not (tmp_path / "run").exists()


def test_temporary_folders_of_dead_preparations_are_removed(corpus_dir):
    prepared = Path(os.environ["CADENZA_CACHE"]) / "prepared"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = prepared / f"remi-0123.tmp{dead.pid}"
        busy = prepared / f"remi-4567.tmp{live.pid}"
        for folder in (stale, busy):
            folder.mkdir(parents=True)
            (folder / "train.bin").write_bytes(b"\0" * 4096)
        prepare(str(corpus_dir), "remi", log=None)
        assert not stale.exists() and busy.exists()  # another preparation still running keeps its folder
    finally:
        live.kill()
        live.wait()
        shutil.rmtree(busy, ignore_errors=True)


def test_a_run_on_a_copied_corpus_finds_its_held_out_pieces_after_the_original_is_gone(tmp_path, capsys):
    """The cache entry is keyed by content, so a copy shares the entry that the original
    folder prepared, which lists the original's paths: evaluate must read the copy's."""
    from cadenza.config import preset
    from cadenza.training.trainer import train
    from midifiles import write_eighths_corpus

    config = preset("small", model_options={"dim": 32, "layers": 1, "dropout": 0.0}, seq_len=32, batch_size=4,
                    steps_per_epoch=1, epochs=1, val_fraction=0.34, threads=1, warmup_steps=0)
    original = write_eighths_corpus(tmp_path / "original")
    first = prepare(str(original), config.representation, config.representation_options, config.val_fraction,
                    config.seed, workers=1, log=None, progress_bar=False)
    shutil.copytree(original, tmp_path / "copy")
    train(str(tmp_path / "copy"), tmp_path / "run", config, quiet=True, workers=1)
    again = prepare(str(tmp_path / "copy"), config.representation, config.representation_options,
                    config.val_fraction, config.seed, workers=1, log=None, progress_bar=False)
    assert again.directory == first.directory  # one shared entry: the scenario of the issue
    assert all(str(original) in f for f in again.meta["splits"]["val"]["files"])
    shutil.rmtree(original)
    capsys.readouterr()
    code = main(["evaluate", str(tmp_path / "run"), "--samples", "1", "--bars", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["likelihood"]["tokens"] > 0, report
    held = again.split_files("val", tmp_path / "copy")
    assert held and all(p.is_file() and str(tmp_path / "copy") in str(p) for p in held)
