"""The ``cadenza`` command: a thin layer over the Python API.

Usage and data errors print one line and exit with code 2; nothing is written first.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from . import startup
from .errors import CadenzaError, printable


def _add_train(sub) -> None:
    from .config import FINETUNE_SCHEDULE as FINETUNE, PRESETS, preset
    from .models import NAMES as MODELS
    from .data.representations import NAMES as REPS

    base = preset("base")

    def dflt(name: str) -> str:  # what a flag not given means, read from the preset itself
        return f"(default: the preset's; base: {getattr(base, name)})"

    p = sub.add_parser("train", help="train a composer on a MIDI file, folder or built-in corpus")
    p.add_argument("source", nargs="?", help="MIDI file, folder (searched recursively) or built-in corpus "
                   "(default: the run's own on --resume, else bach)")
    p.add_argument("--run-dir", required=True, type=Path, help="where the run is written (required)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="model, tokens and budget (default: base)")
    p.add_argument("--from", dest="start_from", metavar="RUN",
                   help="fine-tune a trained run: the shipped 'base' or a run folder (its tokenizer and model; "
                        "default: none, train from scratch)")
    p.add_argument("--representation", choices=REPS, help=f"token representation {dflt('representation')}")
    p.add_argument("--vocab-size", type=int,
                   help="train BPE on the training split up to this many tokens (default: no BPE)")
    p.add_argument("--model", choices=MODELS, help=f"the network {dflt('model')}")
    p.add_argument("--epochs", type=int, help="most passes over the training split; with --max-minutes a cap "
                   f"before the budget {dflt('epochs')}; a fine-tune: {FINETUNE['epochs']}")
    p.add_argument("--seq-len", type=int, help=f"tokens per training window {dflt('seq_len')}")
    p.add_argument("--batch-size", type=int, help=f"windows per step {dflt('batch_size')}")
    p.add_argument("--lr", type=float, help=f"peak learning rate {dflt('lr')}; a fine-tune: a share of its start's")
    p.add_argument("--dropout", type=float, help="the model's dropout (a fine-tune may raise it against "
                   f"overfitting; default: the preset's, base: {base.model_options['dropout']})")
    p.add_argument("--model-option", action="append", default=[], metavar="NAME=VALUE",
                   help="one of the network's options, VALUE as JSON (e.g. window=2048, frozen=true); repeat for "
                        "more (default: the preset's or the starting run's)")
    p.add_argument("--ema", type=float, metavar="DECAY",
                   help=f"evaluate and keep a moving average of the weights with this decay per step "
                        f"(0: off) {dflt('ema')}")
    p.add_argument("--val-fraction", type=float, help=f"share of pieces held out for validation {dflt('val_fraction')}")
    p.add_argument("--transpose", type=int, help=f"random transposition within +-N semitones (0: off) {dflt('transpose')}")
    p.add_argument("--tempo-stretch", type=int,
                   help=f"random tempo change within +-N tempo bins (0: off) {dflt('tempo_stretch')}")
    p.add_argument("--infill", type=float, metavar="SHARE",
                   help="teach infill (cadenza infill): this share of the training windows become fill-in-the-middle "
                        f"examples; above 0 adds three marker tokens after the vocabulary {dflt('infill')}")
    p.add_argument("--controls", type=float, metavar="SHARE",
                   help="teach density controls (generate --density): this share of the training windows carry a "
                        f"density token after each bar {dflt('controls')}")
    p.add_argument("--lookahead", type=float, metavar="SHARE",
                   help="teach melody lookahead (cadenza accompany): this share of the training windows give each "
                        f"bar's top line before the bar {dflt('lookahead')}")
    p.add_argument("--patience", type=int,
                   help=f"stop after N evaluations without validation improvement (0: off) {dflt('patience')}")
    p.add_argument("--max-minutes", type=float,
                   help=f"time budget of the whole command, data preparation included (0: none) "
                        f"{dflt('max_minutes')}; a fine-tune: {FINETUNE['max_minutes']:g}")
    p.add_argument("--checkpoint-minutes", type=float,
                   help=f"also save the training state mid-epoch this often {dflt('checkpoint_minutes')}")
    p.add_argument("--steps-per-epoch", type=int,
                   help="steps between epoch ends (default: the whole training split once)")
    p.add_argument("--seed", type=int, help=f"seed of the split, the windows and the weights {dflt('seed')}")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model (default: off)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last state")
    p.add_argument("--workers", type=int, help="processes for reading MIDI (default: all cores)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="write new music from a trained run")
    p.add_argument("run_dir", type=Path, help="a run folder, or the shipped base")
    p.add_argument("-o", "--output", required=True, type=Path,
                   help="output .mid, out-1.mid ... with --num (required)")
    p.add_argument("--length", type=float, help="how much new music to generate, in --unit (default: the run's)")
    p.add_argument("--unit", choices=("tokens", "bars", "seconds"), default="tokens",
                   help="what --length counts (default: tokens)")
    _add_sampling(p)
    p.add_argument("--form", help="sections that come back, e.g. AABA, or none (default: the run's)")
    p.add_argument("--section-bars", type=int, help="bars per section of --form (default: the length shared out)")
    p.add_argument("--seed", type=int, help="the same seed writes the same pieces (default: a new one each time)")
    p.add_argument("--key", help="the key of the pieces, e.g. C:major, A:minor, F#:minor, Bb:major "
                   "(default: the music's own; not with --primer)")
    p.add_argument("--tempo", type=float, help="the tempo of the new music in bpm (default: the music's own)")
    p.add_argument("--density", help="how busy every bar is: low, medium or high, about 10, 18 or 28 notes a bar "
                   "(a run trained with --controls; default: the music's own)")
    p.add_argument("--num", type=int, default=1, help="pieces generated together in one batch (default: 1)")
    p.add_argument("--primer", type=Path, help="continue this MIDI file (its tempo, time and key signature are "
                   "kept; default: none, a window of the training music sets the start)")
    p.add_argument("--primer-bars", type=int, help="continue only the primer's first N bars "
                   "(a performance run: windows of 4 s; default: all of it)")
    p.add_argument("--continuation-only", action="store_true",
                   help="write only the new part after a primer (from time 0, with the primer's tempo and metre)")
    p.add_argument("--no-constraints", action="store_true",
                   help="sample the raw model: no grammar, unseen-token or tempo/metre masks")
    p.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")
    p.add_argument("--render", default="", help="also write pictures/audio: png, wav or png,wav (default: none)")
    _add_sound(p)
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--verbose", action="store_true", help="also print how much probability the masks removed")


def _add_sampling(p) -> None:
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the run's)")
    p.add_argument("--top-k", type=int, help="sample from the k likeliest tokens, 0: all (default: the run's)")
    p.add_argument("--top-p", type=float, help="sample from the smallest set holding this probability "
                   "(default: the run's)")
    p.add_argument("--min-p", type=float, help="drop tokens below this share of the likeliest one's probability "
                   "(default: the run's)")


def _add_infill(sub) -> None:
    p = sub.add_parser("infill", help="regenerate a span of bars of a piece, given the music before and after it")
    p.add_argument("run_dir", type=Path, help="a run trained with --infill")
    p.add_argument("piece", type=Path, help="the MIDI file whose bars are regenerated")
    p.add_argument("--bars", required=True, help="the span, FIRST-LAST counted from 1, e.g. 9-12 (required)")
    _add_candidates(p)


def _add_accompany(sub) -> None:
    p = sub.add_parser("accompany", help="compose a piano accompaniment under a melody, the melody kept note for note")
    p.add_argument("run_dir", type=Path, help="a trained run (REMI tokens), e.g. base")
    p.add_argument("melody", type=Path, help="a MIDI file: its one track with notes, or the track --melody-track names")
    p.add_argument("--melody-track", metavar="NAME",
                   help="the melody's track in a file of several (its name, or its number from 1; "
                        "default: the file's one track with notes)")
    _add_candidates(p)


def _add_candidates(p) -> None:
    """What infill and accompany share: candidates written to files, drawn as sampling says."""
    p.add_argument("-o", "--output", required=True, type=Path,
                   help="output .mid, out-1.mid ... with --num (required)")
    p.add_argument("--num", type=int, default=1, help="candidates generated together in one batch (default: 1)")
    _add_sampling(p)
    p.add_argument("--seed", type=int, help="the same seed writes the same pieces (default: a new one each time)")
    p.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")


def _add_sound(p) -> None:
    p.add_argument("--soundfont", type=Path,
                   help="a General MIDI .sf2 for WAV audio (default: the TimGM6mb font inside pretty_midi)")
    p.add_argument("--synth", choices=("sampler", "fluidsynth"), default="sampler",
                   help="sampler: cadenza's own, needs nothing else (default); fluidsynth: the program, where installed")


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="draw a piano roll and/or synthesise audio of a MIDI file")
    p.add_argument("midi", type=Path, help="the MIDI file")
    p.add_argument("--png", type=Path, help="write its piano roll here (default: none)")
    p.add_argument("--wav", type=Path, help="write its audio here (default: none)")
    _add_sound(p)
    p.add_argument("--force", action="store_true", help="overwrite existing output files")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="held-out likelihood and musical statistics of a run")
    p.add_argument("run_dir", type=Path, help="a run folder, or the shipped base")
    p.add_argument("--data", help="held-out SOURCE (default: the run's validation split)")
    p.add_argument("--samples", type=int, default=8, help="pieces to generate and compare (default: 8)")
    p.add_argument("--bars", type=int, default=32, help="length of the generated pieces, and of the compared "
                   "excerpts (a performance run: windows of 4 s; default: 32)")
    p.add_argument("--max-pieces", type=int, default=200, help="held-out pieces to read at most (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated pieces (default: 0)")
    p.add_argument("--out", type=Path, help="folder for the report (default: the run folder; ./base-report for base)")
    p.add_argument("--quiet", action="store_true", help="log lines instead of progress bars")
    p.add_argument("--force", action="store_true", help="overwrite an existing report (report.md, report.json, "
                   "its figures)")


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="a piece from the shipped base, then fine-tune it on the bach chorales "
                       "and write another")
    p.add_argument("--run-dir", type=Path, default=Path("runs/demo"),
                   help="where the fine-tuned run is written (default: runs/demo)")
    p.add_argument("--output", type=Path, help="the fine-tuned piece (default: RUN_DIR/demo.mid)")
    p.add_argument("--force", action="store_true",
                   help="overwrite existing output files (both pieces, their pictures and audio)")


def _add_studio(sub) -> None:
    p = sub.add_parser("studio", help="a local web app: generate, see, listen, pick, train")
    p.add_argument("--runs", type=Path, default=Path("runs"), help="the folder of run folders to offer (default: runs)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: this machine only; any other address requires the "
                        "printed token on every request)")
    p.add_argument("--corpora", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder whose MIDI folders the page may train on (repeat for more; default: none, "
                        "only uploads and bach)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default: 8765)")
    p.add_argument("--no-browser", action="store_true", help="do not open the page in a browser")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other cadenza error (exit code 2); a mistyped
    flag names the closest one of its command."""

    argv: list[str] | None = None  # the command line parsed (None: sys.argv), to name the command

    def error(self, message):
        command = _command_parser(self)
        hint = _did_you_mean(command, message)
        self.exit(2, printable(f"cadenza: error: {message}{hint} (see {command.prog} --help)") + "\n")


