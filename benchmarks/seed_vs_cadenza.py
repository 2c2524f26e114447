"""cadenza vs the seed notebook, measured side by side in one process on one corpus.

    python benchmarks/seed_vs_cadenza.py [SOURCE] [--minutes M] [--extract-files N]
        [--notebook copy|keras] [--repeats R] [--out FILE.md] [--seed S] [--threads T] [--quick]

1. note extraction: the notebook's music21 loop vs cadenza's symusic reader (same tokens?);
2. seed tokens: the seed network trained the notebook's way (one target per 100-token
   window) vs cadenza's default LSTM trained on every position, same budget and split;
3. NLL per note: seed tokens vs cadenza's default REMI tokens (default LSTM);
4. generating 500 tokens: the notebook's window re-run vs cadenza's stateful sampling;
5. per training step and per generated note: the notebook's network (cadenza's PyTorch copy,
   or with ``--notebook keras`` the notebook's own Keras code, ``pip install -e '.[bench]'``)
   vs cadenza.

Speeds are CPU time of this process (one thread on both sides), the median of R repetitions
interleaved side by side, so that load from other programs falls on both alike.

Prints one Markdown table (and writes it to --out) followed by the protocol notes.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread on both sides, set before torch loads
    os.environ.setdefault(_var, "1")
import importlib
import platform
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cadenza import models, preset
from cadenza.data.corpus import find_midi_files, read_pieces
from cadenza.data.dataset import TokenWindows, prepare
from cadenza.files import write_bytes_atomic
from cadenza.errors import CadenzaError
from cadenza.generation.generate import generate
from cadenza.generation import generate as gen_module
from cadenza.seed.representation import SeedRepresentation
from cadenza.training import trainer as ctrain
from cadenza.rundir import METRICS, STATE, load_run, load_state, read_metrics

ROOT = Path(__file__).resolve().parents[1]


CONTEXT = 100          # the notebook's window
GEN_TOKENS = 500       # the notebook generates 500 notes
TARGET_EVALS = 15      # evaluations wanted within each training budget
KERAS_NOTES = 50_000   # --notebook keras: the notebook's pipeline on at most this many train tokens
EVAL_BATCH = 128
QUICK_FILES = 12
QUICK_MODELS = {"seed_lstm": {"hidden": 32, "layers": 2, "dense": 16, "dropout": 0.3},
                "lstm": {"dim": 32, "layers": 2, "dropout": 0.1}}


def say(msg: str) -> None:
    print(f"[seed_vs_cadenza] {msg}", file=sys.stderr, flush=True)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2, no usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv):
    p = Parser(prog="seed_vs_cadenza.py", description=__doc__.splitlines()[0])
    p.add_argument("source", nargs="?", default="bach", help="MIDI folder/file or built-in corpus (default bach)")
    p.add_argument("--minutes", type=float, default=None,
                   help="training budget per model in minutes (default 5; 0.1 with --quick)")
    p.add_argument("--extract-files", type=int, default=None,
                   help="files parsed with music21 in section 1 (default: all; 3 with --quick)")
    p.add_argument("--out", type=Path, default=None, help="also write the Markdown table here")
    p.add_argument("--seed", type=int, default=0, help="training seed and train/val split seed")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on shared cores more threads spin-wait)")
    p.add_argument("--notebook", choices=("copy", "keras"), default="copy",
                   help="the notebook's side in section 5: cadenza's PyTorch copy of its network (default) or "
                        "the notebook's own Keras code (Keras 3, torch backend: pip install -e '.[bench]')")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved repetitions of each timed step; medians are reported (default 3; 2 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke mode: first {QUICK_FILES} files, tiny models and budget (< 60 s)")
    args = p.parse_args(argv)
    if args.minutes is None:
        args.minutes = 0.1 if args.quick else 5.0
    if not (math.isfinite(args.minutes) and args.minutes > 0):
        p.error(f"--minutes must be a positive number, got {args.minutes:g}")
    if args.extract_files is None and args.quick:
        args.extract_files = 3
    if args.extract_files is not None and args.extract_files < 1:
        p.error(f"--extract-files must be at least 1, got {args.extract_files}")
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.notebook == "keras":
        try:
            notebook_keras().load_keras()
        except RuntimeError as exc:
            p.error(str(exc))
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    if args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    if args.out is not None and not args.out.resolve().parent.is_dir():
        p.error(f"--out {args.out}: folder {args.out.resolve().parent} does not exist")
    try:
        args.paths = find_midi_files(args.source)
    except CadenzaError as exc:
        p.error(str(exc))
    if not args.paths:
        p.error(f"no .mid or .midi files found in {args.source}")
    return args


def notebook_keras():
    """benchmarks/notebook_keras.py (imported only for --notebook keras)."""
    return importlib.import_module("notebook_keras")


def cpu_interleaved(tasks: dict, repeats: int) -> dict:
    """Run every task once per repetition, in turn, timing each by this process's CPU time.
    -> {name: (median CPU seconds, [seconds per repetition], [result per repetition])}."""
    times = {name: [] for name in tasks}
    results = {name: [] for name in tasks}
    for _ in range(repeats):
        for name, fn in tasks.items():
            t = time.process_time()
            results[name].append(fn())
            times[name].append(time.process_time() - t)
    return {name: (float(np.median(times[name])), times[name], results[name]) for name in tasks}


# -- 1. note extraction ------------------------------------------------------------------

def notebook_notes(path: Path) -> tuple[list[str], list[str], float]:
    """The notebook's ``obtain_notes`` loop for one file, verbatim but for ``.flat``
    (removed in music21 10; ``.flatten()`` is its replacement) and ``forceSource=True``:
    music21 keeps a pickle of every file it parsed in its scratch folder, across runs, so
    without it a second benchmark run would time unpickling, not the notebook's parse.

    Also returns, untimed, the same loop over the first partition that *has* notes (not
    what the notebook does: its ``parts[0]`` can be an empty instrument part) and the
    seconds that variant took."""
    from music21 import chord, converter, instrument, note

    def loop(intermediate_notes):
        notes = []
        for individual_note in intermediate_notes:
            if isinstance(individual_note, note.Note):
                notes.append(str(individual_note.pitch))
            elif isinstance(individual_note, chord.Chord):
                notes.append(".".join(str(n) for n in individual_note.normalOrder))
        return notes

    parsed_song = converter.parse(str(path), forceSource=True)
    s2 = None
    try:  # file has instrument parts
        s2 = instrument.partitionByInstrument(parsed_song)
        intermediate_notes = s2.parts[0].recurse()
    except Exception:  # the notebook's bare except
        intermediate_notes = parsed_song.flatten().notes
    notes = loop(intermediate_notes)
    t = time.process_time()
    alt = notes
    if s2 is not None and not notes:
        part = next((p for p in s2.parts if len(p.recurse().notes)), None)
        alt = loop(part.recurse()) if part is not None else []
    return notes, alt, time.process_time() - t


def count_tracks(path: Path) -> int:
    from symusic import Score
    try:
        return sum(1 for t in Score(str(path)).tracks if not t.is_drum and len(t.notes))
    except Exception:
        return 0


def extraction(args, work: Path) -> dict:
    paths = args.paths[:args.extract_files] if args.extract_files else list(args.paths)
    say(f"1. extracting {len(paths)} files the notebook's way (music21) and cadenza's (symusic, 1 process), "
        f"{args.repeats} times in turn")
    import music21  # noqa: F401  (import time not charged to either side)
    rep = SeedRepresentation()
    rep.pretokenize(_any_score(paths))  # warm music21's normal-order import outside the timing

    def notebook_side():
        nb, alt, untimed = {}, {}, 0.0
        for path in paths:
            try:
                nb[str(path)], alt[str(path)], dt = notebook_notes(path)
                untimed += dt
            except Exception as exc:  # the notebook would crash here; we record it
                nb[str(path)] = alt[str(path)] = None
                say(f"   music21 failed on {path}: {type(exc).__name__}: {exc}")
        return nb, alt, untimed

    def cadenza_side():
        pieces, _ = read_pieces(paths, rep.pretokenize, workers=1)
        return {p.path: list(p.pretokens) for p in pieces}

    timed = cpu_interleaved({"notebook": notebook_side, "cadenza": cadenza_side}, args.repeats)
    _, nb_times, nb_results = timed["notebook"]
    t_nb = float(np.median([t - r[2] for t, r in zip(nb_times, nb_results)]))  # the variant is untimed
    nb, alt, _ = nb_results[0]
    t_cz, _, (cz, *_) = timed["cadenza"]
    say(f"   ... and cadenza's prepare on all {len(args.paths)} files, fresh cache")
    fresh = work / "fresh-cache"
    t = time.perf_counter()
    data = prepare(args.source_dir, "seed", {}, args.val_fraction, args.seed, cache_dir=fresh,
                   log=None, progress_bar=False)
    t_prep = time.perf_counter() - t
    same, single, single_same, multi, multi_same, alt_same, empty = 0, 0, 0, 0, 0, 0, 0
    for path in paths:
        a, b, c = nb.get(str(path)), cz.get(str(path)), alt.get(str(path))
        ok = a is not None and b is not None and a == b
        same += ok
        alt_same += c is not None and b is not None and c == b
        empty += a is not None and not a
        if count_tracks(path) > 1:
            multi, multi_same = multi + 1, multi_same + ok
        else:
            single, single_same = single + 1, single_same + ok
    return {"files": len(paths), "t_nb": t_nb, "t_cz": t_cz, "t_prep": t_prep,
            "prep_files": data.summary.files_read, "workers": min(os.cpu_count() or 1, len(args.paths)),
            "same": same, "single": single, "single_same": single_same, "multi": multi,
            "multi_same": multi_same, "failed_nb": sum(v is None for v in nb.values()),
            "alt_same": alt_same, "empty": empty, "tok_alt": sum(len(v) for v in alt.values() if v),
            "tok_nb": sum(len(v) for v in nb.values() if v), "tok_cz": sum(len(v) for v in cz.values())}


def _any_score(paths):
    from cadenza.data.corpus import read_piano_score
    for path in paths:
        try:
            return read_piano_score(path)
        except Exception:
            continue
    from symusic import Score
    return Score(480)


# -- 2./3. training ------------------------------------------------------------------------

class FairEval:
    """Replaces ``cadenza.training.trainer.evaluate_loss`` during a run so that every model is scored
    the same way: mean next-token NLL at the same (at most 512) evenly spaced val
    positions, each predicted from exactly the 100 tokens before it."""

    def __init__(self):
        self.original = ctrain.evaluate_loss
        self.seconds = 0.0

    def __call__(self, model, windows, batch_size, device, autocast):
        t = time.perf_counter()
        fixed = TokenWindows(windows.tokens, CONTEXT, every_position=False)
        loss = self.original(model, fixed, EVAL_BATCH, device, autocast)
        self.seconds += time.perf_counter() - t
        return loss

    def __enter__(self):
        ctrain.evaluate_loss = self
        return self

    def __exit__(self, *exc):
        ctrain.evaluate_loss = self.original


def stepper(config, vocab_size: int, tokens: np.ndarray):
    """Fresh weights of this configuration -> (steps(k): k training steps, targets per step)."""
    torch.manual_seed(config.seed)
    model = models.create(config.model, vocab_size, config.model_options)
    every = getattr(model, "trains_every_position", True)
    opt = ctrain.make_optimizer(model, config)
    windows = TokenWindows(tokens, config.seq_len, every)
    rng = np.random.default_rng(0)

    def steps(k: int) -> float:
        model.train()
        for _ in range(k):
            x, y = windows.batch(rng.integers(0, windows.n_starts, size=config.batch_size))
            loss = ctrain.sequence_loss(model, x, y, every)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float(loss.detach())

    return steps, config.batch_size * (config.seq_len if every else 1)


def step_seconds(config, vocab_size: int, tokens: np.ndarray) -> float:
    """Wall seconds per training step of this configuration (one warm-up, then the mean of two):
    only to plan how many steps fit a training budget."""
    steps, _ = stepper(config, vocab_size, tokens)
    steps(1)
    t = time.perf_counter()
    steps(2)
    return (time.perf_counter() - t) / 2


def plan(config, data, budget_s: float):
    """Steps per epoch (= per evaluation) so that about TARGET_EVALS evaluations fit."""
    t_step = step_seconds(config, data.meta["vocab_size"], data.tokens("train"))
    spe = max(1, int(0.85 * budget_s / (TARGET_EVALS * t_step)))
    return spe, t_step


def train_run(name: str, args, config, data, fair: bool) -> dict:
    budget = args.minutes * 60
    spe, t_step = plan(config, data, budget)
    changes = dict(steps_per_epoch=spe, max_minutes=args.minutes, patience=0)  # 0: no early stopping
    if config.schedule == "cosine":  # the cosine decay spans the planned budget
        changes.update(epochs=TARGET_EVALS, warmup_steps=min(config.warmup_steps, max(1, spe * TARGET_EVALS // 10)))
    else:
        changes.update(epochs=10**6)  # constant rate: the time limit ends the run
    config = config.replace(**changes)
    run_dir = args.work / name
    say(f"   training {name}: {config.model} on {config.representation} tokens, {spe} steps per evaluation "
        f"(~{t_step:.2f} s/step), {args.minutes:g} min")
    evaluator = FairEval() if fair else None
    t = time.perf_counter()
    if evaluator:
        with evaluator:
            result = ctrain.train(args.source_dir, run_dir, config, quiet=True, log=lambda m: say("   " + m))
    else:
        result = ctrain.train(args.source_dir, run_dir, config, quiet=True, log=lambda m: say("   " + m))
    wall = time.perf_counter() - t
    rows = read_metrics(run_dir / METRICS)
    per_step = config.batch_size * (config.seq_len if config.model != "seed_lstm" else 1)
    steps = int(load_state(run_dir / STATE)["tokens"]) // per_step
    return {"name": name, "dir": run_dir, "config": config, "rows": rows, "wall": wall, "spe": spe,
            "steps": steps, "stopped": result.stopped,
            "tok_s": float(np.median([r["tokens_per_s"] for r in rows])) if rows else float("nan"),
            "best": min((r["val_loss"] for r in rows if r["val_loss"] is not None), default=float("nan")),
            "eval_s": evaluator.seconds if evaluator else None}


def time_to_reach(rows: list[dict], threshold: float, scale: float = 1.0) -> float | None:
    for r in rows:
        if r["val_loss"] is not None and r["val_loss"] * scale <= threshold + 1e-9:
            return r["elapsed_s"]
    return None


@torch.no_grad()
def window_nll(model, tokens: np.ndarray, start: int = 1) -> np.ndarray:
    """-log p(token[p] | the min(p, 100) tokens before it) for every p >= start."""
    model.eval()
    tokens = np.asarray(tokens, dtype=np.int64)
    out = []
    for p in range(start, min(CONTEXT, len(tokens))):  # short contexts: one by one
        x = torch.from_numpy(tokens[None, :p])
        logits, _ = model(x, last_only=True)
        out.append(F.cross_entropy(logits[:, -1].float(), torch.from_numpy(tokens[p:p + 1])).item())
    positions = np.arange(max(start, CONTEXT), len(tokens))
    span = np.arange(-CONTEXT, 0)
    for k in range(0, len(positions), EVAL_BATCH):
        pos = positions[k:k + EVAL_BATCH]
        x = torch.from_numpy(tokens[pos[:, None] + span])
        logits, _ = model(x, last_only=True)
        out.extend(F.cross_entropy(logits[:, -1].float(), torch.from_numpy(tokens[pos]), reduction="none").tolist())
    return np.asarray(out)


@torch.no_grad()
def stream_nll(model, tokens: np.ndarray, chunk: int = 512) -> np.ndarray:
    """-log p(token[p] | every val token before it) for p >= 1: the LSTM reads the whole
    val split in order, its state carried across chunks."""
    model.eval()
    tokens = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
    state, out = None, []
    for k in range(0, len(tokens) - 1, chunk):
        x, y = tokens[None, k:k + chunk], tokens[k + 1:k + chunk + 1]
        x = x[:, :len(y)]
        logits, state = model(x, state=state)
        out.append(F.cross_entropy(logits[0].float(), y, reduction="none"))
    return torch.cat(out).numpy() if out else np.zeros(0)


def training(args) -> dict:
    vf, seed = args.val_fraction, args.seed
    seed_data = prepare(args.source_dir, "seed", {}, vf, seed, log=None, progress_bar=False)
    remi_data = prepare(args.source_dir, "remi", {}, vf, seed, log=None, progress_bar=False)
    for d in (seed_data, remi_data):
        if d.meta["splits"]["val"]["tokens"] <= CONTEXT + 1:
            raise CadenzaError(f"the val split of {args.source} has only {d.meta['splits']['val']['tokens']} "
                               f"{d.meta['representation']} tokens; more music is needed")
    cfg_seed = preset("seed", seed=seed, val_fraction=vf)
    cfg_lstm = preset("base", representation="seed", seed=seed, val_fraction=vf)
    cfg_remi = preset("base", seed=seed, val_fraction=vf)
    if args.quick:
        cfg_seed = cfg_seed.replace(model_options=QUICK_MODELS["seed_lstm"])
        cfg_lstm = cfg_lstm.replace(model_options=QUICK_MODELS["lstm"], seq_len=64)
        cfg_remi = cfg_remi.replace(model_options=QUICK_MODELS["lstm"], seq_len=64)
    say("2. seed tokens: the seed network (notebook training) vs cadenza's default LSTM")
    seed_run = train_run("seed-network", args, cfg_seed, seed_data, fair=True)
    lstm_run = train_run("seed-tokens-lstm", args, cfg_lstm, seed_data, fair=True)
    say("3. cadenza's default representation (remi) with the default LSTM")
    remi_run = train_run("remi-lstm", args, cfg_remi, remi_data, fair=False)

    say("   scoring the best weights on the val split ...")
    val_seed = np.asarray(seed_data.tokens("val"), dtype=np.int64)
    val_remi = np.asarray(remi_data.tokens("val"), dtype=np.int64)
    out = {"seed_data": seed_data, "remi_data": remi_data, "runs": (seed_run, lstm_run, remi_run)}
    for run in (seed_run, lstm_run, remi_run):
        run["params"] = models.count_parameters(load_run(run["dir"]).model)
    seed_model = load_run(seed_run["dir"]).model
    lstm_model = load_run(lstm_run["dir"]).model
    remi_model = load_run(remi_run["dir"]).model
    t = time.perf_counter()
    out["seed_win"] = window_nll(seed_model, val_seed)           # positions 1..N-1
    out["lstm_win"] = window_nll(lstm_model, val_seed)
    out["lstm_stream"] = stream_nll(lstm_model, val_seed)
    out["remi_stream"] = stream_nll(remi_model, val_remi)
    say(f"   scored in {time.perf_counter() - t:.0f} s")
    out["seed_notes"] = int(seed_data.index("val")[:, 1].sum())
    out["remi_notes"] = int(remi_data.index("val")[:, 1].sum())
    out["same_val_files"] = seed_data.meta["splits"]["val"]["files"] == remi_data.meta["splits"]["val"]["files"]
    return out


# -- 4. generation -------------------------------------------------------------------------

@torch.no_grad()
def window_rerun(model, pattern: list[int], n: int) -> list[int]:
    """The notebook's ``generate_notes``: for each new token, the whole 100-token window
    again, argmax, slide by one."""
    model.eval()
    pattern, output = list(pattern), []
    for _ in range(n):
        prediction_input = torch.tensor(pattern, dtype=torch.long)[None, :]
        logits, _ = model(prediction_input, last_only=True)
        index = int(torch.argmax(logits[0, -1]))
        output.append(index)
        pattern.append(index)
        pattern = pattern[1:len(pattern)]
    return output


def generation(args, runs) -> dict:
    from cadenza.generation.sampling import Sampling

    seed_run, lstm_run, remi_run = runs
    say(f"4. generating {GEN_TOKENS} tokens ({args.repeats} interleaved repetitions, CPU time)")
    run = load_run(seed_run["dir"])

    def stateful():
        return generate(run, num=1, length=GEN_TOKENS, unit="tokens", sampling=Sampling(temperature=0.0),
                        seed=args.seed)

    res = stateful()  # untimed: the primer, and warm-up
    primer = [int(i) for i in res.context[0][-CONTEXT:]]
    # generate.py runs one-token steps with oneDNN off on the CPU (0736b42); for comparison,
    # the same call with those steps through oneDNN again, as before that change
    def through_onednn():
        original = gen_module._one_step_kernels
        gen_module._one_step_kernels = lambda device: contextlib.nullcontext()
        try:
            return stateful()
        finally:
            gen_module._one_step_kernels = original

    run_seed, run_remi = load_run(lstm_run["dir"]), load_run(remi_run["dir"])
    tasks = {"window": lambda: window_rerun(run.model, primer, GEN_TOKENS), "state": stateful,
             "lstm_seed": lambda: generate(run_seed, num=1, length=GEN_TOKENS, unit="tokens", seed=args.seed),
             "lstm_remi": lambda: generate(run_remi, num=1, length=GEN_TOKENS, unit="tokens", seed=args.seed)}
    if hasattr(gen_module, "_one_step_kernels"):
        tasks["onednn"] = through_onednn
    timed = cpu_interleaved(tasks, args.repeats)
    stateful_ids = [int(i) for i in timed["state"][2][0].new[0]]
    rerun = timed["window"][2][0]
    prefix = next((k for k, (a, b) in enumerate(zip(rerun, stateful_ids)) if a != b), GEN_TOKENS)
    onednn = timed.get("onednn")
    return {"t_window": timed["window"][0], "t_state": timed["state"][0], "prefix": prefix,
            "t_onednn": onednn[0] if onednn else None,
            "agree": sum(a == b for a, b in zip(rerun, stateful_ids)),
            "onednn_same": onednn is None or [int(i) for i in onednn[2][0].new[0]] == stateful_ids,
            "distinct": (len(set(rerun)), len(set(stateful_ids))),
            "t_lstm_seed": timed["lstm_seed"][0], "t_lstm_remi": timed["lstm_remi"][0]}


# -- 5. per step and per note ----------------------------------------------------------------

def speed(args, tr) -> dict:
    """CPU time per training step and per generated note, interleaved: the notebook's network
    (cadenza's PyTorch copy; with --notebook keras also the notebook's own Keras code) and
    cadenza's default LSTM on the same seed tokens."""
    from cadenza.generation.sampling import Sampling

    seed_run, lstm_run, _ = tr["runs"]
    sd = tr["seed_data"]
    vocab, train = sd.meta["vocab_size"], np.asarray(sd.tokens("train"), dtype=np.int64)
    k, n = args.speed_steps, args.speed_notes
    say(f"5. {k} training steps and {n} generated notes per repetition, {args.repeats} repetitions, CPU time")
    copy_steps, copy_targets = stepper(seed_run["config"], vocab, train)
    lstm_steps, lstm_targets = stepper(lstm_run["config"], vocab, train)
    run = load_run(seed_run["dir"])
    primer = [int(i) for i in train[:CONTEXT]]
    tasks = {"copy_train": lambda: copy_steps(k), "lstm_train": lambda: lstm_steps(k),
             "copy_gen": lambda: window_rerun(run.model, primer, n),
             "state_gen": lambda: generate(run, num=1, length=GEN_TOKENS, unit="tokens",
                                           sampling=Sampling(temperature=0.0), seed=args.seed)}
    out = {"k": k, "n": n, "copy_targets": copy_targets, "lstm_targets": lstm_targets, "keras": None}
    if args.notebook == "keras":
        nk = notebook_keras()
        notes = sd.representation().describe(train[:KERAS_NOTES])
        t = time.process_time()
        nb = nk.Notebook(notes, seed=args.seed)
        out["keras"] = {"build": time.process_time() - t, "params": nb.params, "notes": len(notes)}
        nb.train_steps(1)  # warm-up: builds the optimizer's variables
        nb.generate(1)  # and the predict function
        tasks["keras_train"] = lambda: nb.train_steps(k)
        tasks["keras_gen"] = lambda: nb.generate(n)
    copy_steps(1)  # warm-up, as for Keras
    lstm_steps(1)
    timed = cpu_interleaved(tasks, args.repeats)
    out.update({name: v[0] for name, v in timed.items()})
    out["spread"] = {name: (min(v[1]), max(v[1])) for name, v in timed.items()}
    return out


