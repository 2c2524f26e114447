"""How much of a piece a model uses: NLL with the whole piece, 32 tokens, or nothing before.

    python benchmarks/context.py [--run base] [--pieces 32] [--workdir runs/context] [--out FILE.md]
        [--pop909 test|val|own]

For each held-out folder, the positions of ``cadenza.evaluate.context`` (1,024-2,048, or the
second half of a shorter piece; 256 evenly spaced a piece) of up to ``--pieces`` pieces are
scored with the whole piece before them (full), only the 32 tokens before each (short), and
the span read from a fresh state (none); gain = (short - full) / short. For scale, the exact
copy share: the share of those positions whose 8 preceding tokens occur earlier in the piece
followed by the same token.

Held-out folders, never trained on by the base: the 40 POP909 test songs of
``benchmarks/structure.py``'s seeded split (a run folder other than a shipped model: its own
validation split instead), and ``PIANO_MIDI_HELD_OUT`` pieces of ``../shared/data/piano-midi``
(:func:`piano_midi_split`): its test pieces, linked in ``WORKDIR/piano-midi-held-out``, or with
``--pop909 val`` its validation pieces (``WORKDIR/piano-midi-val``); a base trained on
piano-midi.de leaves both out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from cadenza.evaluate.context import context_use, copy_share, span
from cadenza.evaluate.run import heldout_pieces
from cadenza.files import write_bytes_atomic
from cadenza.pretrained import is_shipped, resolve_run
from cadenza.rundir import load_run, parse_model_options, with_model_options
from structure import DEFAULT_DATA as POP909, link_files, split_songs

ROOT = Path(__file__).resolve().parents[1]

PIANO_MIDI = ROOT.parent / "shared" / "data" / "piano-midi"
PIANO_MIDI_HELD_OUT = 40


def piano_midi_split() -> dict[str, list[Path]]:
    """piano-midi.de pieces by role: a seeded permutation (numpy ``default_rng(0)``) of the
    sorted files; its first ``PIANO_MIDI_HELD_OUT`` are test pieces, the next as many are
    validation pieces (settings are chosen on them), the rest may be trained on."""
    files = sorted(PIANO_MIDI.glob("midis/*/*.mid"))
    if not files:
        sys.exit(f"no piano-midi.de pieces under {PIANO_MIDI}")
    order = [files[i] for i in np.random.default_rng(0).permutation(len(files))]
    n = PIANO_MIDI_HELD_OUT
    return {"test": order[:n], "val": order[n:2 * n], "train": order[2 * n:]}


def piano_midi_held_out(workdir: Path, part: str = "test") -> Path:
    """The held-out piano-midi.de pieces of ``part`` (test or val), linked into one folder
    (composer in the name)."""
    name = "piano-midi-held-out" if part == "test" else f"piano-midi-{part}"
    return link_files(workdir / name, {f"{f.parent.name}-{f.name}": f for f in piano_midi_split()[part]})


def pop909_held_out(run, workdir: Path, which: str | None = None) -> str | None:
    """POP909 songs the run never trained on: ``test`` (the 40 test songs), ``val`` (the POP909
    validation songs of the base's chain, for choosing between runs that continue the base),
    ``own`` (None: the run's validation split); by default a shipped model's test songs, else
    the run's own split."""
    which = which or ("test" if is_shipped(run.directory) else "own")
    if which == "own":
        return None
    train, test = split_songs(POP909, workdir, quick=False)
    if which == "test":
        return str(test)
    sys.path.insert(0, str(ROOT / "scripts"))
    from build_base import pop909_val

    return str(pop909_val(run, workdir))


def measure(run, data: str | None, pieces: int) -> dict:
    """Context use and exact-copy share over the first ``pieces`` long-enough held-out pieces."""
    ids = [i for i, _, _ in heldout_pieces(run, data, None, quiet=True)]
    use = context_use(run.model, ids, run.config.seq_len, max_pieces=pieces)
    if use is None:
        sys.exit(f"no held-out piece in {data or 'the validation split'} is long enough, or {run.directory} "
                 "reads fixed windows")
    spans = [(i, span(len(i), getattr(run.model, "max_len", None))) for i in ids]
    spans = [(i, s) for i, s in spans if s is not None][:pieces]
    copied = sum(copy_share(i, *s) * (s[1] - s[0]) for i, s in spans) / sum(s[1] - s[0] for _, s in spans)
    return use | {"copy_share": copied}


def table(rows: dict[str, dict], title: str) -> str:
    lines = [f"Context use of {title}: NLL per token (nats) of positions 1,024-2,048 (a shorter piece: "
             "its second half; 256 evenly spaced a piece).", "",
             "| held-out pieces | pieces (halves) | positions | full | 32 tokens | none | gain | exact-copy share |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['pieces']} ({r['second_half_pieces']}) | {r['positions']} | {r['full']:.3f} | "
                     f"{r['short']:.3f} | {r['none']:.3f} | {100 * r['gain']:.1f}% | {100 * r['copy_share']:.1f}% |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="base", help="a run folder or shipped model (default: base)")
    parser.add_argument("--pieces", type=int, default=32, help="pieces scored per folder at most")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "context")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    parser.add_argument("--pop909", choices=("test", "val", "own"),
                        help="which POP909 songs: the 40 test songs, the base chain's validation songs, or the "
                             "run's own validation split (default: test for a shipped model, else own)")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a model option that holds no weights, VALUE as JSON (e.g. cache_window=2048); repeat")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    run = load_run(resolve_run(args.run))
    if args.option:
        run = with_model_options(run, **parse_model_options(args.option, run.config.model))
    which = args.pop909 or ("test" if is_shipped(run.directory) else "own")
    folders = {{"test": "POP909 test songs", "val": "POP909 validation songs", "own": "validation split"}[which]:
               pop909_held_out(run, args.workdir, which),
               f"piano-midi.de {'validation' if which == 'val' else 'test'} pieces ({PIANO_MIDI_HELD_OUT})":
               str(piano_midi_held_out(args.workdir, "val" if which == "val" else "test"))}
    rows = {name: measure(run, data, args.pieces) for name, data in folders.items()}
    text = table(rows, " ".join([args.run, *args.option]))
    print(text)
    if args.out:
        write_bytes_atomic(args.out, text.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
