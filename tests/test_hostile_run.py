"""A run folder is untrusted input: each corruption of a real trained run (a value of the
wrong type or range in config.json, the tokenizer files, token_stats.json, primers.npy of
the wrong shape or dtype, weights with NaN or integer tensors, a state.pt with a negative
epoch or a broken RNG state, garbage in metrics.csv) is one line naming the file and the
field, exit code 2, no traceback, and no hang, for the command that reads that file."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from cadenza import rundir
from cadenza.cli import main
from midifiles import train_tiny_run

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 60  # a case that takes longer hangs


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """One finished tiny run on 3 real MIDI files; every case damages a copy of it."""
    base = tmp_path_factory.mktemp("hostile")
    train_tiny_run(base, val_fraction=0.34)
    return base


@pytest.fixture(autouse=True)
def cache(base, monkeypatch):
    monkeypatch.setenv("CADENZA_CACHE", str(base / "cache"))


# -- corruptions ----------------------------------------------------------------------------
def config_set(dotted: str, value):
    def apply(run: Path) -> None:
        data = json.loads((run / "config.json").read_text())
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value
        (run / "config.json").write_text(json.dumps(data))
    return apply


def write_text(name: str, text: str | bytes):
    def apply(run: Path) -> None:
        path = run / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return apply


def json_set(name: str, key: str, value):
    def apply(run: Path) -> None:
        data = json.loads((run / name).read_text())
        node = data
        *parents, last = key.split(".")
        for k in parents:
            node = node[k]
        node[last] = value
        (run / name).write_text(json.dumps(data))
    return apply


def primers(make):
    def apply(run: Path) -> None:
        old = np.load(run / "primers.npy")
        np.save(run / "primers.npy", make(old))
    return apply


def weights(change):
    def apply(run: Path) -> None:
        tensors = load_file(str(run / "best.safetensors"))
        change(tensors)
        save_file(tensors, str(run / "best.safetensors"))
    return apply


def state_set(key: str, value):
    def apply(run: Path) -> None:
        state = torch.load(run / "state.pt", weights_only=True)
        if value is KeyError:
            del state[key]
        else:
            state[key] = value
        torch.save(state, run / "state.pt")
    return apply


def first_weight(tensors: dict) -> str:
    return sorted(tensors)[0]


def nan_weight(t):
    t[first_weight(t)][0] = float("nan")


def inf_weight(t):
    t[first_weight(t)][-1] = float("inf")


def int_weight(t):
    t[first_weight(t)] = t[first_weight(t)].to(torch.int32)


def nan_state_model(run: Path) -> None:
    state = torch.load(run / "state.pt", weights_only=True)
    for tensor in state["model"].values():
        tensor.fill_(float("nan"))
    torch.save(state, run / "state.pt")


def plant(name: str, kind: str):
    """``name`` replaced by a FIFO (a reader would wait forever) or a link to /dev/zero
    (a reader would fill memory)."""
    def apply(run: Path) -> None:
        (run / name).unlink(missing_ok=True)
        os.mkfifo(run / name) if kind == "fifo" else (run / name).symlink_to("/dev/zero")
    return apply


def deep(n: int = 100_000) -> str:
    return "[" * n + "]" * n


METRICS_HEAD = "epoch,step,progress,train_loss,val_loss,lr,tokens_per_s,elapsed_s,best\n"
GENERATE, RESUME, EVALUATE, FINETUNE = "generate", "resume", "evaluate", "finetune"

CASES = {  # id: (corruption, command that reads it, what the one line must name)
    # config.json
    "config-seq-len-negative": (config_set("seq_len", -5), GENERATE, ["config.json", "seq_len"]),
    "config-seq-len-zero": (config_set("seq_len", 0), GENERATE, ["config.json", "seq_len"]),
    "config-seq-len-string": (config_set("seq_len", "32"), GENERATE, ["config.json", "seq_len"]),
    "config-huge-dim": (config_set("model_options.dim", 10**9), GENERATE, ["config.json", "model_options.dim"]),
    "config-huge-model": (config_set("model_options", {"dim": 65536, "layers": 200}), GENERATE,
                          ["config.json", "model_options"]),
    "config-zero-layers": (config_set("model_options.layers", 0), GENERATE, ["config.json", "model_options.layers"]),
    "config-dropout-5": (config_set("model_options.dropout", 5), GENERATE, ["config.json", "model_options.dropout"]),
    "config-unknown-model-option": (config_set("model_options.bogus", 1), GENERATE,
                                    ["config.json", "model_options.bogus"]),
    "config-unknown-rep-option": (config_set("representation_options", {"bogus": 1}), EVALUATE,
                                  ["config.json", "representation_options.bogus"]),
    "config-rep-velocities": (config_set("representation_options", {"num_velocities": -3}), RESUME,
                              ["config.json", "representation_options.num_velocities"]),
    "config-deep-nesting": (config_set("representation_options", {"a": json.loads(deep(500))}), GENERATE,
                            ["config.json", "representation_options.a"]),
    "config-deeper-than-parser": (write_text("config.json", deep()), GENERATE, ["config.json", "nested too deeply"]),
    "config-model-number": (config_set("model", 5), GENERATE, ["config.json", "model"]),
    "config-unknown-representation": (config_set("representation", "nope"), EVALUATE, ["config.json", "representation"]),
    "config-lr-nan": (write_text("config.json", '{"lr": NaN}'), RESUME, ["config.json", "lr"]),
    "config-temperature-string": (config_set("gen_temperature", "hot"), GENERATE, ["config.json", "gen_temperature"]),
    "config-top-p-2": (config_set("gen_top_p", 2.0), GENERATE, ["config.json", "gen_top_p"]),
    "config-gen-length-negative": (config_set("gen_length", -1), GENERATE, ["config.json", "gen_length"]),
    "config-source-number": (config_set("source", 5), EVALUATE, ["config.json", "source"]),
    "config-source-root-resume": (config_set("source", "/"), RESUME, ["config.json", "root of the file system"]),
    "config-source-root-evaluate": (config_set("source", "/"), EVALUATE, ["config.json", "root of the file system",
                                                                           "--data"]),
    "config-source-home": (config_set("source", os.path.expanduser("~")), EVALUATE, ["config.json", "home folder"]),
    "config-source-system": (config_set("source", "/usr"), RESUME, ["config.json", "system folder"]),
    "config-a-list": (write_text("config.json", "[1, 2]"), GENERATE, ["config.json"]),
    "config-not-utf8": (write_text("config.json", b'{"preset": "\xff"}'), GENERATE, ["config.json"]),
    "config-batch-huge": (config_set("batch_size", 10**12), RESUME, ["config.json", "batch_size"]),
    "config-epochs-string": (config_set("epochs", "many"), FINETUNE, ["config.json", "epochs"]),
    # the tokenizer
    "tokenizer-description-deep": (write_text("tokenizer/representation.json", deep()), GENERATE,
                                   ["representation.json", "nested too deeply"]),
    "tokenizer-options-velocities": (json_set("tokenizer/cadenza_tokens.json", "num_velocities", 10**7), GENERATE,
                                     ["cadenza_tokens.json", "num_velocities"]),
    "tokenizer-options-unknown": (json_set("tokenizer/cadenza_tokens.json", "bogus", True), FINETUNE,
                                  ["cadenza_tokens.json", "bogus"]),
    "tokenizer-beat-res-huge": (json_set("tokenizer/cadenza_tokens.json", "beat_res", [[0, 1000, 1000]]), GENERATE,
                                ["cadenza_tokens.json", "beat_res"]),
    "miditok-velocities-huge": (json_set("tokenizer/miditok_tokenizer.json", "config.num_velocities", 10**8),
                                GENERATE, ["miditok_tokenizer.json", "config.num_velocities"]),
    "miditok-beat-res-huge": (json_set("tokenizer/miditok_tokenizer.json", "config.beat_res", {"0_1000": 1000}),
                              GENERATE, ["miditok_tokenizer.json", "config.beat_res"]),
    # token_stats.json
    "token-stats-seen-strings": (json_set("token_stats.json", "seen", ["a"]), GENERATE, ["token_stats.json", "seen"]),
    "token-stats-p99-string": (json_set("token_stats.json", "p99_tokens_per_bar", "x"), GENERATE,
                               ["token_stats.json", "p99_tokens_per_bar"]),
    "token-stats-p99-negative": (json_set("token_stats.json", "p99_tokens_per_bar", -5), GENERATE,
                                 ["token_stats.json", "p99_tokens_per_bar"]),
    "token-stats-share-3": (json_set("token_stats.json", "pieces_changing_tempo", 3), GENERATE,
                            ["token_stats.json", "pieces_changing_tempo"]),
    "token-stats-deep": (write_text("token_stats.json", deep()), GENERATE, ["token_stats.json", "nested too deeply"]),
    # primers.npy
    "primers-1d": (primers(lambda a: a[0]), GENERATE, ["primers.npy", "2-D"]),
    "primers-3d": (primers(lambda a: a[None]), GENERATE, ["primers.npy", "2-D"]),
    "primers-0d": (primers(lambda a: np.int64(3)), GENERATE, ["primers.npy", "2-D"]),
    "primers-float-nan": (primers(lambda a: np.where(a == a[0, 0], np.nan, a.astype(float))), GENERATE,
                          ["primers.npy", "float64"]),
    "primers-float": (primers(lambda a: a.astype(np.float32)), GENERATE, ["primers.npy", "float32"]),
    "primers-negative": (primers(lambda a: -a), GENERATE, ["primers.npy", "outside the vocabulary"]),
    "primers-too-large": (primers(lambda a: a + 10**6), GENERATE, ["primers.npy", "outside the vocabulary"]),
    "primers-bool": (primers(lambda a: a > 5), GENERATE, ["primers.npy", "bool"]),
    # best.safetensors
    "weights-nan": (weights(nan_weight), GENERATE, ["best.safetensors", "NaN"]),
    "weights-inf": (weights(inf_weight), EVALUATE, ["best.safetensors", "NaN or infinite"]),
    "weights-int32": (weights(int_weight), GENERATE, ["best.safetensors", "I32"]),
    "weights-nan-finetune": (weights(nan_weight), FINETUNE, ["best.safetensors", "NaN"]),
    "weights-int32-finetune": (weights(int_weight), FINETUNE, ["best.safetensors", "I32"]),
    "weights-huge-header": (write_text("best.safetensors", (2**40).to_bytes(8, "little") + b"{}"), GENERATE,
                            ["best.safetensors"]),
    # state.pt
    "state-negative-epoch": (state_set("epoch", -3), RESUME, ["state.pt", "epoch"]),
    "state-epoch-string": (state_set("epoch", "1"), RESUME, ["state.pt", "epoch"]),
    "state-no-epoch": (state_set("epoch", KeyError), RESUME, ["state.pt", "epoch"]),
    "state-negative-step": (state_set("step", -1), RESUME, ["state.pt", "step"]),
    "state-rng-short": (state_set("torch_rng", torch.zeros(7, dtype=torch.uint8)), RESUME, ["state.pt", "torch_rng"]),
    "state-rng-float": (state_set("torch_rng", torch.zeros(5056)), RESUME, ["state.pt", "torch_rng"]),
    "state-rng-string": (state_set("torch_rng", "seed"), RESUME, ["state.pt", "torch_rng"]),
    "state-rows-negative": (state_set("rows", -1), RESUME, ["state.pt", "rows"]),
    "state-eval-every-zero": (state_set("eval_every", 0), RESUME, ["state.pt", "eval_every"]),
    "state-model-nan": (nan_state_model, RESUME, ["state.pt", "NaN"]),
    "state-a-list": (lambda run: torch.save([1, 2], run / "state.pt"), RESUME, ["state.pt", "dictionary"]),
    # metrics.csv
    "metrics-garbage-bytes": (write_text("metrics.csv", bytes(range(256)) * 4), RESUME, ["metrics.csv"]),
    "metrics-epoch-word": (write_text("metrics.csv", METRICS_HEAD + "one,2,1,3.0,3.1,0.001,10,1,True\n"), RESUME,
                           ["metrics.csv", "line 2", "epoch"]),
    "metrics-no-columns": (write_text("metrics.csv", "a,b\n1,2\n"), RESUME, ["metrics.csv", "epoch"]),
    "metrics-nul": (write_text("metrics.csv", METRICS_HEAD + "1,2,1,3.0\x00,3.1,0.001,10,1,True\n"), RESUME,
                    ["metrics.csv"]),
    "metrics-huge-field": (write_text("metrics.csv", METRICS_HEAD + "1," + "9" * 200_000 + ",1,3,3,0.1,1,1,True\n"),
                           RESUME, ["metrics.csv"]),
    "metrics-lr-negative": (write_text("metrics.csv", METRICS_HEAD + "1,2,1,3.0,3.1,-0.001,10,1,True\n"), RESUME,
                            ["metrics.csv", "lr"]),
    "metrics-loss-inf": (write_text("metrics.csv", METRICS_HEAD + "1,2,1,inf,3.1,0.001,10,1,True\n"), RESUME,
                         ["metrics.csv", "train_loss"]),
    # any run file a FIFO or a link to /dev/zero, for the command that reads it
    **{f"{name}-{kind}": (plant(name, kind), command, [name, "it is not a regular file" if kind == "fifo"
                                                       else "it is a symlink"])
       for name, command in (("run.lock", RESUME), ("state.pt", RESUME), ("metrics.csv", RESUME),
                             ("config.json", EVALUATE), ("primers.npy", GENERATE), ("token_stats.json", GENERATE))
       for kind in ("fifo", "zero")},
}


def command(kind: str, run: Path, out: Path, corpus: Path) -> list[str]:
    if kind == GENERATE:
        return ["generate", str(run), "-o", str(out / "x.mid"), "--length", "4", "--quiet", "--threads", "1"]
    if kind == EVALUATE:
        return ["evaluate", str(run), "--samples", "1", "--bars", "1", "--quiet"]
    if kind == RESUME:
        return ["train", "--run-dir", str(run), "--resume", "--epochs", "2", "--quiet", "--workers", "1"]
    return ["train", str(corpus), "--from", str(run), "--run-dir", str(out / "ft"), "--epochs", "1",
            "--steps-per-epoch", "1", "--threads", "1", "--quiet", "--workers", "1"]


def one_line_error(err: str) -> None:
    """The error is the last line of stderr, and the only one (a resume logs its corpus
    summary before it reads the state)."""
    lines = err.splitlines()
    assert lines and lines[-1].startswith("cadenza: error: "), err
    assert sum("error" in line for line in lines) == 1 and "Traceback" not in err, err


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"no answer within {LIMIT_S} s")


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_run_file_is_one_line_naming_file_and_field(case, base, tmp_path, capsys):
    corrupt, kind, needles = CASES[case]
    run = tmp_path / "run"
    shutil.copytree(base / "run", run)
    corrupt(run)
    out = tmp_path / "out"
    out.mkdir()
    capsys.readouterr()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(LIMIT_S)
    try:
        code = main(command(kind, run, out, base / "corpus"))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    err = capsys.readouterr().err
    assert code == 2, err
    one_line_error(err)
    for needle in needles:
        assert needle in err, err
    assert sorted(os.listdir(out)) == [], "nothing may be written"


@pytest.mark.slow
def test_hostile_run_folders_in_real_processes(base, tmp_path):
    """The same through the real command: a config.json nested beyond the parser's depth
    and a state.pt with a malformed RNG state."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CADENZA_CACHE": str(base / "cache")}
    for name, kind in (("config-deeper-than-parser", GENERATE), ("state-rng-short", RESUME)):
        run = tmp_path / name
        shutil.copytree(base / "run", run)
        CASES[name][0](run)
        out = tmp_path / f"{name}-out"
        out.mkdir()
        proc = subprocess.run([sys.executable, "-m", "cadenza", *command(kind, run, out, base / "corpus")],
                              env=env, capture_output=True, text=True, timeout=LIMIT_S)
        assert proc.returncode == 2, proc.stderr
        one_line_error(proc.stderr)
        assert CASES[name][2][0] in proc.stderr and CASES[name][2][1] in proc.stderr, proc.stderr
        assert os.listdir(out) == []


def test_an_intact_run_still_loads_and_resumes(base, tmp_path):
    """The checks refuse damage, not the runs cadenza writes (and the shipped base)."""
    run = tmp_path / "run"
    shutil.copytree(base / "run", run)
    loaded = rundir.load_run(run)
    assert loaded.primers is not None and loaded.token_stats is not None
    assert rundir.load_state(run / rundir.STATE)["epoch"] == 2
    assert len(rundir.read_metrics(run / rundir.METRICS)) >= 1
    assert rundir.load_run("base").config.preset
    assert main(["train", "--run-dir", str(run), "--resume", "--epochs", "2", "--quiet", "--workers", "1"]) == 0
    assert rundir.load_state(run / rundir.STATE)["epoch"] == 3