def _command_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The parser of the command on the command line (argparse reports unknown flags from the
    top parser), else ``parser`` itself."""
    commands = next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})
    argv = sys.argv[1:] if getattr(parser, "argv", None) is None else parser.argv
    return commands.get(next((w for w in argv if w in commands), None), parser)


def _did_you_mean(command: argparse.ArgumentParser, message: str) -> str:
    """``; did you mean --length?`` for the first unrecognised flag close to one of
    ``command``'s own."""
    import difflib

    if not message.startswith("unrecognized arguments:"):
        return ""
    flags = [o for o in command._option_string_actions if o.startswith("--")]
    for word in message.split(":", 1)[1].split():
        close = difflib.get_close_matches(word.split("=", 1)[0], flags, n=1, cutoff=0.6) if word.startswith("--") else []
        if close:
            return f"; did you mean {close[0]}?"
    return ""


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="cadenza", description="Train a neural composer on MIDI files and write new piano "
                     "music. Each command's --help lists its flags and their defaults.")
    parser.argv = argv
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_generate, _add_infill, _add_accompany, _add_render, _add_evaluate, _add_demo, _add_studio):
        add(sub)
    return parser


def cmd_train(args) -> int:
    from .config import Config, preset
    from .rundir import parse_model_options
    from .training.trainer import train

    given = dict(epochs=args.epochs, seq_len=args.seq_len, batch_size=args.batch_size, lr=args.lr,
                 val_fraction=args.val_fraction, transpose=args.transpose, tempo_stretch=args.tempo_stretch,
                 infill=args.infill, controls=args.controls, lookahead=args.lookahead,
                 max_minutes=args.max_minutes, checkpoint_minutes=args.checkpoint_minutes,
                 steps_per_epoch=args.steps_per_epoch, seed=args.seed, compile=args.compile, threads=args.threads,
                 patience=args.patience, dropout=args.dropout, ema=args.ema)  # --patience 0: off
    overrides = {k: v for k, v in given.items() if v is not None}  # flags not given keep the preset's value
    if args.model_option:
        overrides["model_option"] = parse_model_options(args.model_option)  # checked once the model is known
    if args.max_minutes == 0:
        overrides["max_minutes"] = None  # --max-minutes 0: no budget
    config = None
    if args.start_from is not None:
        clash = [flag for flag, v in (("--preset", args.preset), ("--representation", args.representation),
                                      ("--vocab-size", args.vocab_size),
                                      ("--resume", args.resume or None)) if v is not None]
        if clash:
            raise CadenzaError(f"--from takes the model and tokenizer of {args.start_from}; drop {', '.join(clash)}")
        if args.model:  # a model that grows from the starting one (models/lstm_memory.py)
            overrides["model"] = args.model
    elif not args.resume:
        config = preset(args.preset or "base",
                        **({"representation": args.representation} if args.representation else {}))
        if args.vocab_size:
            config = config.replace(representation_options={**config.representation_options, "vocab_size": args.vocab_size})
        if args.model:  # the preset's model options that the chosen model takes (the cache is the LSTMs')
            from .models import declared_options

            takes = declared_options(args.model)
            config = config.replace(model=args.model,
                                    model_options={k: v for k, v in config.model_options.items() if k in takes})
    result = train(args.source, args.run_dir, config, resume=args.resume, overrides=overrides,
                   quiet=args.quiet, workers=args.workers, device=args.device, start_from=args.start_from)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return 0
    _say(f"run: {result.run_dir}  epochs: {result.epochs_done}  best loss: {result.best_loss:.4f} "
         f"(epoch {result.best_epoch})  stopped: {result.stopped}")
    start = Config.load(result.run_dir / "config.json").init_from
    if start:
        _say(f"fine-tuned from: {start} (its config.json keeps this as init_from)")
    _say(f"weights: {result.run_dir / 'best.safetensors'}")
    _say(f"loss plot: {result.run_dir / 'loss.png'}")
    return 130 if result.stopped == "interrupted" else 0


