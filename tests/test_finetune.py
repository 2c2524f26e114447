"""The shipped base composer and fine-tuning: the base loads and generates offline and its
weights match the checksum on its card; `train --from` starts from a run's tokenizer and
weights, resumes, and leaves a run that generates without the base; a tokenizer that cannot
encode another folder is refused in one line."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from safetensors.torch import load_file

from cadenza import generate, load_run, preset, rundir, to_scores, train
from cadenza.data import representations
from cadenza.training import finetune
from cadenza import pretrained
from cadenza.cli import main
from cadenza.config import FINETUNE_SCHEDULE
from midifiles import TINY_RUN, train_tiny_run, write_eighths_corpus

TINY = dict(steps_per_epoch=2, epochs=1, threads=1, max_minutes=None, checkpoint_minutes=60.0)


def test_the_shipped_base_loads_generates_and_matches_its_checksum(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no folder called base here: the name means the shipped model
    base = pretrained.shipped_dir("base")
    assert base is not None and sum(f.stat().st_size for f in base.rglob("*") if f.is_file()) <= 25e6
    sha = hashlib.sha256((base / rundir.BEST).read_bytes()).hexdigest()
    assert (base / pretrained.WEIGHTS_SHA256_FILE).read_text().split()[0] == sha
    assert sha in (base / "MODEL_CARD.md").read_text()
    run = load_run("base")
    assert run.directory == base and run.config.gen_form == "" and run.config.model_options["cache_window"] > 0
    result = generate(run, num=2, length=4, unit="bars", seed=1)
    assert all(score.note_num() > 0 for score in to_scores(run, result))
    assert main(["generate", "base", "-o", str(tmp_path / "b.mid"), "--length", "2", "--unit", "bars"]) == 0
    assert (tmp_path / "b.mid").stat().st_size > 0


def test_a_folder_named_like_a_shipped_model_is_still_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base").mkdir()
    with pytest.raises(Exception, match="not a complete cadenza run"):
        load_run("base")


def test_fine_tuning_starts_from_the_base_resumes_and_no_longer_needs_it(corpus_dir, tmp_path, monkeypatch):
    run_dir = tmp_path / "ft"
    train(str(corpus_dir), run_dir, start_from="base", overrides=TINY, quiet=True, workers=1)
    base = load_run("base")
    tuned = load_run(run_dir)
    assert tuned.config.init_from == "base" and tuned.config.lr < base.config.lr
    assert tuned.config.model_options["dropout"] == finetune.DROPOUT > base.config.model_options["dropout"]
    assert tuned.config.ema == finetune.EMA > 0 == base.config.ema
    assert representations.digest(tuned.representation) == representations.digest(base.representation)
    start = load_file(str(base.directory / rundir.BEST))
    after = load_file(str(run_dir / rundir.BEST))
    moved = [k for k in start if not np.allclose(start[k].float().numpy(), after[k].float().numpy())]
    assert moved, "one fine-tuning step changes the weights"
    assert max(float((start[k].float() - after[k].float()).abs().max()) for k in start) < 0.5  # ... from the base's
    monkeypatch.setattr(pretrained, "HERE", tmp_path / "nowhere")  # the base is gone
    assert pretrained.shipped_dir("base") is None
    result = generate(load_run(run_dir), num=1, length=2, unit="bars", seed=2)
    assert to_scores(load_run(run_dir), result)[0].note_num() > 0
    resumed = train(None, run_dir, resume=True, overrides=dict(epochs=2), quiet=True, workers=1)
    assert resumed.epochs_done == 2


def test_a_run_whose_tokens_cannot_encode_another_folder_is_refused(corpus_dir, tmp_path, capsys):
    seed_run = tmp_path / "seed"
    train(str(corpus_dir), seed_run, preset("seed", seq_len=16, batch_size=8, **TINY,
                                            model_options={"hidden": 16, "layers": 1, "dense": 8, "dropout": 0.0}),
          quiet=True, workers=1)
    capsys.readouterr()
    code = main(["train", str(corpus_dir), "--run-dir", str(tmp_path / "x"), "--from", str(seed_run)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot encode another folder" in err and "\n" not in err
    assert not (tmp_path / "x").exists()
    assert main(["train", str(corpus_dir), "--run-dir", str(tmp_path / "y"), "--from", "base",
                 "--preset", "small"]) == 2
    assert "drop --preset" in capsys.readouterr().err


def _tree(directory):
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in directory.rglob("*")}


def test_evaluating_the_base_writes_beside_the_user_not_into_the_package(corpus_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = pretrained.shipped_dir("base")
    before = _tree(base)
    assert main(["evaluate", "base", "--samples", "1", "--bars", "2"]) == 2  # no validation split here
    err = capsys.readouterr().err.strip()
    assert "pass --data" in err and len(err.splitlines()) == 1
    assert main(["evaluate", "base", "--data", str(corpus_dir), "--samples", "1", "--bars", "2",
                 "--max-pieces", "2", "--quiet"]) == 0
    report = (tmp_path / "base-report" / "report.json").read_text()
    assert '"nll_per_note"' in report
    assert _tree(base) == before


def test_a_fine_tune_takes_another_dropout_and_a_bad_one_is_refused(corpus_dir, tmp_path, capsys):
    run_dir = tmp_path / "ft"
    assert main(["train", str(corpus_dir), "--run-dir", str(run_dir), "--from", "base", "--dropout", "0.2",
                 "--epochs", "1", "--steps-per-epoch", "1", "--threads", "1", "--workers", "1", "--quiet"]) == 0
    tuned = load_run(run_dir)
    trained = {k: v for k, v in load_run("base").config.model_options.items() if k != "frozen"}  # a fine-tune trains all
    assert tuned.config.model_options == {**trained, "dropout": 0.2}
    assert tuned.config.seq_len == min(256, load_run("base").config.seq_len)  # short windows, the whole reach generating
    assert tuned.model.drop.p == 0.2 and tuned.model.lstm.dropout == 0.2
    capsys.readouterr()
    assert main(["train", str(corpus_dir), "--run-dir", str(tmp_path / "x"), "--dropout", "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--dropout must be a number in [0, 1)" in err and "\n" not in err and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_the_weight_average_is_what_is_kept_and_it_resumes(corpus_dir, tmp_path, capsys):
    """With --ema d the kept weights are d x (weights after step 1) + (1 - d) x (after step 2),
    the stepped weights stay in the state, and a resumed run carries the average on."""
    import torch

    def run(name, steps, **more):
        train(str(corpus_dir), tmp_path / name, start_from="base", quiet=True, workers=1,
              overrides={**TINY, "steps_per_epoch": steps, "ema": 0.75, **more})
        return torch.load(tmp_path / name / rundir.STATE, weights_only=True), load_file(str(tmp_path / name / rundir.BEST))

    one, _ = run("one", 1)
    two, kept = run("two", 2)
    for k, v in kept.items():  # the file holds a tied weight once
        assert torch.allclose(v, 0.75 * one["model"][k] + 0.25 * two["model"][k], atol=1e-6), k
    assert any(not torch.equal(kept[k], two["model"][k]) for k in kept)
    resumed = train(None, tmp_path / "two", resume=True, overrides=dict(epochs=2), quiet=True, workers=1)
    straight, _ = run("straight", 2, epochs=2)
    after = torch.load(tmp_path / "two" / rundir.STATE, weights_only=True)
    assert resumed.epochs_done == 2 and int(after["average"]["n_averaged"]) == 4
    for k, v in straight["average"].items():
        assert torch.allclose(after["average"][k].float(), v.float()), k
    capsys.readouterr()
    assert main(["train", str(corpus_dir), "--run-dir", str(tmp_path / "x"), "--from", "base", "--ema", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--ema must be a number in [0, 1)" in err and "\n" not in err and not (tmp_path / "x").exists()
    run("plain", 1, ema=0.0)  # a run without an average resumed with one: one line, nothing changed
    before = (tmp_path / "plain" / rundir.STATE).read_bytes()
    capsys.readouterr()
    assert main(["train", "--run-dir", str(tmp_path / "plain"), "--resume", "--ema", "0.9", "--epochs", "2"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "no weight average" in err[0] and "Traceback" not in err[0]
    assert (tmp_path / "plain" / rundir.STATE).read_bytes() == before


@pytest.mark.slow
def test_a_fine_tune_with_a_budget_trains_until_the_budget_not_the_starting_runs_epochs(tmp_path):
    """The starting run trained 1 epoch; its fine-tune on the same small folder goes on for
    the whole --max-minutes (no early stopping, an epoch cap far beyond it)."""
    start = train_tiny_run(tmp_path / "start")
    assert load_run(start).config.epochs == 1
    lines = []
    result = train(str(tmp_path / "start" / "corpus"), tmp_path / "ft", start_from=start, log=lines.append,
                   overrides=dict(max_minutes=0.15, threads=1, steps_per_epoch=2), quiet=True, workers=1)
    assert result.stopped == "time-limit" and result.epochs_done > 1, lines
    assert load_run(tmp_path / "ft").config.epochs == FINETUNE_SCHEDULE["epochs"]
    assert not any("raise --epochs" in line for line in lines)


def test_an_epoch_cap_that_ends_a_budgeted_training_early_is_named(tmp_path):
    corpus = write_eighths_corpus(tmp_path / "corpus")
    lines = []
    result = train(str(corpus), tmp_path / "run", preset("small", **{**TINY_RUN, "max_minutes": 10.0}),
                   log=lines.append, quiet=True, workers=1)
    assert result.stopped == "done" and result.epochs_done == 1
    assert any("--epochs 1 reached" in line and "raise --epochs" in line for line in lines), lines


def test_generate_says_where_each_pieces_tempo_came_from(tmp_path, capsys, monkeypatch):
    from symusic import Score

    monkeypatch.chdir(tmp_path)
    assert main(["generate", "base", "-o", "t.mid", "--num", "3", "--length", "2", "--unit", "bars",
                 "--seed", "3", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for k in (1, 2, 3):
        line = next(ln for ln in lines if f"t-{k}.mid" in ln)
        assert f"tempo {Score(f't-{k}.mid').tempos[0].qpm:.0f} bpm (" in line
        assert any(why in line for why in ("from the training music it continues", "chosen by the model",
                                           "the first one the model set", "the tokenizer's default")), line
    assert main(["generate", "base", "-o", "p.mid", "--primer", "t-1.mid", "--length", "1", "--unit", "bars",
                 "--seed", "3", "--quiet"]) == 0
    assert "bpm (from the primer)" in capsys.readouterr().out


def test_a_fine_tune_says_what_it_started_from(tmp_path, capsys):
    start = train_tiny_run(tmp_path / "start")
    assert main(["train", str(tmp_path / "start" / "corpus"), "--run-dir", str(tmp_path / "ft"), "--from", str(start),
                 "--max-minutes", "0.05", "--steps-per-epoch", "2", "--threads", "1", "--workers", "1",
                 "--quiet"]) == 0
    assert f"fine-tuned from: {start} " in capsys.readouterr().out
    assert load_run(tmp_path / "ft").config.init_from == str(start)
