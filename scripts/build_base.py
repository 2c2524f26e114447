"""Train (or continue) the base composer on POP909 and ship it inside the package.

    python scripts/build_base.py [--data ../shared/data/pop909] [--minutes 80] [--run-dir runs/base]
        [--export-only]

The songs are split as ``benchmarks/structure.py`` splits them: its 40 test songs are held
out here too; training holds out its own 10% validation split. The first call trains
``--run-dir`` with the ``base`` preset for ``--minutes``; later calls continue it
(``--resume``) for as long again. ``--continue-from RUN --with-bach`` instead continues a
POP909 run or the shipped ``base`` (``cadenza train --from RUN``) on its own training songs plus the built-in bach
chorales except the first 40 (``benchmarks/finetune.py``'s unseen folder); its validation
songs stay out, and the figures below use them. ``--bach-repeats K`` links each chorale K times,
so that they are a larger share of what is trained on (the copies stay on one side of the
run's validation split). Then the best weights are exported to
``src/cadenza/pretrained/base/`` with the tokenizer, configuration (the ``base`` preset's
sampling), training windows and token statistics: as fp16 when the validation NLL stays within
1% of fp32, else fp32. The model card records data, command, figures and the weights' SHA-256.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_model

from cadenza import rundir
from cadenza.config import preset
from cadenza.files import hash_file
from cadenza.pretrained import HERE, WEIGHTS_SHA256_FILE

ROOT = Path(__file__).resolve().parents[1]
# the POP909 split, the held-out NLL and the structure measures are benchmarks/structure.py's:
# a script in scripts/ does not see benchmarks/ by itself
sys.path.insert(0, str(ROOT / "benchmarks"))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pop909"
TARGET = HERE / "base"
FP16_TOLERANCE = 0.01
GEN_KEYS = ("gen_temperature", "gen_top_k", "gen_top_p", "gen_min_p", "gen_form", "gen_length")
# a fine-tune scales these from the base preset's, however the shipped weights were last trained
TRAIN_KEYS = ("lr", "warmup_fraction", "warmup_steps", "max_minutes", "patience", "init_from", "ema")


BENCHMARK_CHORALES = 40  # sorted(bach_chorales())[:40]: never in the base's data


def mixed_folder(pop_train: Path, pop_val: Path, target: Path, repeats: int = 1,
                 piano_midi: bool = False) -> Path:
    """``target`` holding links to the POP909 training songs that are not ``pop_val`` songs, to
    the bach chorales after the benchmark's first 40, each ``repeats`` times, and with
    ``piano_midi`` to the piano-midi.de pieces that ``benchmarks/context.py`` does not hold out."""
    from cadenza.data.corpus.bach import bach_chorales
    from context import piano_midi_split
    from structure import link_files

    val = {p.name for p in pop_val.iterdir()}
    links = {f"pop-{p.name}": p for p in sorted(pop_train.iterdir()) if p.name not in val}
    for k in range(repeats):
        copy = f"r{k}-" if k else ""  # the first copy keeps the earlier runs' names
        links |= {f"bach-{copy}{p.name}": p for p in sorted(bach_chorales())[BENCHMARK_CHORALES:]}
    if piano_midi:
        links |= {f"pm-{p.parent.name}-{p.name}": p for p in piano_midi_split()["train"]}
    return link_files(target, links)


def trained_on_bach(run) -> bool:
    """Whether ``run`` trained on a folder of ``mixed_folder`` (with chorales)."""
    return any(Path(run.config.source).glob("bach-*"))


def pop909_run(run):
    """The POP909-only run that ``run`` continues (itself when it is one): its validation songs
    are the ones every continuation leaves out and is measured on."""
    from cadenza.pretrained import resolve_run
    from cadenza.rundir import load_run

    while run.config.init_from and trained_on_bach(run):
        start = ROOT / run.config.init_from  # a run folder, or a shipped model's name
        run = load_run(start if start.exists() else resolve_run(run.config.init_from))
    return run


def pop909_val(run, workdir: Path) -> Path:
    """The POP909 validation songs of ``run``'s chain, linked into ``workdir/val``. The shipped
    base keeps no run folder: its chain's POP909 run trained on ``workdir/train`` with the
    same split options, and the seeded split of the same files gives the same songs."""
    from cadenza.pretrained import is_shipped
    from structure import val_folder

    run = pop909_run(run)
    if is_shipped(run.directory):
        run = dataclasses.replace(run, config=run.config.replace(source=str(workdir / "train")))
    return val_folder(run, workdir)


def train(train_folder: Path, run_dir: Path, minutes: float, start: Path | None = None,
          extra: list[str] = ()) -> None:
    cmd = [sys.executable, "-m", "cadenza", "train", str(train_folder), "--run-dir", str(run_dir),
           "--max-minutes", f"{minutes}", "--threads", "1", "--quiet"]
    if (run_dir / rundir.STATE).exists():
        cmd += ["--resume"]
    else:  # a continuation on thousands of pieces keeps the base preset's dropout, not a fine-tune's
        cmd += ["--from", str(start), "--dropout", f"{preset('base').model_options['dropout']}"] if start \
            else ["--preset", "base"]
        cmd += list(extra)  # given last: they override the dropout above
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def figures(run, val_folder: Path, test_folder: Path) -> dict:
    """Validation NLL per note in fp32 and fp16, test NLL per note, and the structure ratios
    of 16 generated 32-bar pieces against the test songs (the base preset's sampling)."""
    from cadenza.evaluate.run import heldout_pieces
    from structure import nll_per_note, sample

    val = heldout_pieces(run, str(val_folder), 30, quiet=True)
    test = heldout_pieces(run, str(test_folder), None, quiet=True)
    out = {"val_nll_note_fp32": nll_per_note(run, val), "test_nll_note": nll_per_note(run, test)}
    fp32 = {k: v.clone() for k, v in run.model.state_dict().items()}
    run.model.load_state_dict({k: v.half().float() for k, v in fp32.items()})
    out["val_nll_note_fp16"] = nll_per_note(run, val)
    run.model.load_state_dict(fp32)
    cfg = preset("base")
    smp = sample(run, 16, 32, (cfg.gen_temperature, cfg.gen_top_p, cfg.gen_min_p, cfg.gen_form),
                 {"test": [s for *_, s in test]})
    out["structure_test"] = smp["test"]
    return out


def validation_structure(run_dirs: list[Path], workdir: Path) -> None:
    """How runs compare when they generate with no primer: the structure of 16 pieces against
    30 of the POP909 validation songs (never the test songs), one JSON line per run."""
    from cadenza.evaluate.run import heldout_pieces
    from cadenza.rundir import load_run
    from structure import sample

    cfg = preset("base")
    for run_dir in run_dirs:
        run = load_run(run_dir)
        val = heldout_pieces(run, str(pop909_val(run, workdir)), 30, quiet=True)
        out = sample(run, 16, 32, (cfg.gen_temperature, cfg.gen_top_p, cfg.gen_min_p, cfg.gen_form),
                     {"val": [s for *_, s in val]})["val"]
        print(json.dumps({"run": str(run_dir), "ioi_overlap": out["ioi_overlap"], **out["ratio"]}, default=float))


def export(run, figs: dict, command: str, note: str = "") -> Path:
    half = figs["val_nll_note_fp16"] <= figs["val_nll_note_fp32"] * (1 + FP16_TOLERANCE)
    tmp = TARGET.with_name("base.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model = run.model.half() if half else run.model
    save_model(model, str(tmp / rundir.BEST))
    run.model.float()
    config = run.config.replace(**{k: getattr(preset("base"), k) for k in GEN_KEYS + TRAIN_KEYS}, source="pop909")
    (tmp / rundir.CONFIG).write_text(config.to_json())
    shutil.copytree(run.directory / rundir.TOKENIZER, tmp / rundir.TOKENIZER)
    for name in (rundir.PRIMERS, rundir.TOKEN_STATS):
        shutil.copy(run.directory / name, tmp / name)
    sha = hash_file(tmp / rundir.BEST, hashlib.sha256()).hexdigest()
    (tmp / WEIGHTS_SHA256_FILE).write_text(f"{sha}  {rundir.BEST}\n")
    (tmp / "MODEL_CARD.md").write_text(card(figs, sha, "fp16" if half else "fp32", command, run, note))
    shutil.rmtree(TARGET, ignore_errors=True)
    tmp.rename(TARGET)
    return TARGET


def card(figs: dict, sha: str, dtype: str, command: str, run, note: str = "") -> str:
    rows = rundir.read_metrics(run.directory / rundir.METRICS)
    ratio = figs["structure_test"]["ratio"]
    repeats = 1 + len({p.name.split("-")[1] for p in Path(run.config.source).glob("bach-r*-*")})
    bach = ("" if not trained_on_bach(run) else
            "\nThen continued on the same training songs with the Bach chorales that ship with music21 "
            f"(public domain), except the first {BENCHMARK_CHORALES}: those are the unseen folder of "
            "`benchmarks/finetune.py`" + (f"; each chorale linked {repeats} times" if repeats > 1 else "") + ".")
    ratios = "\n".join(f"| {k} | {v:.2f} |" if v is not None else f"| {k} | n/a |" for k, v in ratio.items())
    opts, cache = run.config.model_options, getattr(run.model, "cache", None)
    memory = ("" if run.config.model != "lstm_memory" else
              f", then attention over its own past outputs ({opts.get('window', 2048)} tokens back)"
              + (f" and a continuous cache over the last {cache.window} tokens (scale {cache.scale:g}, sentinel "
                 f"{cache.sentinel:g}, from {cache.gap} tokens back, at most {cache.most:.0%} of each step; "
                 "`cadenza/models/cache.py`)" if cache else ""))
    piano_midi = ("" if not any(Path(run.config.source).glob("pm-*")) else
                  "\nAnd the piano-midi.de pieces of Bernd Krueger (CC BY-SA, Germany) as cleaned in "
                  "ClassicalPianoMIDI-dataset, except the 80 that `benchmarks/context.py` holds out "
                  "(40 test, 40 validation).")
    return f"""# cadenza base composer

A {opts.get('layers')} x {opts.get('dim')} LSTM over REMI tokens (MidiTok){memory},
{sum(p.numel() for p in run.model.parameters()):,} parameters, weights in {dtype} (`best.safetensors`, SHA-256 `{sha}`).

## Data and licence
Trained on the POP909 piano arrangements (809 songs; the arrangements are MIT-licensed; the
songs themselves are copyrighted compositions, and pieces generated by this model may echo
them). 40 songs are held out as test (the split of `benchmarks/structure.py`), 10% of the rest
as validation.{bach}{piano_midi} cadenza's code is MIT-licensed.

## Command
`{command}`; training: {rows[-1]['elapsed_s'] / 60:.0f} wall minutes, {rows[-1]['progress']:.2f} epochs,
one CPU thread, best validation loss {min(r['val_loss'] for r in rows if r['val_loss'] is not None):.4f} per token.
{note}

## Figures
| measure | value |
|---|---|
| validation NLL per note (fp32) | {figs['val_nll_note_fp32']:.3f} |
| validation NLL per note ({dtype} as shipped) | {figs['val_nll_note_fp16'] if dtype == 'fp16' else figs['val_nll_note_fp32']:.3f} |
| test NLL per note | {figs['test_nll_note']:.3f} |
| test IOI overlap | {figs['structure_test']['ioi_overlap']:.2f} |

Structure of 16 generated 32-bar pieces (temperature 1, min-p 0.1, {preset("base").gen_form or "no form"}) over 32-bar
excerpts of the 40 test songs, generated / held-out:

| measure | ratio |
|---|---|
{ratios}
"""


def main(argv: list[str] | None = None) -> int:
    from structure import split_songs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--minutes", type=float, default=80.0)
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "base")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "structure", help="where the song split lives")
    ap.add_argument("--export-only", action="store_true", help="export the run as it is, without training")
    ap.add_argument("--no-export", action="store_true", help="train and print the figures, without shipping "
                    "(candidates are compared first; --export-only then ships the chosen one)")
    ap.add_argument("--note", default="", help="a sentence for the model card (how the run was trained)")
    ap.add_argument("--continue-from", type=Path, help="a run of this script, or base (the shipped weights), to continue")
    ap.add_argument("--with-bach", action="store_true", help="with --continue-from: add the bach chorales")
    ap.add_argument("--with-piano-midi", action="store_true", help="with --with-bach: add the piano-midi.de "
                    "pieces that benchmarks/context.py does not hold out")
    ap.add_argument("--bach-repeats", type=int, default=1, help="with --with-bach: link each chorale this many times")
    ap.add_argument("--train-args", default="", help="more `cadenza train` options for a new run, e.g. "
                    "'--dropout 0.3 --ema 0.999'")
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                    help="a model option that holds no weights, set on the run before its figures and export, "
                         "VALUE as JSON (e.g. cache_window=2048, frozen=false); repeat")
    ap.add_argument("--val-structure", type=Path, nargs="+", metavar="RUN",
                    help="only print each run's unprimed pieces against POP909 validation songs")
    args = ap.parse_args(argv)
    if args.val_structure:
        validation_structure(args.val_structure, args.workdir)
        return 0
    train_folder, test_folder = split_songs(args.data, args.workdir, quick=False)
    from cadenza.rundir import load_run
    from structure import val_folder

    if args.with_bach and not args.continue_from:
        ap.error("--with-bach continues a POP909 run: give --continue-from RUN")
    pop_val = pop909_val(load_run(args.continue_from), args.workdir) if args.continue_from else None
    if args.with_bach:
        train_folder = mixed_folder(train_folder, pop_val, args.run_dir.parent / ("train-pm" if args.with_piano_midi
                                    else "train"), args.bach_repeats, args.with_piano_midi)
    if not args.export_only:
        train(train_folder, args.run_dir, args.minutes, args.continue_from, args.train_args.split())
    run = load_run(args.run_dir)
    if args.option:
        from cadenza.rundir import parse_model_options, with_model_options

        run = with_model_options(run, **parse_model_options(args.option, run.config.model))
    torch.set_num_threads(2)
    figs = figures(run, pop_val or val_folder(run, args.workdir), test_folder)
    print(json.dumps({k: v for k, v in figs.items() if k != "structure_test"}, indent=1))
    if args.no_export:
        return 0
    given = list(sys.argv[1:] if argv is None else argv)
    if "--note" in given:  # the note is printed on its own in the card
        del given[given.index("--note"):given.index("--note") + 2]
    command = " ".join(["python scripts/build_base.py", *given])
    target = export(run, figs, command, args.note)
    print(f"shipped {target} ({sum(f.stat().st_size for f in target.rglob('*') if f.is_file()) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
