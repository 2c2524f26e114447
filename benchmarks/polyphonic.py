"""Polyphonic-music benchmark: cadenza's frame model on JSB / Nottingham / Piano-midi.de / MuseData.

    python benchmarks/polyphonic.py --dataset jsb|nottingham|piano|muse|all [--minutes M]
        [--quick] [--data-dir D] [--out FILE.md] [--seed S] [--threads N] [--no-dynamic]

Trains an ensemble on train (members alternate ascending / descending serialisation,
each early-stopped on valid with its best weights kept), chooses the dynamic-evaluation
learning rate on valid, reports exact NLL in nats per time step on valid and test, with
and without dynamic evaluation, and writes a Markdown table beside published figures.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cadenza.errors import CadenzaError
from cadenza.files import write_bytes_atomic
from polyphonic_stack.data import DATASETS, load_dataset
from polyphonic_stack.model import FrameModel, ModelConfig
from polyphonic_stack.dynamic import DynamicConfig
from polyphonic_stack.train import TrainConfig, fit_ensemble, score

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data" / "polyphonic"
NAMES = {"jsb": "JSB Chorales", "nottingham": "Nottingham", "piano": "Piano-midi.de", "muse": "MuseData"}
# Published test NLL, nats per time step, lower is better: (model, evaluation, figures).
# Every one is a static evaluation of a single model. See docs/benchmarks.md for which figures
# were checked against their paper.
PUBLISHED = [
    ("DBN-LSTM (Vohra et al. 2015), state of the art per Bai et al. 2018", "approximate, not replicated",
     {"jsb": 3.47, "nottingham": 1.32}),
    ("RNN-NADE family, best (Boulanger-Lewandowski et al. 2012)", "exact",
     {"jsb": 5.19, "nottingham": 2.31, "piano": 7.05, "muse": 5.60}),
    ("TCN (Bai et al. 2018)", "exact, independent keys", {"jsb": 8.10, "nottingham": 3.07}),
    ("LSTM (Bai et al. 2018)", "exact, independent keys", {"jsb": 8.45, "nottingham": 3.29}),
]

# Chosen on the valid splits only (MuseData: dropout 0.5 gave valid 5.31 vs 5.21 for 0.3;
# JSB: input dropout 0 / 0.1 / 0.2 / 0.35 gave single-model valid 4.945 / 4.916 / 4.886 / 4.849).
# Ensemble members alternate ascending / descending serialisation (see model.py).
PRESETS: dict[str, tuple[ModelConfig, TrainConfig, DynamicConfig]] = {
    "jsb": (ModelConfig(hidden=384, mlp=384, dropout=0.5, input_dropout=0.35),
            TrainConfig(ema=0.99, lr_patience=2, patience=8, members=16),
            DynamicConfig(segment=1, lrs=(0.0, 0.001, 0.002, 0.003, 0.004))),
    "nottingham": (ModelConfig(hidden=384, mlp=384, dropout=0.3, rel_channels=8, periods=(2, 4, 8, 16)),
                   TrainConfig(ema=0.995, lr_patience=2, eval_interval_s=180, members=16),
                   DynamicConfig(segment=4, lrs=(0.0, 0.004, 0.008, 0.016), tune_steps=20000)),
    "piano": (ModelConfig(hidden=384, mlp=384, dropout=0.5, rel_channels=8, periods=(2, 4, 8, 16)),
              TrainConfig(ema=0.995, weight_decay=0.1, lr_patience=2, members=16),
              DynamicConfig(segment=4, lrs=(0.0, 0.004, 0.008, 0.016))),
    "muse": (ModelConfig(hidden=384, mlp=384, dropout=0.3, rel_channels=8, periods=(2, 4, 8, 16)),
             TrainConfig(ema=0.995, lr_patience=2, eval_interval_s=180, members=2, member_s=11 * 60),
             DynamicConfig(segment=4, lrs=(0.0, 0.004, 0.008, 0.016), tune_steps=20000)),
}
QUICK = (ModelConfig(input_dim=16, hidden=16, mlp=16, conv_radius=4, dropout=0.0),
         TrainConfig(batch_size=8, chunk=50, lr=5e-3, eval_interval_s=1.0, max_epochs=12, members=2),
         DynamicConfig(segment=4, lrs=(0.0, 0.01)))


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2, no usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv):
    p = Parser(prog="polyphonic.py", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, choices=[*DATASETS, "all"])
    p.add_argument("--minutes", type=float, default=30.0,
                   help="CPU-time budget per data set, loading and evaluation included (default 30)")
    p.add_argument("--quick", action="store_true", help="tiny JSB slice and model, a few seconds")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--members", type=int, default=None,
                   help="train at most this many ensemble members (1: a single model; default: the preset's)")
    p.add_argument("--no-dynamic", action="store_true",
                   help="static evaluation only (no dynamic-evaluation learning rates tried)")
    args = p.parse_args(argv)
    if not args.minutes > 0:
        p.error(f"--minutes must be positive, got {args.minutes:g}")
    if args.members is not None and args.members < 1:
        p.error(f"--members must be at least 1, got {args.members}")
    if args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    if not args.data_dir.is_dir():
        p.error(f"--data-dir {args.data_dir} is not a folder")
    if args.out is not None and not args.out.parent.is_dir():
        p.error(f"--out {args.out}: folder {args.out.parent} does not exist")
    return args


def run_one(name: str, args) -> dict:
    t0, w0 = time.process_time(), time.monotonic()
    data = load_dataset(name, args.data_dir)
    if args.quick:
        data = {"train": data["train"][:24], "valid": data["valid"][:8], "test": data["test"][:8]}
        mcfg, tcfg, dcfg = QUICK
        budget = 12.0  # CPU seconds: room for both members on a slow or shared CPU (6 s fitted one)
    else:
        mcfg, tcfg, dcfg = PRESETS[name]
        budget = args.minutes * 60
    if args.no_dynamic:
        dcfg = replace(dcfg, lrs=(0.0,))
    if args.members is not None:
        tcfg = replace(tcfg, members=args.members)
    steps = {k: sum(len(r) for r in v) for k, v in data.items()}
    print(f"{NAMES[name]}: {steps['train']} / {steps['valid']} / {steps['test']} train/valid/test steps; "
          f"budget {budget / 60:.1f} CPU min", flush=True)
    res = fit_ensemble(lambda k: FrameModel(replace(mcfg, descending=k % 2 == 1)), data["train"], data["valid"],
                       tcfg, budget - (time.process_time() - t0), test_steps=steps["test"], dynamic=dcfg,
                       seed=args.seed, log=lambda s: print(s, flush=True))
    single = score(res["models"][:1], data["test"])  # the headline: one model, frozen at test time
    static = score(res["models"], data["test"]) if len(res["models"]) > 1 else single
    test = score(res["models"], data["test"], res["lr"], dcfg) if res["lr"] else static
    minutes, wall = (time.process_time() - t0) / 60, (time.monotonic() - w0) / 60
    print(f"{NAMES[name]}: single model, static: valid {res['member_valid_static'][0]:.3f} test {single:.3f}; "
          f"ensemble of {len(res['models'])}, static: valid {res['valid_static']:.3f} test {static:.3f}; "
          f"with dynamic evaluation: valid {res['valid']:.3f} test {test:.3f} "
          f"({minutes:.1f} CPU min, {wall:.1f} wall min)", flush=True)
    return {"name": name, "valid": res["valid"], "test": test, "valid_static": res["valid_static"],
            "test_static": static, "single_valid": res["member_valid_static"][0], "single_test": single,
            "lr": res["lr"], "minutes": minutes, "wall": wall,
            "model": mcfg.describe(), "train": tcfg.describe(), "dynamic": dcfg.describe(),
            "member_valid": res["member_valid"], "descending": sum(m.cfg.descending for m in res["models"]),
            "params": sum(p.numel() for p in res["models"][0].parameters())}


def table(results, args) -> str:
    cmd = "python benchmarks/polyphonic.py " + " ".join(sys.argv[1:])
    lines = [
        "| data set | single model, static: valid | test | ensemble, static: valid | test | "
        "ensemble + dynamic evaluation: valid | test | members | CPU min | wall min |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        dyn = [f"{r['valid']:.3f}", f"{r['test']:.3f}"] if r["lr"] else ["(lr 0: static)", ""]
        cells = [NAMES[r["name"]], f"{r['single_valid']:.3f}", f"{r['single_test']:.3f}",
                 f"{r['valid_static']:.3f}", f"{r['test_static']:.3f}", *dyn, str(len(r["member_valid"])),
                 f"{r['minutes']:.1f}", f"{r['wall']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    names = [r["name"] for r in results]
    lines += ["", "| published model (test) | evaluation | " + " | ".join(NAMES[n] for n in names) + " |",
              "|---|---|" + "---|" * len(names)]
    for model, how, figures in PUBLISHED:
        cells = [f"{figures[n]:.2f}" if n in figures else "" for n in names]
        lines.append(f"| {model} | {how} | " + " | ".join(cells) + " |")
    lines += ["", "NLL in nats per time step (exact, frame representation, lower is better). The headline "
              "is the single model (the first member), static: the protocol of every published figure. "
              "Ensemble = equal-weight mixture of the members; dynamic evaluation = weights adapted causally "
              "within each piece, reset between pieces, its learning rate chosen on valid (0 = static). "
              "CPU min = this process's CPU time (the budget), wall min = elapsed time.", "", f"Command: `{cmd}`"]
    if args.quick:
        lines.append("**--quick mode: tiny slice of JSB and a tiny model; figures are not benchmark results.**")
    lines.append(f"Machine: {platform.machine()} CPU, torch {torch.__version__}, "
                 f"{torch.get_num_threads()} thread(s), seed {args.seed}.")
    lines.append("")
    for r in results:
        members = ", ".join(f"{v:.3f}" for v in r["member_valid"])
        lines.append(f"- {NAMES[r['name']]}: {len(r['member_valid'])} member(s) ({r['descending']} descending) "
                     f"of {r['params']:,} parameters (member valid NLL {members}); dynamic-evaluation lr "
                     f"{r['lr']:g}; model: {r['model']}; training: {r['train']}; dynamic: {r['dynamic']}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    np.random.seed(args.seed)
    names = ["jsb"] if args.quick else (list(DATASETS) if args.dataset == "all" else [args.dataset])
    try:
        results = [run_one(name, args) for name in names]
    except CadenzaError as exc:
        print(f"polyphonic.py: error: {exc}", file=sys.stderr)
        return 2
    md = table(results, args)
    print(md)
    if args.out is not None:
        write_bytes_atomic(args.out, md.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
