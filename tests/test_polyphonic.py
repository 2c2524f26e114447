"""Polyphonic benchmark: exact masked frame distribution, .mat loader, --quick end to end."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from cadenza.errors import CadenzaError
from polyphonic_stack.data import load_mat
from polyphonic_stack.frames import frame_to_tokens, roll_tokens, tokens_to_frame, transpose_range
from polyphonic_stack.model import FrameModel, ModelConfig
from polyphonic_stack.train import evaluate

ROOT = Path(__file__).resolve().parents[1]
# the shared benchmark data is never committed: $CADENZA_POLYPHONIC_DATA, else ../shared beside the project
DATA = Path(os.environ.get("CADENZA_POLYPHONIC_DATA") or ROOT.parent / "shared" / "data" / "polyphonic")


def small_model(n=5, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = ModelConfig(n_pitches=n, input_dim=8, hidden=12, mlp=10, conv_radius=2, **kw)
    return FrameModel(cfg).eval()


def all_frames(n):
    return np.array(list(itertools.product([0, 1], repeat=n)), dtype=np.uint8)


@pytest.mark.parametrize("seed, descending", [(0, False), (1, False), (2, True)])
def test_masked_distribution_sums_to_one_over_all_frames(seed, descending):
    n = 5
    model = small_model(n, seed, descending=descending)
    with torch.no_grad():  # make the random model far from uniform
        for p in model.parameters():
            p.mul_(3)
    history = np.random.default_rng(seed).integers(0, 2, (3, n)).astype(np.uint8)
    frames = all_frames(n)
    first = torch.stack([model.frame_log_probs(f[None])[0] for f in frames])
    after = torch.stack([model.frame_log_probs(np.vstack([history, f]))[-1] for f in frames])
    assert torch.isfinite(first).all() and torch.isfinite(after).all()  # every frame is possible
    assert first.double().exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    assert after.double().exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_two_step_sequences_sum_to_one():
    n = 4
    model = small_model(n, 3)
    frames = all_frames(n)
    total = sum(model.frame_log_probs(np.vstack([a, b])).sum().exp().item() for a in frames for b in frames)
    assert total == pytest.approx(1.0, abs=1e-5)


def test_evaluate_matches_per_piece_log_probs():
    rng = np.random.default_rng(0)
    rolls = [rng.integers(0, 2, (t, 6)).astype(np.uint8) for t in (1, 7, 30)]
    model = small_model(6, 4)
    direct = -sum(model.frame_log_probs(r).sum().item() for r in rolls) / 38
    assert evaluate(model, rolls, batch_size=2, chunk=4) == pytest.approx(direct, rel=1e-5)


def test_frame_tokens_round_trip():
    frame = np.zeros(88, dtype=np.uint8)
    frame[[3, 40, 87]] = 1
    toks = frame_to_tokens(frame)
    assert toks.tolist() == [3, 40, 87, 88]
    assert (tokens_to_frame(toks) == frame).all()
    assert frame_to_tokens(np.zeros(88)).tolist() == [88]
    with pytest.raises(ValueError):
        tokens_to_frame([40, 3, 88])
    steps, targets = roll_tokens(np.stack([frame, np.zeros(88, np.uint8)]))
    assert steps.tolist() == [0, 0, 0, 0, 1] and targets.tolist() == [3, 40, 87, 88, 88]
    assert transpose_range(np.stack([frame]), 6) == (-3, 0)


def write_mat(path, **arrays):
    scipy.io.savemat(str(path), arrays)
    return path


def cell(*rolls):
    out = np.empty((1, len(rolls)), dtype=object)
    for i, r in enumerate(rolls):
        out[0, i] = r
    return out


def test_loader_accepts_good_file(tmp_path):
    roll = np.zeros((5, 88), np.uint8)
    roll[1, 10] = 1
    path = write_mat(tmp_path / "ok.mat", traindata=cell(roll, roll), validdata=cell(roll), testdata=cell(roll))
    data = load_mat(path)
    assert len(data["train"]) == 2 and data["valid"][0].shape == (5, 88)


@pytest.mark.parametrize("case, pattern", [
    ("missing", "no such data file"),
    ("not_mat", "not a readable MATLAB .mat file"),
    ("wrong_keys", "missing key"),
    ("wrong_shape", r"shape \(5, 12\)"),
    ("not_binary", "not a binary piano roll"),
])
def test_loader_rejects_bad_files(tmp_path, case, pattern):
    good = np.zeros((5, 88), np.uint8)
    path = tmp_path / f"{case}.mat"
    if case == "not_mat":
        path.write_text("this is not a MATLAB file\n")
    elif case == "wrong_keys":
        write_mat(path, traindata=cell(good), valid=cell(good))
    elif case == "wrong_shape":
        write_mat(path, traindata=cell(good), validdata=cell(np.zeros((5, 12), np.uint8)), testdata=cell(good))
    elif case == "not_binary":
        write_mat(path, traindata=cell(good + 3), validdata=cell(good), testdata=cell(good))
    with pytest.raises(CadenzaError, match=pattern) as info:
        load_mat(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def run_bench(*args):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "polyphonic.py"), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_bad_arguments_one_line_exit_2(tmp_path):
    for args in (["--dataset", "bach"], ["--dataset", "jsb", "--minutes", "0"],
                 ["--dataset", "jsb", "--data-dir", str(tmp_path / "nope")],
                 ["--dataset", "jsb", "--data-dir", str(tmp_path)], ["--dataset", "jsb", "--members", "0"]):
        proc = run_bench(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "JSB_Chorales.mat").is_file(), reason=f"shared data folder {DATA} absent")
def test_quick_benchmark_end_to_end(tmp_path):
    out = tmp_path / "table.md"
    proc = run_bench("--dataset", "jsb", "--quick", "--out", str(out), "--threads", "1", "--data-dir", str(DATA))
    assert proc.returncode == 0, proc.stderr[-2000:]
    md = out.read_text()
    assert md in proc.stdout
    row = next(line for line in md.splitlines() if line.startswith("| JSB Chorales"))
    single_valid, single_test, static_valid, static_test, valid, test = (float(x) for x in row.split("|")[2:8])
    assert all(0 < x < 30 for x in (single_valid, single_test, static_valid, static_test, valid, test))
    assert valid <= static_valid  # the dynamic-evaluation rate was chosen on valid, 0 among the candidates
    assert row.split("|")[8].strip() == "2"
    assert "2 member(s) (1 descending)" in md  # the quick run trains both serialisation orders
    # published anchors: one row per model, the data sets run as columns
    assert re.search(r"^\| DBN-LSTM .*\| approximate, not replicated \| 3\.47 \|$", md, re.M)
    assert re.search(r"^\| RNN-NADE .*\| exact \| 5\.19 \|$", md, re.M)


@pytest.mark.slow
def test_members_option_trains_one_model(tmp_path):
    if not (DATA / "JSB_Chorales.mat").is_file():
        pytest.skip(f"shared data folder {DATA} absent")
    out = tmp_path / "table.md"
    proc = run_bench("--dataset", "jsb", "--quick", "--members", "1", "--no-dynamic", "--out", str(out),
                     "--threads", "1", "--data-dir", str(DATA))
    assert proc.returncode == 0, proc.stderr[-2000:]
    cells = next(line for line in out.read_text().splitlines() if line.startswith("| JSB Chorales")).split("|")
    assert cells[8].strip() == "1"
    assert cells[3] == cells[5]  # one member: the ensemble is the single model
    assert "(lr 0: static)" in cells[6]


@pytest.mark.slow
def test_ensemble_mixture_is_exact_and_budgeted():
    from polyphonic_stack.dynamic import DynamicConfig, dynamic_log_probs
    from polyphonic_stack.train import TrainConfig, fit_ensemble, mixture_nll, score, step_log_probs

    rng = np.random.default_rng(0)
    rolls = [(rng.random((t, 6)) < 0.3).astype(np.uint8) for t in (5, 9, 12, 7)]
    cfg = TrainConfig(batch_size=2, chunk=4, patience=1, eval_interval_s=0.0, members=3)
    dyn = DynamicConfig(segment=2, lrs=(0.0, 0.05, 0.5), tune_steps=5)  # tuned on the first piece only
    res = fit_ensemble(lambda k: small_model(6, k, descending=k % 2 == 1), rolls, rolls[:2], cfg,
                       budget_s=20.0, test_steps=14, dynamic=dyn, log=lambda s: None)
    assert 1 <= len(res["models"]) <= 3 and res["lr"] in dyn.lrs
    assert [m.cfg.descending for m in res["models"]] == [k % 2 == 1 for k in range(len(res["models"]))]
    lps = [step_log_probs(m, rolls[:2]) for m in res["models"]]
    assert len(lps[0]) == 14
    assert res["valid_static"] == pytest.approx(mixture_nll(lps))
    dyn_lps = [dynamic_log_probs(m, rolls[:2], res["lr"], 2) for m in res["models"]]
    assert res["valid"] == pytest.approx(mixture_nll(dyn_lps), rel=1e-5)
    assert score(res["models"], rolls[:2], res["lr"], dyn) == pytest.approx(res["valid"], rel=1e-5)
    assert mixture_nll(lps[:1] * 2) == pytest.approx(evaluate(res["models"][0], rolls[:2]), rel=1e-5)


def test_descending_model_scores_the_same_frames():
    rng = np.random.default_rng(1)
    rolls = [(rng.random((t, 6)) < 0.4).astype(np.uint8) for t in (4, 11)]
    model = small_model(6, 5, descending=True)
    direct = -sum(model.frame_log_probs(r).sum().item() for r in rolls) / 15
    assert evaluate(model, rolls, batch_size=2, chunk=3) == pytest.approx(direct, rel=1e-5)
    # reading the roll upside down is what makes it descending: the same weights ascending differ
    ascending = small_model(6, 5)
    assert ascending.frame_log_probs(rolls[1]).sum().item() != pytest.approx(-direct * 15, rel=1e-3)
    flipped = [np.ascontiguousarray(r[:, ::-1]) for r in rolls]
    assert evaluate(ascending, flipped) == pytest.approx(direct, rel=1e-5)


def hot_model(n, seed, **kw):
    model = small_model(n, seed, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("segment", [1, 2])
def test_dynamic_evaluation_is_normalised_over_sequences(segment):
    from polyphonic_stack.dynamic import dynamic_log_probs

    n = 3
    model = hot_model(n, 6)
    frames = all_frames(n)
    seqs = [np.vstack([a, b, c]) for a in frames for b in frames for c in frames]
    lp = dynamic_log_probs(model, seqs, lr=0.5, segment=segment).view(len(seqs), 3)
    static = torch.stack([model.frame_log_probs(s) for s in seqs]).double()
    assert lp.sum(1).exp().sum().item() == pytest.approx(1.0, abs=1e-6)
    # the first segment is scored before any update; later steps are adapted
    assert torch.allclose(lp[:, :segment], static[:, :segment], atol=1e-5)
    assert (lp[:, segment:] - static[:, segment:]).abs().max() > 1e-3


def test_dynamic_evaluation_is_causal_and_leaves_the_model_unchanged():
    from polyphonic_stack.dynamic import dynamic_log_probs
    from polyphonic_stack.train import step_log_probs

    rng = np.random.default_rng(2)
    roll = (rng.random((12, 6)) < 0.4).astype(np.uint8)
    other = roll.copy()
    other[7:] = 1 - other[7:]  # a different future from step 7 on
    model = hot_model(6, 7)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a, b = (dynamic_log_probs(model, [r], lr=0.3, segment=2) for r in (roll, other))
    assert torch.equal(a[:7], b[:7]) and not torch.allclose(a[7:], b[7:])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    # pieces are independent: the same piece scores the same after another one
    pair = dynamic_log_probs(model, [other, roll], lr=0.3, segment=2)
    assert torch.allclose(pair[12:], a, atol=1e-6)
    assert torch.allclose(dynamic_log_probs(model, [roll], lr=0.0), step_log_probs(model, [roll]).double(), atol=1e-5)


def test_input_dropout_only_while_training():
    rng = np.random.default_rng(3)
    roll = (rng.random((20, 6)) < 0.5).astype(np.uint8)
    plain, noisy = small_model(6, 8, dropout=0.0), small_model(6, 8, dropout=0.0, input_dropout=0.5)
    assert torch.equal(plain.frame_log_probs(roll), noisy.frame_log_probs(roll))  # exact scores unaffected
    prev = torch.as_tensor(roll, dtype=torch.float32)[None]
    start = torch.zeros(1, 20)
    plain.train()
    noisy.train()
    a, b = (noisy.run_steps(prev, start)[0] for _ in range(2))
    assert not torch.allclose(a, b)  # fresh notes dropped on every call
    assert torch.equal(plain.run_steps(prev, start)[0], plain.run_steps(prev, start)[0])