def _say(line: str) -> None:
    """A line of the command's report, the paths it names escaped (see :func:`printable`)."""
    print(printable(line))


def _render_formats(text: str) -> set[str]:
    formats = {f.strip().lower() for f in text.split(",") if f.strip()}
    unknown = formats - {"png", "wav"}
    if unknown:
        raise CadenzaError(f"--render takes png and/or wav, not {', '.join(sorted(unknown))}")
    return formats


def cmd_generate(args) -> int:
    from .files import check_outputs, write_bytes_atomic
    from .generation.generate import generate, output_paths, to_scores
    from .rundir import load_run
    from .generation.steer import Steer
    from .validate import config_specs

    formats = _render_formats(args.render)
    paths = output_paths(args.output, args.num)
    if args.threads is not None:
        config_specs()["threads"].check("threads", args.threads)  # the rule a training's --threads meets
        import torch

        torch.set_num_threads(args.threads)
    sampling = _sampling(args)
    steer = Steer(key=args.key, tempo=args.tempo, density=args.density)
    if args.primer is not None and not args.primer.is_file():
        raise CadenzaError(f"primer not found: {args.primer}")
    if args.primer_bars is not None and args.primer is None:
        raise CadenzaError("--primer-bars needs --primer FILE.mid")
    check_outputs(paths + [p.with_suffix(f".{f}") for p in paths for f in sorted(formats)], args.force,
                  [args.primer] if args.primer is not None else [])  # before any work
    run = load_run(args.run_dir)
    result = generate(run, num=args.num, length=args.length, unit=args.unit, sampling=sampling, seed=args.seed,
                      primer=args.primer, constrained=not args.no_constraints, primer_bars=args.primer_bars,
                      quiet=args.quiet, form=args.form, section_bars=args.section_bars, steer=steer)
    scores = to_scores(run, result, args.continuation_only)
    axis = "seconds" if run.representation.name == "performance" else "auto"
    for k, (path, score, new, origin) in enumerate(zip(paths, scores, result.new, result.tempo_origins)):
        # as bytes: symusic's dump_midi writes an empty file on a full disk and says nothing
        write_bytes_atomic(path, score.dumps_midi(), overwrite=args.force)
        tempo = "" if not len(score.tempos) else f", tempo {score.tempos[0].qpm:.0f} bpm ({origin})" \
            if steer.tempo is None else f", tempo {score.tempos[-1].qpm:g} bpm ({origin})"
        key = f", key {result.keys[k]} by the key estimate" if result.keys else ""
        _say(f"wrote {path} ({len(new)} new tokens, {score.note_num()} notes{tempo}{key})")
        if formats:
            from .render import render_outputs

            for kind, out in render_outputs(path, formats, args.soundfont, args.synth, overwrite=args.force,
                                            axis=axis).items():
                _say(f"  {kind}: {out}")
    if args.verbose:
        print(f"grammar-masked probability mass per step: {result.masked_mass:.4%}")
    return 0


