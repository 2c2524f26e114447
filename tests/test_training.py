"""Training writes a self-describing run, resumes exactly, and generation reads it back."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from symusic import Score

from cadenza import CadenzaError, Sampling, generate, load_run, preset, to_scores, train
from cadenza import rundir
from cadenza.cli import main
from cadenza.data.dataset import TokenWindows
from cadenza.generation.generate import output_paths

TINY_LSTM = {"dim": 32, "layers": 1, "dropout": 0.1}
TINY_SEED = {"hidden": 16, "layers": 3, "dense": 8, "dropout": 0.3}


def tiny(name="small", **changes):
    base = dict(seq_len=32, batch_size=4, steps_per_epoch=3, epochs=1, threads=1, warmup_steps=2)
    if name == "seed":
        base.update(model_options=TINY_SEED, batch_size=8)
    else:
        base.update(model_options=TINY_LSTM)
    base.update(changes)
    return preset(name, **base)


def test_one_tiny_epoch_writes_a_complete_run(corpus_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = train(str(corpus_dir), run_dir, tiny(), quiet=True)
    assert result.epochs_done == 1 and result.stopped == "done"
    for name in ("config.json", "tokenizer", "best.safetensors", "state.pt", "primers.npy", "metrics.csv", "loss.png"):
        assert (run_dir / name).exists(), name
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert len(rows) == 1 and float(rows[0]["train_loss"]) > 0 and rows[0]["val_loss"] not in ("", "None")
    assert json.loads((run_dir / "config.json").read_text())["source"] == str(corpus_dir)
    state = rundir.load_state(run_dir / "state.pt")
    assert state["epoch"] == 2 and state["step"] == 0
    assert not (run_dir / "run.lock").exists()


def test_training_lowers_the_loss(corpus_dir, tmp_path):
    result = train(str(corpus_dir), tmp_path / "run", tiny(epochs=4, steps_per_epoch=6, lr=1e-2), quiet=True)
    losses = [m["train_loss"] for m in result.metrics]
    assert losses[-1] < losses[0] - 0.3


def _weights(run_dir):
    return rundir.load_state(run_dir / "state.pt")["model"]


@pytest.mark.parametrize("name", ["small", "seed"])
def test_two_epochs_equal_one_epoch_plus_resume(corpus_dir, tmp_path, name):
    straight = train(str(corpus_dir), tmp_path / "straight", tiny(name, epochs=2), quiet=True)
    train(str(corpus_dir), tmp_path / "split", tiny(name, epochs=1), quiet=True)
    resumed = train(None, tmp_path / "split", resume=True, overrides={"epochs": 2}, quiet=True)
    assert resumed.epochs_done == 2
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [round(m["train_loss"], 6) for m in straight.metrics] == [round(m["train_loss"], 6) for m in resumed.metrics]
    assert len(rundir.read_metrics(tmp_path / "split" / "metrics.csv")) == 2


def test_resume_keeps_the_runs_own_tokens_after_the_defaults_change(corpus_dir, tmp_path, monkeypatch):
    """A newer cadenza whose default tokenizer differs (here: a narrower pitch range) resumes an
    older run with the run's own tokenizer, exactly as if nothing had changed."""
    straight = train(str(corpus_dir), tmp_path / "straight", tiny(epochs=2), quiet=True)
    train(str(corpus_dir), tmp_path / "split", tiny(epochs=1), quiet=True)
    vocab = load_run(tmp_path / "split").representation.vocab_size
    monkeypatch.setattr("cadenza.data.representations.midi_tokens.PIANO_HIGH", 96)
    monkeypatch.setattr("cadenza.data.dataset.FORMAT_VERSION", 99)  # and its cache keys
    assert load_run(tmp_path / "straight").representation.vocab_size == vocab  # saved tokenizers are unaffected
    resumed = train(None, tmp_path / "split", resume=True, overrides={"epochs": 2}, quiet=True)
    assert [round(m["train_loss"], 6) for m in straight.metrics] == [round(m["train_loss"], 6) for m in resumed.metrics]
    assert load_run(tmp_path / "split").representation.vocab_size == vocab


