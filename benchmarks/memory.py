"""Memory as it is sampled: material that comes back, continuations that keep their primer, speed.

    python benchmarks/memory.py [--run base] [--run RUN [NAME=VALUE ...]] ... [--pop909 val|test]
        [--piano-midi] [--data FOLDER] [--pieces 16] [--bars 32] [--continuations 16]
        [--speed-pieces 8] [--threads 2] [--heldout 40] [--parts no-form,continuation,speed]
        [--workdir runs/memory] [--out FILE.md] [--json FILE]

Every ``--run`` (a run folder or a shipped model's name) is measured side by side; the
``NAME=VALUE`` words after it override its model options (``cache_window=2048``) without
retraining: the model is rebuilt with them and given the run's weights. Seeds are fixed (0).

1. **No form**: ``--pieces`` pieces of ``--bars`` bars (``form="none"``) against the first
   ``--bars`` bars of the held-out pieces, decoded from the run's tokens as the generated ones
   are (:func:`cadenza.evaluate.structure.compare_structure`): similar-bar share (Jaccard >= 0.7
   with an earlier bar, or equal up to transposition), exact-repeat share, notes per bar, empty
   bars, generated and held-out, and the ratios; bars like the one before (a loop held on the
   spot comes back too, but not as real pieces bring material back). Targets: similar >= 0.5x,
   exact <= 1.5x.
2. **Continuation**: the first ``PRIMER_BARS`` bars of each of the first ``--continuations``
   held-out pieces with notes in bars 1-8 and 9-16 are the primer (``cadenza generate --primer
   FILE --primer-bars 8``), ``CONTINUED_BARS`` bars are continued; per piece the continuation's
   notes per bar, lowest and highest pitch per bar (mean over its non-empty bars) and mean
   velocity, each over the same of the real bars 9-16 (as the file reads); the median over
   pieces of each ratio (target 0.8-1.25); the pieces stopped by the tokens-per-bar cap, whose
   bars have another length than the real ones (another metre), and for which generation said
   that the primer is longer than the model's context (it must not for 8 bars).
3. **Speed**: wall seconds for ``--speed-pieces`` pieces of ``--bars`` bars (no form) with
   ``torch.set_num_threads(--threads)`` (target: 8 x 32 bars in at most 30 s with 2 threads;
   the whole benchmark runs with that many), the 1-minute load average before and after, and
   the median ``tokens_per_s`` of the run's metrics.csv (training tokens/s; none for a shipped
   model).

Held-out pieces: with ``--pop909 val`` (the default, for choosing settings) the POP909
validation songs of the first run's base chain, with ``test`` the 40 POP909 test songs (once,
at the end), as ``benchmarks/context.py`` picks them; ``--piano-midi`` adds the piano-midi.de
pieces of the same split; ``--data FOLDER`` measures against FOLDER instead of POP909. Each
set is its first ``--heldout`` files. Progress lines go to stderr.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cadenza.data.bars import bar_tick, cut
from cadenza.data.corpus import find_midi_files
from cadenza.errors import CadenzaError
from cadenza.evaluate.run import heldout_pieces, say
from cadenza.evaluate.structure import compare_structure, excerpt
from cadenza.files import check_outputs, write_bytes_atomic
from cadenza.generation.generate import generate, read_primer, to_scores
from cadenza.pretrained import resolve_run
from cadenza.rundir import METRICS, Run, load_run, parse_model_options, read_metrics, with_model_options
from cadenza.data.scores import bar_contents, in_ticks, merged_notes

ROOT = Path(__file__).resolve().parents[1]

PRIMER_BARS = CONTINUED_BARS = 8
CONTEXT_LINE = "longer than the model's context"  # what generate logs when it reads a primer's tail only
STEPS_PER_BEAT = 12  # bar_contents' grid
TEXTURE = ("notes_per_bar", "lowest_pitch", "highest_pitch", "velocity")
PARTS = ("no-form", "continuation", "speed")
TARGETS = {"similar": 0.5, "exact": 1.5, "texture": (0.8, 1.25), "speed_s": 30.0}


# -- runs ------------------------------------------------------------------------------------
def load_runs(specs: list[list[str]]) -> dict[str, Run]:
    """Label -> run for each ``--run PATH [NAME=VALUE ...]``, overrides applied."""
    runs = {}
    for k, (path, *words) in enumerate(specs, 1):
        run = load_run(resolve_run(path))
        options = parse_model_options(words, run.config.model)
        label = run.directory.name + (f" ({', '.join(words)})" if words else "")
        runs[label if label not in runs else f"{label} #{k}"] = with_model_options(run, **options)
    return runs


# -- held-out pieces ---------------------------------------------------------------------------
def heldout_folders(args, first: Run) -> dict[str, str]:
    """Name -> folder of each held-out set (see the module docstring)."""
    from context import piano_midi_held_out, pop909_held_out  # benchmarks/ is on the path of a script

    split = args.pop909
    folders = {f"{args.data.name}": str(args.data)} if args.data else {
        f"POP909 {split}": pop909_held_out(first, args.workdir, split)}
    if args.piano_midi:
        folders[f"piano-midi.de {split}"] = str(piano_midi_held_out(args.workdir, split))
    return folders


# -- 1. no form ------------------------------------------------------------------------------
def no_form(run: Run, held: dict[str, list], pieces: int, bars: int) -> dict:
    """Generated pieces without a form against each held-out set (name -> decoded scores)."""
    say(f"generating {pieces} pieces of {bars} bars without a form ...")
    began = time.perf_counter()
    result = generate(run, num=pieces, length=bars, unit="bars", seed=0, form="none", quiet=True, log=say)
    scores = to_scores(run, result, length=bars, unit="bars")
    wall = time.perf_counter() - began
    say(f"generated {sum(s.note_num() for s in scores)} notes in {wall:.0f} s")
    extra = {"wall_s": wall, "capped": len(result.capped)}
    return {name: compare_structure(scores, reference, bars) | extra for name, reference in held.items()}


# -- 2. continuation -------------------------------------------------------------------------
def texture(score, bars: int) -> dict[str, float]:
    """Notes per bar over ``bars`` bars, lowest and highest pitch per bar (mean over the
    non-empty bars) and mean velocity, NaN where there are no notes; and the length of the
    bars in beats (a continuation in another metre has bars of another length)."""
    score = in_ticks(score)
    notes = merged_notes(score, "tick")
    contents, steps = bar_contents(score, min_bars=bars)
    pitches = [[pitch for _, pitch in bar] for bar in contents[:bars] if bar]
    return {"notes_per_bar": len(notes["pitch"]) / bars,
            "lowest_pitch": float(np.mean([min(p) for p in pitches])) if pitches else math.nan,
            "highest_pitch": float(np.mean([max(p) for p in pitches])) if pitches else math.nan,
            "velocity": float(notes["velocity"].mean()) if len(notes["velocity"]) else math.nan,
            "beats": float(steps[:bars].sum() / STEPS_PER_BEAT)}


def primers(run: Run, folder: str, count: int) -> list[tuple[Path, dict]]:
    """The first ``count`` pieces of ``folder`` of at least 16 bars with notes in bars 1-8 and
    in bars 9-16, each with the texture of its real bars 9-16, read as a primer is read (cut at
    bar 16 first, so that notes sounding past it are shortened, as the continuation's are)."""
    out, span = [], PRIMER_BARS + CONTINUED_BARS
    for path in find_midi_files(folder):
        try:
            piece = read_primer(path, None, run.representation.timeline)
        except CadenzaError:
            continue
        whole = cut(piece.score, bar_tick(piece.score, span))
        real = excerpt(whole, CONTINUED_BARS, PRIMER_BARS)
        if piece.bars >= span and excerpt(whole, PRIMER_BARS).note_num() and real.note_num():
            out.append((path, texture(real, CONTINUED_BARS)))
        if len(out) == count:
            break
    return out


def continue_piece(run: Run, path: Path) -> tuple[dict, bool, bool]:
    """The texture of the ``CONTINUED_BARS`` continued after the primer's first bars, whether
    generation said that the primer is longer than the model's context, and whether the piece
    was stopped by the tokens-per-bar cap (a bar the model never closed)."""
    lines: list[str] = []
    result = generate(run, num=1, length=CONTINUED_BARS, unit="bars", seed=0, primer=path,
                      primer_bars=PRIMER_BARS, quiet=True, log=lines.append)
    for line in lines:
        say(f"  {path.name}: {line}")
    [score] = to_scores(run, result, continuation_only=True)
    return texture(score, CONTINUED_BARS), any(CONTEXT_LINE in line for line in lines), bool(result.capped)


def median(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else None


def continuation(run: Run, folder: str, count: int) -> dict:
    """Median over pieces of each texture ratio (continuation / real bars 9-16)."""
    pieces = primers(run, folder, count)
    say(f"continuing {len(pieces)} primers of {PRIMER_BARS} bars by {CONTINUED_BARS} bars ...")
    ratios = {key: [] for key in TEXTURE}
    warned, rows = [], []
    for path, real in pieces:
        made, long_primer, capped = continue_piece(run, path)
        rows.append({"piece": path.name, "generated": made, "real": real, "capped": capped})
        warned += [path.name] * long_primer
        for key in TEXTURE:
            ratios[key].append(made[key] / real[key] if real[key] else math.nan)
    return {"pieces": len(pieces), "median_ratio": {key: median(v) for key, v in ratios.items()},
            "empty_continuations": sum(r["generated"]["notes_per_bar"] == 0 for r in rows),
            "capped": sum(r["capped"] for r in rows),
            "other_bar_length": sum(r["generated"]["beats"] != r["real"]["beats"] for r in rows),
            "context_warnings": warned, "per_piece": rows}


# -- 3. speed ----------------------------------------------------------------------------------
def speed(run: Run, pieces: int, bars: int) -> dict:
    """Wall seconds of ``pieces`` x ``bars`` bars (no form) and the run's training tokens/s."""
    say(f"timing {pieces} pieces of {bars} bars ...")
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    result = generate(run, num=pieces, length=bars, unit="bars", seed=0, form="none", quiet=True, log=say)
    wall = time.perf_counter() - began
    rows = read_metrics(run.directory / METRICS)
    return {"pieces": pieces, "bars": bars, "threads": torch.get_num_threads(), "wall_s": wall,
            "tokens_per_s": sum(map(len, result.new)) / wall,
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "train_tokens_per_s": median([r["tokens_per_s"] for r in rows if r["tokens_per_s"] is not None])}


# -- tables ------------------------------------------------------------------------------------
def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "no")


def no_form_table(results: dict) -> list[str]:
    lines = ["### 1. Without a form: generated vs held-out (first bars of each)", "",
             "| run | held-out | pieces (held-out) | similar-bar share | held-out | ratio | >= 0.5x | "
             "exact-repeat share | held-out | ratio | <= 1.5x | like the bar before | held-out | notes/bar | "
             "held-out | empty bars | held-out | capped | wall s |", "|" + "---|" * 19]
    for label, r in results.items():
        for name, c in r.get("no_form", {}).items():
            g, h, q = c["generated"], c["held_out"], c["ratio"]
            sim, rep = q["similar_bar_share"], q["repeated_bar_share"]
            exact = g["repeated_bar_share"], h["repeated_bar_share"]
            exact_ok = None if None in exact else exact[0] <= TARGETS["exact"] * exact[1]
            lines.append(
                f"| {label} | {name} | {c['pieces']['generated']} x {c['bars']} ({c['pieces']['held_out']}) | "
                f"{_f(g['similar_bar_share'])} | {_f(h['similar_bar_share'])} | {_f(sim, 2)} | "
                f"{_verdict(None if sim is None else sim >= TARGETS['similar'])} | {_f(g['repeated_bar_share'])} | "
                f"{_f(h['repeated_bar_share'])} | {_f(rep, 2)} | {_verdict(exact_ok)} | {_f(g['looped_bar_share'])} | "
                f"{_f(h['looped_bar_share'])} | {_f(g['notes_per_bar'], 1)} | "
                f"{_f(h['notes_per_bar'], 1)} | {_f(g['empty_bar_share'])} | {_f(h['empty_bar_share'])} | "
                f"{c['capped']} | {c['wall_s']:.0f} |")
    return lines


def continuation_table(results: dict) -> list[str]:
    lo, hi = TARGETS["texture"]
    lines = [f"### 2. Continuation: {PRIMER_BARS} bars of primer, {CONTINUED_BARS} continued, against the real "
             f"bars {PRIMER_BARS + 1}-{PRIMER_BARS + CONTINUED_BARS} (median ratio over pieces)", "",
             "| run | held-out | pieces | notes/bar | lowest pitch | highest pitch | velocity | "
             f"all within {lo}-{hi} | empty | capped | other bar length | context warnings |", "|" + "---|" * 12]
    for label, r in results.items():
        for name, c in r.get("continuation", {}).items():
            m = c["median_ratio"]
            ok = None if not c["pieces"] else all(v is not None and lo <= v <= hi for v in m.values())
            counts = (c["empty_continuations"], c["capped"], c["other_bar_length"], len(c["context_warnings"]))
            lines.append(f"| {label} | {name} | {c['pieces']} | " + " | ".join(_f(m[k], 2) for k in TEXTURE)
                         + f" | {_verdict(ok)} | " + " | ".join(map(str, counts)) + " |")
    return lines


def speed_table(results: dict) -> list[str]:
    lines = ["### 3. Speed: generation without a form", "",
             "| run | pieces x bars | threads | wall s | new tokens/s | load (1 min) before / after | "
             f"8 x 32 bars <= {TARGETS['speed_s']:g} s | training tokens/s (median) |", "|" + "---|" * 8]
    for label, r in results.items():
        s = r.get("speed")
        if s:
            at_target = (s["pieces"], s["bars"], s["threads"]) == (8, 32, 2)
            lines.append(f"| {label} | {s['pieces']} x {s['bars']} | {s['threads']} | {s['wall_s']:.1f} | "
                         f"{s['tokens_per_s']:.0f} | {s['load_before']:.1f} / {s['load_after']:.1f} | "
                         f"{_verdict(s['wall_s'] <= TARGETS['speed_s']) if at_target else 'n/a (other size)'} | "
                         f"{_f(s['train_tokens_per_s'], 0)} |")
    return lines


def tables(results: dict) -> str:
    """The table of each part measured."""
    parts = [(table, key) for table, key in ((no_form_table, "no_form"), (continuation_table, "continuation"),
                                              (speed_table, "speed")) if any(key in r for r in results.values())]
    return "\n\n".join("\n".join(table(results)) for table, _ in parts) + "\n"


# -- the command -------------------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2, no usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = Parser(prog="memory.py", description=__doc__.splitlines()[0])
    ap.add_argument("--run", nargs="+", action="append", metavar=("RUN", "NAME=VALUE"),
                    help="a run folder or shipped model, then model options to override (repeat for more runs)")
    ap.add_argument("--pop909", choices=("val", "test"), default="val",
                    help="POP909 validation songs (choosing) or the 40 test songs (once, at the end)")
    ap.add_argument("--piano-midi", action="store_true", help="also the piano-midi.de pieces of the same split")
    ap.add_argument("--data", type=Path, help="a folder of held-out pieces instead of POP909")
    ap.add_argument("--pieces", type=positive, default=16, help="generated pieces without a form")
    ap.add_argument("--bars", type=positive, default=32, help="bars of each generated and timed piece")
    ap.add_argument("--continuations", type=positive, default=16, help="held-out pieces continued")
    ap.add_argument("--speed-pieces", type=positive, default=8, help="pieces generated for the timing")
    ap.add_argument("--threads", type=positive, default=2, help="torch threads (the speed target is for 2)")
    ap.add_argument("--heldout", type=positive, default=40, help="held-out pieces per set at most")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"which of {', '.join(PARTS)} (comma-separated)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "memory", help="held-out folders are linked here")
    ap.add_argument("--out", type=Path, help="also write the tables here (markdown)")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    args = ap.parse_args(argv)
    args.run = args.run or [["base"]]
    args.parts = args.parts.split(",")
    if set(args.parts) - set(PARTS):
        ap.error(f"--parts takes {', '.join(PARTS)}, not {args.parts}")
    if args.data is not None and not args.data.is_dir():
        ap.error(f"--data {args.data} is not a folder")
    return args


def measure(run: Run, args, folders: dict[str, str]) -> dict:
    out: dict = {"run": str(run.directory), "model_options": run.config.model_options}
    if "no-form" in args.parts:
        held = {name: [s for *_, s in heldout_pieces(run, folder, args.heldout, quiet=True)]
                for name, folder in folders.items()}
        out["no_form"] = no_form(run, held, args.pieces, args.bars)
    if "continuation" in args.parts:
        out["continuation"] = {name: continuation(run, folder, args.continuations) for name, folder in folders.items()}
    if "speed" in args.parts:
        out["speed"] = speed(run, args.speed_pieces, args.bars)
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        return run_benchmark(parse_args(argv))
    except CadenzaError as exc:  # bad input: one line, exit code 2
        print(f"memory.py: error: {exc}", file=sys.stderr)
        return 2


def run_benchmark(args: argparse.Namespace) -> int:
    check_outputs([p for p in (args.out, args.json) if p], force=True)
    torch.set_num_threads(args.threads)
    runs = load_runs(args.run)
    folders = heldout_folders(args, next(iter(runs.values())))
    results = {}
    for label, run in runs.items():
        say(f"{label}:")
        results[label] = measure(run, args, folders)
    text = tables(results)
    print(text)
    if args.out:
        write_bytes_atomic(args.out, text.encode())
    if args.json:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        write_bytes_atomic(args.json, json.dumps({"settings": settings, "runs": results}, indent=1,
                                                 default=float).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