def _candidate_paths(args, source: Path) -> list[Path]:
    """Where infill's and accompany's candidates go, checked before any work."""
    from .files import check_outputs
    from .generation.generate import output_paths

    if args.num < 1:
        raise CadenzaError("--num must be >= 1")
    paths = output_paths(args.output, args.num)
    if not source.is_file():
        raise CadenzaError(f"no such MIDI file: {source}")
    check_outputs(paths, args.force, [source])
    return paths


def _write_candidates(args, paths: list[Path], scores, what: str) -> None:
    from .files import write_bytes_atomic

    for path, score in zip(paths, scores):
        write_bytes_atomic(path, score.dumps_midi(), overwrite=args.force)
        _say(f"wrote {path} ({what}; {score.note_num()} notes)")


def _sampling(args):
    from .generation.sampling import Sampling

    return Sampling(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p)


def cmd_infill(args) -> int:
    from .generation.infill import infill, parse_bars
    from .rundir import load_run

    bars = parse_bars(args.bars)
    paths = _candidate_paths(args, args.piece)
    result = infill(load_run(args.run_dir), args.piece, bars, num=args.num, sampling=_sampling(args), seed=args.seed,
                    quiet=args.quiet)
    _write_candidates(args, paths, result.scores, f"bars {result.first}-{result.last} regenerated")
    return 0