def _rewrite_state(run_dir, **changes):
    state = rundir.load_state(run_dir / "state.pt")
    state.pop("data_tokens")
    state.update(changes)
    rundir.save_state(state, run_dir / "state.pt")


def test_a_state_from_before_token_digests_resumes_when_its_tokens_match(corpus_dir, tmp_path):
    run_dir = tmp_path / "run"
    train(str(corpus_dir), run_dir, tiny(epochs=1), quiet=True)
    _rewrite_state(run_dir)  # as older cadenzas wrote it: the cache key only (of the unfitted entry)
    assert train(None, run_dir, resume=True, overrides={"epochs": 2}, quiet=True).epochs_done == 2
    _rewrite_state(run_dir, data_key="0123456789abcdef01234567")  # an entry that does not exist
    with pytest.raises(CadenzaError, match="the data changed"):
        train(None, run_dir, resume=True, overrides={"epochs": 3}, quiet=True)


def test_resume_from_a_mid_epoch_checkpoint_is_exact(corpus_dir, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    train(str(corpus_dir), straight, tiny(epochs=1, steps_per_epoch=6), quiet=True)
    # Ctrl-C during the fourth batch leaves a mid-epoch state
    fresh, real_batch, calls = tmp_path / "mid", TokenWindows.batch, []

    def interrupt_fourth(self, starts, rng=None):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_batch(self, starts, rng)

    monkeypatch.setattr(TokenWindows, "batch", interrupt_fourth)
    assert train(str(corpus_dir), fresh, tiny(epochs=1, steps_per_epoch=6), quiet=True).stopped == "interrupted"
    monkeypatch.undo()
    state = rundir.load_state(fresh / "state.pt")
    assert state["epoch"] == 1 and state["step"] == 3
    train(None, fresh, resume=True, quiet=True)
    a, b = _weights(straight), _weights(fresh)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_budget_stopped_run_evaluates_keeps_its_best_and_plots(corpus_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = train(str(corpus_dir), run_dir, tiny(epochs=5, steps_per_epoch=50, max_minutes=1e-9), quiet=True)
    assert result.stopped == "time-limit" and result.epochs_done == 0
    assert np.isfinite(result.best_loss)
    rows = rundir.read_metrics(run_dir / "metrics.csv")
    assert len(rows) == 1 and rows[0]["val_loss"] == pytest.approx(result.best_loss)
    assert 0 < rows[0]["step"] < 50 and rows[0]["progress"] < 1
    assert (run_dir / "loss.png").stat().st_size > 0
    load_run(run_dir)
    state = rundir.load_state(run_dir / "state.pt")
    assert state["epoch"] == 1 and state["step"] == rows[0]["step"]


def test_a_failing_checkpoint_write_leaves_the_previous_one_loadable(corpus_dir, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    train(str(corpus_dir), run_dir, tiny(epochs=1), quiet=True)
    before = (run_dir / "state.pt").read_bytes()
    best_before = load_file(run_dir / "best.safetensors")

    real_replace = rundir.os.replace

    def crash_on_replace(src, dst):
        if str(dst).endswith(("state.pt", "best.safetensors")):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(rundir.os, "replace", crash_on_replace)
    with pytest.raises((OSError, CadenzaError)):
        train(None, run_dir, resume=True, overrides={"epochs": 2}, quiet=True)
    monkeypatch.undo()
    assert (run_dir / "state.pt").read_bytes() == before
    assert rundir.load_state(run_dir / "state.pt")["epoch"] == 2
    after = load_file(run_dir / "best.safetensors")
    assert all(torch.equal(best_before[k], after[k]) for k in after)
    assert not [p for p in run_dir.iterdir() if ".tmp" in p.name]
    load_run(run_dir)


def test_no_validation_split_for_few_files_and_it_says_so(tmp_path, corpus_dir, capsys):
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(corpus_dir.iterdir())[:3]:
        (few / p.name).write_bytes(p.read_bytes())
    messages = []
    result = train(str(few), tmp_path / "run", tiny(), quiet=True, log=messages.append)
    assert any("no validation split" in m for m in messages)
    assert result.metrics[0]["val_loss"] is None
    assert (tmp_path / "run" / "best.safetensors").exists()


@pytest.mark.parametrize("name", ["small", "seed"])
def test_generation_writes_midi_with_the_requested_tokens(corpus_dir, tmp_path, name):
    run_dir = tmp_path / "run"
    train(str(corpus_dir), run_dir, tiny(name), quiet=True)
    run = load_run(run_dir)
    result = generate(run, num=2, length=40, seed=3)
    assert [len(n) for n in result.new] == [40, 40]
    paths = output_paths(tmp_path / "out.mid", 2)
    for path, score in zip(paths, to_scores(run, result)):
        score.dump_midi(str(path))
        back = Score(str(path))
        assert back.note_num() > 0
    if name == "seed":  # the seed decodes one token per half beat: 40 onsets
        onsets = np.unique(Score(str(paths[0])).tracks[0].notes.numpy()["time"])
        assert len(onsets) == 40
    again = generate(run, num=2, length=40, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(result.new, again.new))


def test_seed_preset_generates_by_argmax_by_default(corpus_dir, tmp_path):
    run_dir = tmp_path / "run"
    train(str(corpus_dir), run_dir, tiny("seed"), quiet=True)
    run = load_run(run_dir)
    assert run.config.gen_temperature == 0 and run.config.gen_length == 500
    a = generate(run, num=1, seed=1)
    assert len(a.new[0]) == 500
    b = generate(run, num=1, seed=1, sampling=Sampling(temperature=0))
    assert np.array_equal(a.new[0], b.new[0])


def test_primer_is_continued_and_kept_in_front(corpus_dir, tmp_path):
    run_dir = tmp_path / "run"
    train(str(corpus_dir), run_dir, tiny(), quiet=True)
    primer = sorted(corpus_dir.iterdir())[0]
    run = load_run(run_dir)
    result = generate(run, length=30, primer=primer, seed=0)
    full, = to_scores(run, result)
    only, = to_scores(run, result, continuation_only=True)
    assert full.note_num() >= Score(str(primer)).note_num() > 0
    assert only.note_num() < full.note_num()


def test_cli_train_and_generate(corpus_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", str(corpus_dir), "--run-dir", str(run_dir), "--preset", "small", "--epochs", "1",
                 "--steps-per-epoch", "2", "--seq-len", "32", "--batch-size", "4", "--quiet", "--threads", "1"])
    assert code == 0
    assert main(["train", str(corpus_dir), "--run-dir", str(run_dir), "--quiet"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    out = tmp_path / "gen.mid"
    assert main(["generate", str(run_dir), "-o", str(out), "--length", "20", "--seed", "1", "--num", "2"]) == 0
    assert (tmp_path / "gen-1.mid").exists() and (tmp_path / "gen-2.mid").exists()


def test_missing_path_and_no_notes_are_one_line_errors(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope"), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file or folder" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.mid").write_bytes(b"")
    (empty / "b.mid").write_text("not midi")
    assert main(["train", str(empty), "--run-dir", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "no readable notes" in err and "Traceback" not in err


def test_skipped_files_are_listed_in_the_summary(corpus_dir, tmp_path):
    (corpus_dir / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    (corpus_dir / "drums.mid").write_bytes((corpus_dir / "piece00.mid").read_bytes())
    from midifiles import write_piece

    write_piece(corpus_dir / "drums.mid", [(0, 480, 36, 100)], drum=True)
    messages = []
    train(str(corpus_dir), tmp_path / "run", tiny(), quiet=True, log=messages.append)
    text = "\n".join(messages)
    assert "12 files read, 2 skipped" in text
    assert "broken.mid" in text and "drums.mid: drum tracks only" in text