# -- the table -----------------------------------------------------------------------------

def fmt_s(s: float | None) -> str:
    if s is None:
        return "not reached"
    return f"{s:.1f} s" if s < 100 else f"{s:.0f} s"


def ratio(a: float | None, b: float | None, word: str = "faster") -> str:
    if a is None or b is None or not b or not a:
        return "–"
    r = a / b
    if word == "x":
        return f"×{r:.2f}"
    return f"{r:.1f}× {word}" if r >= 1 else f"{1 / r:.1f}× slower" if word == "faster" else f"×{r:.2f}"


def table(args, ex: dict, tr: dict, gen: dict, sp: dict) -> str:
    seed_run, lstm_run, remi_run = tr["runs"]
    sd, rd = tr["seed_data"], tr["remi_data"]
    n_seed, n_remi = len(sd.tokens("val")), len(rd.tokens("val"))
    notes = tr["seed_notes"]
    val_files = sd.meta["splits"]["val"]["pieces"]
    full = slice(CONTEXT - 1, None)  # window_nll starts at position 1: index CONTEXT-1 is position 100
    nll_seed, nll_lstm = tr["seed_win"][full].mean(), tr["lstm_win"][full].mean()
    thr = seed_run["best"]
    reach = [time_to_reach(r["rows"], thr) for r in (seed_run, lstm_run)]
    # section 3: per note
    pn_seed_win = tr["seed_win"].sum() / notes
    pn_lstm_win = tr["lstm_win"].sum() / notes
    pn_lstm_stream = tr["lstm_stream"].sum() / notes
    pn_remi_stream = tr["remi_stream"].sum() / tr["remi_notes"]
    thr_note = thr * n_seed / notes
    reach_remi = time_to_reach(remi_run["rows"], thr_note, n_remi / tr["remi_notes"])
    reach_lstm_note = time_to_reach(lstm_run["rows"], thr_note, n_seed / notes)
    train_notes_per_tok = {k: d.meta["splits"]["train"]["notes"] / d.meta["splits"]["train"]["tokens"]
                           for k, d in (("seed", sd), ("remi", rd))}

    def run_desc(r):
        c = r["config"]
        every = "every position" if c.model != "seed_lstm" else "1 target per window"
        return (f"{c.model} {r['params']:,} params, {c.optimizer} lr {c.lr:g}, batch {c.batch_size}×{c.seq_len} "
                f"({every}); {r['steps']} steps, {len(r['rows'])} evals, {r['wall']:.0f} s, stop: {r['stopped']}")

    rows = [
        ("**1. note extraction**", f"**notebook: music21**", "**cadenza: symusic**", "**cadenza vs notebook**"),
        (f"CPU time for {ex['files']} files (1 process, median of {args.repeats})",
         f"{ex['t_nb']:.1f} s ({1000 * ex['t_nb'] / ex['files']:.0f} ms/file)",
         f"{ex['t_cz']:.2f} s ({1000 * ex['t_cz'] / ex['files']:.1f} ms/file)", ratio(ex["t_nb"], ex["t_cz"])),
        ("files with identical token lists", "reference",
         f"{ex['same']}/{ex['files']} ({100 * ex['same'] / ex['files']:.0f}%)",
         f"single-track {ex['single_same']}/{ex['single']}, multi-track {ex['multi_same']}/{ex['multi']}"),
        ("tokens extracted", f"{ex['tok_nb']:,}", f"{ex['tok_cz']:,}", ratio(ex["tok_cz"], ex["tok_nb"], "x")),
        ("files where the notebook's `parts[0]` yields no token", f"{ex['empty']}/{ex['files']}",
         "–" if not ex["failed_nb"] else f"music21 failed on {ex['failed_nb']}", ""),
        ("variant: the notebook's loop on the first part *with* notes (tokens; identical files)",
         f"{ex['tok_alt']:,}", f"{ex['alt_same']}/{ex['files']} identical", "not the notebook; untimed"),
        (f"prepare whole corpus ({ex['prep_files']} files, fresh cache)", "–",
         f"{ex['t_prep']:.1f} s wall ({ex['workers']} workers)", "incl. vocabulary, split, token files"),
        ("**2. seed tokens: model and training**", "**seed network, notebook training**",
         "**cadenza default LSTM**", ""),
        ("configuration (same split, same budget)", run_desc(seed_run), run_desc(lstm_run), ""),
        (f"held-out NLL/token, all {len(tr['seed_win'][full]):,} val positions (100-token windows)",
         f"{nll_seed:.3f}", f"{nll_lstm:.3f}", f"{nll_lstm - nll_seed:+.3f} nats"),
        ("best in-training eval (512 val positions, 100-token windows)", f"{seed_run['best']:.3f}",
         f"{lstm_run['best']:.3f}", f"{lstm_run['best'] - seed_run['best']:+.3f} nats"),
        ("training targets per second (median over evals)", f"{seed_run['tok_s']:,.0f}", f"{lstm_run['tok_s']:,.0f}",
         ratio(lstm_run["tok_s"], seed_run["tok_s"], "more")),
        (f"time to reach the seed network's best eval ({thr:.3f})", fmt_s(reach[0]), fmt_s(reach[1]),
         ratio(reach[0], reach[1])),
        (f"**3. NLL per note (val: {val_files} files, {notes:,} notes)**", "**seed tokens, seed network**",
         "**remi tokens, default LSTM**", ""),
        ("held-out NLL per note (sum over the val split / notes)", f"{pn_seed_win:.2f} (100-token windows)",
         f"{pn_remi_stream:.2f} (whole split in order)", f"{pn_remi_stream - pn_seed_win:+.2f} nats"),
        ("same on seed tokens with the default LSTM", "–",
         f"{pn_lstm_stream:.2f} (in order), {pn_lstm_win:.2f} (100-token windows)",
         f"{pn_lstm_stream - pn_seed_win:+.2f} nats (in order)"),
        ("val tokens per note; vocabulary", f"{n_seed / notes:.2f}; {sd.meta['vocab_size']}",
         f"{n_remi / tr['remi_notes']:.2f}; {rd.meta['vocab_size']}", ""),
        ("configuration", "as in 2", run_desc(remi_run), ""),
        ("training targets per second (≈ notes per second)",
         f"{seed_run['tok_s']:,.0f} (≈ {seed_run['tok_s'] * train_notes_per_tok['seed']:,.0f})",
         f"{remi_run['tok_s']:,.0f} (≈ {remi_run['tok_s'] * train_notes_per_tok['remi']:,.0f})",
         ratio(remi_run["tok_s"] * train_notes_per_tok["remi"], seed_run["tok_s"] * train_notes_per_tok["seed"],
               "more notes")),
        (f"time to reach the seed network's best, per note (≈ {thr_note:.2f})", fmt_s(reach[0]),
         f"{fmt_s(reach_remi)} (seed-token LSTM: {fmt_s(reach_lstm_note)})", ratio(reach[0], reach_remi)),
        (f"**4. generating {GEN_TOKENS} tokens (CPU time, batch 1, median of {args.repeats})**",
         "**notebook: window re-run, argmax**",
         "**cadenza: stateful, one step per token**", ""),
        ("seed network, same primer, argmax", f"{gen['t_window']:.2f} s ({1000 * gen['t_window'] / GEN_TOKENS:.1f} ms/token)",
         f"{gen['t_state']:.2f} s ({1000 * gen['t_state'] / GEN_TOKENS:.2f} ms/token)",
         ratio(gen["t_window"], gen["t_state"])),
        ("same, one-token steps through oneDNN (generate.py before 0736b42)", "–",
         "–" if gen["t_onednn"] is None else
         f"{gen['t_onednn']:.2f} s ({1000 * gen['t_onednn'] / GEN_TOKENS:.2f} ms/token)"
         + ("" if gen["onednn_same"] else "; tokens differ"), ratio(gen["t_window"], gen["t_onednn"])),
        ("same tokens as the window re-run", "reference",
         f"first {gen['prefix']} identical; {gen['agree']}/{GEN_TOKENS} positions equal", "state outlives the window"),
        ("distinct tokens among the 500", f"{gen['distinct'][0]}", f"{gen['distinct'][1]}", ""),
        ("default LSTM runs of 2 and 3 (top-p 0.95, T=1)", "–",
         f"remi {gen['t_lstm_remi']:.2f} s (grammar-masked); seed tokens {gen['t_lstm_seed']:.2f} s",
         ratio(gen["t_window"], gen["t_lstm_remi"])),
    ]
    rows += speed_rows(args, sp)
    cmd = "python benchmarks/seed_vs_cadenza.py " + " ".join(sys.argv[1:])
    lines = ["| measure | notebook / seed | cadenza | cadenza vs notebook |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    lines += [
        "",
        f"Command: `{cmd}` ({date.today().isoformat()}). Corpus `{args.source}`"
        + (f" (first {QUICK_FILES} files)" if args.quick else "")
        + f": {len(args.paths)} files, val fraction {args.val_fraction:g}, split seed {args.seed}, "
          f"training budget {args.minutes:g} min per model.",
        f"Machine: {platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s); load average at the end {_load()}.",
    ]
    if args.quick:
        lines.append("**--quick: tiny corpus, models and budget; a smoke test, not benchmark figures.**")
    lines += [
        "",
        "Protocol:",
        "- 1: the notebook's `obtain_notes` loop per file (`converter.parse`, `partitionByInstrument`, "
        "`parts[0].recurse()`; `forceSource=True` so music21's own cache of earlier parses is not used) vs "
        "`cadenza.data.corpus.read_pieces` with the seed representation's `pretokenize`, "
        "both in one process on the same files. cadenza merges every non-drum track where the notebook keeps "
        "the first instrument part, so multi-track files may differ.",
        "- 2: both models on the same prepared seed tokens and split. The val loss in each run's metrics.csv "
        "(and the choice of best weights) is computed the same way for both: mean next-token NLL at the same "
        "≤512 evenly spaced val positions, each predicted from exactly the 100 tokens before it (cadenza's "
        "`evaluate_loss` on single-target windows). The headline NLL/token rescored the best weights on every "
        "val position with 100 tokens of context. Times to reach are `elapsed_s` of metrics.csv (wall clock "
        "from the start of training, including evaluations and checkpoints), at the first evaluation at or below "
        "the threshold. Targets/s exclude evaluations. The default LSTM keeps its defaults (AdamW, cosine, "
        f"seq-len {lstm_run['config'].seq_len}, ±{lstm_run['config'].transpose} semitone transposition) except "
        "warm-up capped at 10% of the planned steps; no early stopping for either model.",
        "- 3: total NLL over every val token (position ≥ 1) divided by the notes of the val files "
        "(`PreparedData.index('val')[:, 1]`). The seed network sees the ≤100 tokens before each token; the LSTMs "
        "read the whole val split in order, state carried. REMI tokens also encode onset, duration and velocity, "
        "which seed tokens drop, so REMI's NLL per note pays for more information. Time to reach uses each "
        "run's in-training curve converted to per note (× val tokens / val notes); the REMI curve is cadenza's "
        "default evaluation (every position of 256-token val windows), hence ≈.",
        f"- 4: same best seed-network weights and the same 100-token primer; `cadenza.generation.generate.generate` "
        "(temperature 0 = argmax) vs the notebook's loop (whole window per token); each time is the median CPU "
        f"time of {args.repeats} repetitions, the five generators taking turns. After the first 100 tokens the stateful LSTM remembers more than the window, "
        "so the outputs may diverge. PyTorch's oneDNN LSTM costs milliseconds per call whatever its length on "
        "this CPU, so generate() runs its one-token steps on PyTorch's plain kernels; the oneDNN row measures "
        "the same call with those steps through oneDNN, as before commit 0736b42.",
        f"- 5: per repetition, {sp['k']} training steps of each model from fresh weights (after one untimed "
        f"warm-up step) and {sp['n']} notes of the notebook's window re-run ({GEN_TOKENS} for cadenza's stateful "
        "generation), all taking turns; median CPU time of this process over the repetitions, one thread "
        "(torch.set_num_threads and OMP/MKL_NUM_THREADS=1 unless set). "
        + ("The Keras side is the notebook's own code (benchmarks/notebook_keras.py: prepare_sequences, "
           "create_network, network.fit with batch 128, generate_notes with network.predict per note) in Keras "
           f"{_keras_version()} on the torch backend, on the first {sp['keras']['notes']:,} train tokens; its "
           "network is untrained beyond these steps, which does not change the cost of a step or a note."
           if sp["keras"] else "The notebook's side is cadenza's PyTorch copy of its network; `--notebook keras` "
           "adds the notebook's own Keras code, which is slower (so these ratios understate cadenza)."),
    ]
    return "\n".join(lines) + "\n"