def cmd_accompany(args) -> int:
    from .generation.accompany import accompany
    from .rundir import load_run

    paths = _candidate_paths(args, args.melody)
    result = accompany(load_run(args.run_dir), args.melody, num=args.num, melody_track=args.melody_track,
                       sampling=_sampling(args), seed=args.seed, quiet=args.quiet)
    _write_candidates(args, paths, result.scores, f"{result.bars} bars: the melody and an accompaniment")
    return 0


def cmd_render(args) -> int:
    from .files import check_outputs
    from .render import render_pianoroll, render_wav

    if not args.png and not args.wav:
        raise CadenzaError("say what to render: --png OUT.png and/or --wav OUT.wav")
    if not args.midi.is_file():
        raise CadenzaError(f"no such MIDI file: {args.midi}")
    outputs = [out for out in (args.png, args.wav) if out is not None]
    for out in outputs:
        if not out.parent.exists() and str(out.parent) not in ("", "."):
            raise CadenzaError(f"output folder {out.parent} does not exist")
    if args.png == args.wav:
        raise CadenzaError("--png and --wav name the same file")
    check_outputs(outputs, args.force, [args.midi])
    if args.png:
        _say(f"wrote {render_pianoroll(args.midi, args.png, overwrite=args.force)}")
    if args.wav:
        _say(f"wrote {render_wav(args.midi, args.wav, soundfont=args.soundfont, synth=args.synth, overwrite=args.force)}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate.run import evaluate_run

    paths = evaluate_run(args.run_dir, data=args.data, samples=args.samples, seed=args.seed,
                         max_pieces=args.max_pieces, bars=args.bars, quiet=args.quiet, out_dir=args.out,
                         force=args.force)
    for path in paths:
        _say(f"wrote {path}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.run_dir, args.output, force=args.force)
    return 0


def cmd_studio(args) -> int:
    from .studio import serve

    if not 0 < args.port < 65536:
        raise CadenzaError(f"--port must be from 1 to 65535, got {args.port}")
    for folder in args.corpora:
        if not folder.is_dir():
            raise CadenzaError(f"--corpora {folder}: no such folder")
    serve(args.runs, args.host, args.port, open_browser=not args.no_browser, corpora=args.corpora)
    return 0


# What each command imports (torch and the rest) while the start-up Ctrl-C guard still holds
COMMAND_MODULES = {"train": ".training.trainer", "generate": ".generation.generate", "infill": ".generation.infill",
                   "accompany": ".generation.accompany", "render": ".render", "evaluate": ".evaluate.run", "demo": ".demo", "studio": ".studio"}
COMMANDS = {"train": cmd_train, "generate": cmd_generate, "infill": cmd_infill, "accompany": cmd_accompany,
            "render": cmd_render,
            "evaluate": cmd_evaluate, "demo": cmd_demo, "studio": cmd_studio}


def _said(exc: CadenzaError, args) -> str:
    """The error's line; a value from the command line that its spec refused is named by its
    flag (``--top-p must be a number in (0, 1], not 1.5``), a value from a file by the file."""
    from .spec import SpecError

    if isinstance(exc, SpecError) and exc.where is None and hasattr(args, exc.field):
        return exc.said(f"--{exc.field.replace('_', '-')}", null=False)
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` names: its exit code (2: a usage or data error, 130: Ctrl-C)."""
    args = None
    try:
        args = build_parser(argv).parse_args(argv)  # imports nothing heavy: --help answers at once
        importlib.import_module(COMMAND_MODULES[args.command], __package__)  # torch: a Ctrl-C here is one line too
        startup.release()  # from here Ctrl-C is a KeyboardInterrupt, which a training saves its state on
        return COMMANDS[args.command](args)
    except CadenzaError as exc:
        print(printable(f"cadenza: error: {_said(exc, args)}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cadenza: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("cadenza: error: out of memory", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that cannot be written: read-only, /proc, disk full ...
        from .files import os_error_line

        print(printable(f"cadenza: error: {os_error_line(exc)}"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
