"""Crashes and untrusted files: a failed checkpoint write, a crash between two writes,
two trainings on one run directory, pickle payloads, mismatched or missing run files."""
from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from symusic import Note, Score, Track

from cadenza import rundir
from cadenza.cli import main
from cadenza.config import preset
from cadenza.errors import CadenzaError
from cadenza.training.trainer import train

TINY = {"dim": 32, "layers": 1, "dropout": 0.0}


def make_corpus(folder: pathlib.Path, files: int = 4, notes: int = 120) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        rng = np.random.default_rng(k)
        score, track = Score(480), Track("Piano", 0, False)
        for i in range(notes):
            track.notes.append(Note(i * 240, 240, int(rng.integers(48, 80)), 80))
        score.tracks.append(track)
        score.dump_midi(str(folder / f"p{k}.mid"))
    return folder


def config(**kw):
    base = dict(model_options=TINY, seq_len=32, batch_size=4, steps_per_epoch=3, epochs=2, val_fraction=0.34,
                threads=1, warmup_steps=0)
    return preset("small", **{**base, **kw})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus") / "midi")


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CADENZA_CACHE", str(tmp_path_factory.getbasetemp() / "cadenza-cache"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    """A finished tiny run (REMI) and a second one with another vocabulary (TSD)."""
    base = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("CADENZA_CACHE", str(tmp_path_factory.getbasetemp() / "cadenza-cache"))
    try:
        train(str(corpus), base / "remi", config(), quiet=True, workers=1)
        train(str(corpus), base / "tsd", config(representation="tsd"), quiet=True, workers=1)
    finally:
        mp.undo()
    return base


def copy_run(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    shutil.copytree(src, dst)
    return dst


def temp_files(d: pathlib.Path) -> list[str]:
    return sorted(n for n in os.listdir(d) if ".tmp" in n)


# ------------------------------------------------------------- crashes mid-training

class Killed(BaseException):
    """Stands for SIGKILL at one chosen line: nothing in train() catches it."""


def test_crash_between_state_and_metrics_loses_no_epoch(corpus, tmp_path, monkeypatch):
    """A crash right after an epoch's state.pt is written but before its metrics row must
    not lose that row: after --resume metrics.csv holds every epoch once."""
    run = tmp_path / "run"
    calls = {"n": 0}
    real = rundir.write_metrics

    def crash_on_second(rows, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed()
        real(rows, path)

    monkeypatch.setattr(rundir, "write_metrics", crash_on_second)
    with pytest.raises(Killed):
        train(str(corpus), run, config(epochs=3), quiet=True, workers=1)
    monkeypatch.setattr(rundir, "write_metrics", real)
    (run / rundir.LOCK).unlink(missing_ok=True)  # (a real kill leaves a dead pid's lock)
    result = train(None, run, resume=True, quiet=True, workers=1)
    assert result.stopped == "done"
    assert [m["epoch"] for m in rundir.read_metrics(run / rundir.METRICS)] == [1, 2, 3]


def test_crash_while_plotting_keeps_the_previous_plot(corpus, tmp_path, monkeypatch):
    from cadenza.training import trainer as train_module

    run = tmp_path / "run"
    train(str(corpus), run, config(epochs=1), quiet=True, workers=1)
    before = (run / rundir.LOSS_PLOT).read_bytes()

    def half_a_png(metrics, path):
        pathlib.Path(path).write_bytes(before[: len(before) // 2])
        raise Killed()

    monkeypatch.setattr(train_module, "plot_loss", half_a_png)
    with pytest.raises(Killed):
        train(None, run, resume=True, overrides={"epochs": 2}, quiet=True, workers=1)
    assert (run / rundir.LOSS_PLOT).read_bytes() == before
    assert rundir.load_state(run / rundir.STATE)["epoch"] == 2  # epoch 2 is replayed on resume


def test_resume_after_crash_equals_uninterrupted(corpus, tmp_path, monkeypatch):
    """Crash in the middle of epoch 2 (after a mid-epoch checkpoint): the resumed run ends
    with exactly the weights of an uninterrupted one."""
    ref = train(str(corpus), tmp_path / "ref", config(epochs=2), quiet=True, workers=1)
    run = tmp_path / "run"
    real_step = torch.optim.AdamW.step
    count = {"n": 0}

    def step(self, *a, **k):
        count["n"] += 1
        if count["n"] == 5:  # epoch 2, step 2
            raise Killed()
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    with pytest.raises(Killed):
        train(str(corpus), run, config(epochs=2, checkpoint_minutes=0), quiet=True, workers=1)
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    assert rundir.load_state(run / rundir.STATE)["epoch"] == 2
    (run / rundir.LOCK).unlink(missing_ok=True)
    train(None, run, resume=True, quiet=True, workers=1)
    a, b = rundir.load_state(run / rundir.STATE), rundir.load_state(ref.run_dir / rundir.STATE)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [m["train_loss"] for m in rundir.read_metrics(run / rundir.METRICS)] == \
        [m["train_loss"] for m in rundir.read_metrics(ref.run_dir / rundir.METRICS)]


def test_disk_full_during_checkpoint_keeps_previous(corpus, tmp_path, monkeypatch, capsys):
    """The state write fails half-way with ENOSPC: the previous state.pt still loads, no
    temporary file is left, and the user gets one clear line (exit code 2)."""
    run = tmp_path / "run"
    train(str(corpus), run, config(epochs=1), quiet=True, workers=1)
    before = (run / rundir.STATE).read_bytes()
    real_write = pathlib.Path.write_bytes

    def half_then_enospc(self, data):
        if self.name.startswith(".state.pt.tmp"):
            with open(self, "wb") as f:
                f.write(bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", half_then_enospc)
    with pytest.raises(CadenzaError) as info:
        train(None, run, resume=True, overrides={"epochs": 2}, quiet=True, workers=1)
    message = str(info.value)
    assert "\n" not in message and "No space left on device" in message and "state.pt" in message
    assert (run / rundir.STATE).read_bytes() == before
    assert rundir.load_state(run / rundir.STATE)["epoch"] == 2
    assert temp_files(run) == [] and not (run / rundir.LOCK).exists()
    # the same through the CLI: one line, exit code 2, no traceback
    capsys.readouterr()
    assert main(["train", "--run-dir", str(run), "--resume", "--epochs", "2", "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err  # the log lines of data preparation, then the error
    assert err.splitlines()[-1].startswith("cadenza: error: training stopped: No space left on device: ")
    assert "cadenza: error" not in "".join(err.splitlines()[:-1]) and "Traceback" not in err
    monkeypatch.setattr(pathlib.Path, "write_bytes", real_write)
    assert train(None, run, resume=True, overrides={"epochs": 2}, quiet=True, workers=1).epochs_done == 2


@pytest.mark.parametrize("key", ["bad_evals", "bad_epochs"])
def test_patience_counts_on_from_the_saved_state(tmp_path, trained, key):
    """The evaluations without improvement are saved as ``bad_evals`` (a state saved before
    December 2026 holds them as ``bad_epochs``): a resume goes on counting from either, so
    with 4 counted and patience 5 the first evaluation after the resume stops the training."""
    run = copy_run(trained / "remi", tmp_path / "run")
    state = rundir.load_state(run / rundir.STATE)
    assert "bad_evals" in state and "bad_epochs" not in state
    del state["bad_evals"]
    state[key], state["best_loss"] = 4, -1e9  # no evaluation beats that loss
    rundir.save_state(state, run / rundir.STATE)
    rows = len(rundir.read_metrics(run / rundir.METRICS))
    result = train(None, run, resume=True, overrides={"epochs": 5, "patience": 5}, quiet=True, workers=1)
    assert result.stopped == "early-stopping" and len(result.metrics) == rows + 1
    assert rundir.load_state(run / rundir.STATE)["bad_evals"] == 5


def test_temp_files_of_a_killed_writer_are_removed(corpus, tmp_path, trained):
    run = copy_run(trained / "remi", tmp_path / "run")
    junk = [run / ".state.pt.tmp999999", run / ".best.safetensors.tmp999998", run / ".loss.png.tmp999997.png",
            run / ".tmpWmh7iv"]  # the last: safetensors writes through one (found by the kill campaign)
    for j in junk:
        j.write_bytes(b"\0" * 1000)
    junk[-1].write_bytes((run / rundir.BEST).read_bytes()[:1000])  # cut short as a killed write leaves it
    (run / ".metrics.csv.tmp999996").symlink_to(tmp_path / "outside.csv")  # planted: removed, never followed
    train(None, run, resume=True, overrides={"epochs": 3}, quiet=True, workers=1)
    assert temp_files(run) == [] and not (tmp_path / "outside.csv").exists()
    assert not (run / rundir.METRICS).is_symlink()


# ------------------------------------------------------------------------ the lock

def test_second_training_on_one_run_dir_refuses(corpus, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with rundir.RunLock(run):  # a live training (this very process) holds the directory
        with pytest.raises(CadenzaError, match="in use by another training"):
            train(str(corpus), run, config(), quiet=True, workers=1)
        code = main(["train", str(corpus), "--run-dir", str(run), "--preset", "small", "--epochs", "1"])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("cadenza: error: ") and err.count("\n") == 1
        assert f"process {os.getpid()}" in err
        assert (run / rundir.LOCK).exists()
    assert sorted(os.listdir(run)) == []  # the refused trainings wrote nothing


def test_two_cli_trainings_at_once(corpus, tmp_path):
    """Two `cadenza train` processes on one run directory: the second refuses, exit 2."""
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1] / "src")}
    args = [sys.executable, "-m", "cadenza", "train", str(corpus), "--run-dir", str(run), "--preset", "small",
            "--seq-len", "32", "--batch-size", "4", "--epochs", "1000", "--steps-per-epoch", "1", "--threads", "1",
            "--quiet", "--workers", "1", "--device", "cpu"]
    first = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        import time

        deadline = time.time() + 60
        while not (run / rundir.STATE).exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read()
        resume = [sys.executable, "-m", "cadenza", "train", "--run-dir", str(run), "--resume", "--quiet"]
        second = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "in use by another training" in lines[0] and str(first.pid) in lines[0]
    finally:
        first.kill()
        first.wait()


def test_lock_of_a_dead_process_does_not_block(corpus, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (run / rundir.LOCK).write_text(f"{socket.gethostname()} {dead.pid}\n")
    result = train(str(corpus), run, config(epochs=1), quiet=True, workers=1)
    assert result.epochs_done == 1 and not (run / rundir.LOCK).exists()
    (run / rundir.LOCK).write_text("")  # a lock cut short by a crash while writing it
    train(None, run, resume=True, overrides={"epochs": 2}, quiet=True, workers=1)


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_fifo_or_dev_zero_as_the_lock_is_refused_not_read(tmp_path, trained, kind):
    """A FIFO named run.lock blocked `train --resume` forever; a link to /dev/zero read
    until out of memory. A real process: a hang fails by the timeout. The entry stays."""
    run = copy_run(trained / "remi", tmp_path / "run")
    os.mkfifo(run / rundir.LOCK) if kind == "fifo" else (run / rundir.LOCK).symlink_to("/dev/zero")
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-m", "cadenza", "train", "--resume", "--run-dir", str(run), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=60)
    what = "it is not a regular file" if kind == "fifo" else "it is a symlink"
    assert proc.returncode == 2 and proc.stderr == f"cadenza: error: refusing to read {run / rundir.LOCK}: {what}\n"
    assert os.path.lexists(run / rundir.LOCK) and json.loads((run / rundir.CONFIG).read_text())["epochs"] == 2


# ---------------------------------------------------------------- untrusted files

class Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payload_in_state_is_refused(corpus, tmp_path, trained, capsys):
    run = copy_run(trained / "remi", tmp_path / "run")
    marker = tmp_path / "pwned"
    state = rundir.load_state(run / rundir.STATE)
    state["extra"] = Payload(marker)
    torch.save(state, run / rundir.STATE)
    with pytest.raises(CadenzaError, match="refusing to load") as info:
        rundir.load_state(run / rundir.STATE)
    assert "\n" not in str(info.value)
    assert not marker.exists()
    capsys.readouterr()
    assert main(["train", "--run-dir", str(run), "--resume", "--epochs", "3", "--quiet", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("cadenza: error: refusing to load") and "io.open" in err
    assert "cadenza: error" not in "".join(err.splitlines()[:-1]) and "Traceback" not in err
    assert not marker.exists()


def test_pickled_object_array_in_primers_is_refused(tmp_path, trained):
    run = copy_run(trained / "remi", tmp_path / "run")
    marker = tmp_path / "pwned"
    np.save(run / rundir.PRIMERS, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(CadenzaError, match="primers.npy"):
        rundir.load_run(run)
    assert not marker.exists()


def test_tokenizer_from_another_run_is_a_clear_error(tmp_path, trained, capsys):
    run = copy_run(trained / "remi", tmp_path / "run")
    shutil.rmtree(run / rundir.TOKENIZER)
    shutil.copytree(trained / "tsd" / rundir.TOKENIZER, run / rundir.TOKENIZER)
    with pytest.raises(CadenzaError) as info:
        rundir.load_run(run)
    message = str(info.value)
    assert "\n" not in message
    assert "best.safetensors" in message and "tokenizer" in message
    out = tmp_path / "out"
    out.mkdir()
    assert main(["generate", str(run), "-o", str(out / "x.mid"), "--length", "8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cadenza: error: ") and err.count("\n") == 1 and "best.safetensors" in err
    assert os.listdir(out) == []


@pytest.mark.parametrize("missing", [rundir.BEST, rundir.CONFIG, rundir.TOKENIZER,
                                     f"{rundir.TOKENIZER}/representation.json"])
def test_missing_file_is_named(tmp_path, trained, missing, capsys):
    run = copy_run(trained / "remi", tmp_path / "run")
    target = run / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(CadenzaError) as info:
        rundir.load_run(run)
    assert pathlib.Path(missing).name in str(info.value) and "\n" not in str(info.value)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["generate", str(run), "-o", str(out / "x.mid"), "--length", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and pathlib.Path(missing).name in err
    assert os.listdir(out) == []


def test_damaged_files_are_clear_errors(tmp_path, trained):
    run = copy_run(trained / "remi", tmp_path / "run")
    (run / rundir.STATE).write_bytes((run / rundir.STATE).read_bytes()[:1000])
    with pytest.raises(CadenzaError, match="state.pt") as info:
        rundir.load_state(run / rundir.STATE)
    assert "\n" not in str(info.value)
    (run / rundir.BEST).write_bytes(b"\0" * 100)
    with pytest.raises(CadenzaError, match="best.safetensors"):
        rundir.load_run(run)
    (run / rundir.CONFIG).write_text(json.dumps({"nonsense": 1}))
    with pytest.raises(CadenzaError, match="nonsense"):
        rundir.load_run(run)


# ------------------------------------------------------------ the prepared-data cache

def immutable_folders_work(folder: pathlib.Path) -> bool:
    """Whether ``chattr +i`` can make a folder here immutable (root, a file system with
    inode flags): the one real way found to make a cache entry that cannot be removed."""
    probe = folder / "chattr-probe"
    probe.mkdir()
    ok = shutil.which("chattr") and subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["chattr", "-i", str(probe)], check=True)
    probe.rmdir()
    return bool(ok)


def test_a_damaged_entry_that_cannot_be_removed_is_never_trained_on(corpus, tmp_path, monkeypatch, capsys):
    """An immutable entry with one in-vocabulary token changed used to be reported as
    "preparing it again" and then trained on, damaged token and all."""
    if not immutable_folders_work(tmp_path):
        pytest.skip("chattr +i is not available here (needs root and a file system with inode flags)")
    from cadenza.data.dataset import prepare

    monkeypatch.setenv("CADENZA_CACHE", str(tmp_path / "cache"))
    entry = prepare(str(corpus), "remi", val_fraction=0.34, log=None).directory
    tokens = np.fromfile(entry / "train.bin", dtype=np.uint16)
    tokens[5] = tokens[6] if tokens[6] != tokens[5] else tokens[7]
    tokens.tofile(entry / "train.bin")
    subprocess.run(["chattr", "+i", str(entry)], check=True)
    try:
        code = main(["train", str(corpus), "--run-dir", str(tmp_path / "run"), "--preset", "small", "--epochs", "1",
                     "--steps-per-epoch", "1", "--seq-len", "32", "--batch-size", "2", "--val-fraction", "0.34",
                     "--threads", "1", "--quiet", "--workers", "1"])
    finally:
        subprocess.run(["chattr", "-i", str(entry)], check=True)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"cadenza: error: the prepared data in {entry} does not verify (train.bin does not match "
                          f"its checksum) and cannot be replaced (Operation not permitted)"), err
    assert not (tmp_path / "run").exists()
    assert np.array_equal(np.fromfile(entry / "train.bin", dtype=np.uint16), tokens)  # refused, not used nor changed


@pytest.mark.parametrize("edit", ["a training piece listed as held out", "a held-out piece listed for training",
                                  "the seed"])
def test_an_edited_meta_json_is_damage(corpus, tmp_path, monkeypatch, edit):
    """meta.json's file lists decide what `evaluate` scores as held out; an edit of them (or
    of a setting) passed every checksum and was used silently. Now it is rebuilt."""
    from cadenza.data.dataset import prepare

    monkeypatch.setenv("CADENZA_CACHE", str(tmp_path / "cache"))
    first = prepare(str(corpus), "remi", val_fraction=0.34, log=None)
    meta = json.loads((first.directory / "meta.json").read_text())
    train_files, val_files = meta["splits"]["train"]["files"], meta["splits"]["val"]["files"]
    if edit == "the seed":
        meta["seed"] = 1
    elif edit.startswith("a training"):
        meta["splits"]["val"]["files"] = [train_files[0]]
    else:
        meta["splits"]["train"]["files"] = train_files + val_files
    (first.directory / "meta.json").write_text(json.dumps(meta, indent=1))
    lines = []
    again = prepare(str(corpus), "remi", val_fraction=0.34, log=lines.append)
    assert lines[0] == (f"the prepared data in {first.directory} does not verify (meta.json does not match its "
                        f"checksum: its file lists or settings were changed); preparing it again")
    assert again.meta["splits"]["val"]["files"] == val_files and again.meta["splits"]["train"]["files"] == train_files
    assert again.meta["seed"] == 0