def speed_rows(args, sp: dict) -> list[tuple]:
    k, n = sp["k"], sp["n"]
    copy_step, lstm_step = sp["copy_train"] / k, sp["lstm_train"] / k
    copy_note, state_note = sp["copy_gen"] / n, sp["state_gen"] / GEN_TOKENS
    keras = sp["keras"]
    nb_step, nb_note = (sp["keras_train"] / k, sp["keras_gen"] / n) if keras else (copy_step, copy_note)
    side = "the notebook's Keras code" if keras else "cadenza's PyTorch copy of the notebook's network"
    rows = [
        (f"**5. per step and per note (CPU time, 1 thread, median of {args.repeats} interleaved)**",
         f"**{side}**", "**cadenza**", ""),
        ("CPU s per training step (notebook: 128 windows, 1 target each; cadenza: default LSTM on seed tokens, "
         "every position)", f"{nb_step:.2f} s", f"{lstm_step:.2f} s", ""),
        ("training targets per CPU second", f"{sp['copy_targets'] / nb_step:,.0f}",
         f"{sp['lstm_targets'] / lstm_step:,.0f}",
         ratio(sp["lstm_targets"] / lstm_step, sp["copy_targets"] / nb_step, "more")),
        ("CPU ms per generated note (notebook: window re-run; cadenza: stateful, the same network)",
         f"{1000 * nb_note:.1f} ms", f"{1000 * state_note:.2f} ms", ratio(nb_note, state_note)),
    ]
    if keras:
        rows += [
            ("the notebook's network in cadenza's PyTorch copy (what `--notebook copy` measures)",
             f"{copy_step:.2f} s/step; {1000 * copy_note:.1f} ms/note", "–",
             "–" if args.quick else  # --quick shrinks cadenza's models, never the notebook's Keras code
             f"Keras is {nb_step / copy_step:.1f}× slower per step, {nb_note / copy_note:.1f}× per note"),
            ("the notebook's pipeline before the first step (prepare_sequences, create_network; CPU)",
             f"{keras['build']:.1f} s; {keras['params']:,} params", "–", ""),
        ]
    return rows


def _keras_version() -> str:
    try:
        import keras
        return keras.__version__
    except ImportError:
        return "?"


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.val_fraction = 0.2 if args.quick else 0.1
    args.speed_steps, args.speed_notes = (1, 5) if args.quick else (3, 50)
    with tempfile.TemporaryDirectory(prefix="seed_vs_cadenza-") as tmp:
        work = Path(tmp)
        args.work = work
        args.source_dir = args.source
        if args.quick:  # the first few files, copied
            corpus = work / "corpus"
            corpus.mkdir()
            args.paths = args.paths[:QUICK_FILES]
            for k, path in enumerate(args.paths):
                shutil.copyfile(path, corpus / f"{k:03d}_{path.name}")
            args.paths = find_midi_files(corpus)
            args.source_dir = str(corpus)
        try:
            ex = extraction(args, work)
            tr = training(args)
            gen = generation(args, tr["runs"])
            sp = speed(args, tr)
        except CadenzaError as exc:
            print(f"seed_vs_cadenza.py: error: {exc}", file=sys.stderr)
            return 2
        md = table(args, ex, tr, gen, sp)
    print(md)
    if args.out is not None:
        write_bytes_atomic(args.out, md.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
