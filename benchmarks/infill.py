"""Infill on held-out POP909 songs (issue 26): does a run trained with --infill use the music
after a span, and does what it writes meet that music?

Each held-out song gives a 16-bar excerpt (its bars 9-24, past most intros, as the tokens hold
them); bars 9-12 of the excerpt are the span. Measured:

- the NLL per token of the real span's tokens given prefix and suffix (the infill prompt) and
  given the prefix alone (what generate continues); the first should be at least 5 % lower;
- ``--samples`` candidates per excerpt from ``cadenza.generation.infill``: whether every note outside the
  span is unchanged, and, at the span's end, the interval (beats) from the last onset in the
  span to the suffix's first onset, against the real span's (histogram overlap on quarter-beat
  bins, 0-8 beats and beyond; target at least 0.8); empty spans are counted apart.

    python benchmarks/infill.py --run runs/infill/ft              # the 40 test songs
    python benchmarks/infill.py --run runs/infill/ft --songs own  # the run's validation split

The test songs are benchmarks/context.py's (structure.split_songs); choose settings on the
run's own validation songs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from cadenza.data.bars import bar_tick, bars_before, cut
from cadenza.data.corpus import read_piano_score
from cadenza.evaluate.nll import token_nlls
from cadenza.evaluate.run import heldout_pieces
from cadenza.files import write_bytes_atomic
from cadenza.data.fim import check_infill_run
from cadenza.generation.generate import Primer, _primer_context, _score_from
from cadenza.generation.infill import infill, infill_prompt
from cadenza.rundir import load_run
from cadenza.data.token_stats import TokenKinds
from structure import DEFAULT_DATA as POP909, split_songs

ROOT = Path(__file__).resolve().parents[1]
SKIP, BARS, FIRST, LAST = 8, 16, 9, 12   # excerpt: bars 9-24 of a song; span: its bars 9-12
BINS = np.append(np.arange(0, 8.25, 0.25), np.inf)


def excerpts(run, data: str | None, folder: Path, limit: int) -> list[Path]:
    """16-bar excerpts of the held-out songs (``data``; None: the run's validation split), as files."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k, (_, _, score) in enumerate(heldout_pieces(run, data, quiet=True)):
        if bars_before(score, score.end()) < SKIP + BARS + 1 or len(out) == limit:
            continue
        piece = _score_from(cut(score, bar_tick(score, SKIP + BARS)), bar_tick(score, SKIP))
        path = folder / f"{k:03d}.mid"
        write_bytes_atomic(path, piece.dumps_midi())
        out.append(path)
    return out


def _nll(model, prompt: np.ndarray, target: np.ndarray) -> float:
    x = torch.as_tensor(np.concatenate([prompt, target]).astype(np.int64))
    return token_nlls(model, x, len(x), carry=True)[-len(target):].sum().item()


def span_nlls(run, path: Path, suffix_tokens: int | None = None) -> tuple[float, float, int]:
    """Summed NLL of the real span's tokens given prefix and suffix, given the prefix alone; their count."""
    kinds, marks, piece = TokenKinds(run.representation), check_infill_run(run), read_piano_score(path)
    start, end = bar_tick(piece, FIRST - 1), bar_tick(piece, LAST)
    middle = run.representation.encode(_score_from(cut(piece, end), start))  # from the span's Bar token
    both = infill_prompt(run, kinds, piece, FIRST, start, end, marks, suffix_tokens)[:-1]
    prefix = _primer_context(run, kinds, Primer(cut(piece, start), FIRST - 1))[0][:-1]
    return _nll(run.model, both, middle), _nll(run.model, prefix, middle), len(middle)


def _onsets(score, lo: int, hi: int) -> np.ndarray:
    times = np.concatenate([t.notes.numpy()["time"] for t in score.tracks]) if score.tracks else np.zeros(0)
    return np.sort(times[(times >= lo) & (times < hi)])


def end_gap(score, start: int, end: int) -> float | None:
    """Beats from the last onset in [start, end) to the first at or after ``end`` (None: the span
    or what follows it holds none)."""
    inside, after = _onsets(score, start, end), _onsets(score, end, 1 << 62)
    return None if not len(inside) or not len(after) else float(after[0] - inside[-1]) / score.tpq


def overlap(a: list[float], b: list[float]) -> float:
    p, q = (np.histogram(np.minimum(x, 1e9), BINS)[0] / max(1, len(x)) for x in (a, b))
    return float(np.minimum(p, q).sum())


def _notes_outside(score, start: int, end: int) -> list:
    notes = score.tracks[0].notes
    return sorted((n.time, n.duration, n.pitch, n.velocity) for n in notes if not start <= n.time < end)


def choose_suffix(run, paths: list[Path], choices: list[int]) -> str:
    """The NLL gain of each suffix length (tokens read after the span), to choose the default on
    validation songs."""
    lines = ["| suffix tokens | NLL infill | NLL prefix only | gain |", "|---|---|---|---|"]
    for tokens in choices:
        a, b, n = np.sum([span_nlls(run, p, tokens) for p in paths], axis=0)
        lines.append(f"| {tokens} | {a / n:.3f} | {b / n:.3f} | {100 * (1 - a / b):.1f}% |")
    return "\n".join(lines) + "\n"


def measure(run, paths: list[Path], samples: int, seed: int) -> dict:
    fim_sum = prefix_sum = count = 0.0
    real, made, kept, empty = [], [], 0, 0
    for k, path in enumerate(paths):
        a, b, n = span_nlls(run, path)
        fim_sum, prefix_sum, count = fim_sum + a, prefix_sum + b, count + n
        piece = read_piano_score(path)
        start, end = bar_tick(piece, FIRST - 1), bar_tick(piece, LAST)
        gap = end_gap(piece, start, end)
        if gap is not None:
            real.append(gap)
        result = infill(run, path, (FIRST, LAST), num=samples, seed=seed + k, quiet=True, log=lambda m: None)
        for score in result.scores:
            merged = read_piano_score(_written(score, path.with_suffix(".out.mid")))
            kept += _notes_outside(merged, start, end) == _notes_outside(piece, start, end)
            gap = end_gap(merged, start, end)
            empty += gap is None and len(_onsets(merged, start, end)) == 0
            if gap is not None:
                made.append(gap)
    return {"excerpts": len(paths), "tokens": int(count), "nll_fim": fim_sum / count, "nll_prefix": prefix_sum / count,
            "gain": 1 - fim_sum / prefix_sum, "candidates": len(paths) * samples, "kept": kept, "empty": empty,
            "overlap": overlap(made, real), "gap_real": float(np.median(real)), "gap_made": float(np.median(made))}


def _written(score, path: Path) -> Path:
    """The candidate as a file and read back: what a user gets."""
    write_bytes_atomic(path, score.dumps_midi())
    return path


def table(row: dict, title: str) -> str:
    return "\n".join([
        f"Infill of bars {FIRST}-{LAST} of 16-bar excerpts, {title}: NLL per token (nats) of the real span given "
        "prefix and suffix (infill) and given the prefix alone (continuation); candidates from cadenza.generation.infill.", "",
        "| excerpts (tokens) | NLL infill | NLL prefix only | gain | notes outside kept | empty spans | "
        "end-gap overlap | median end gap real / infilled (beats) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {row['excerpts']} ({row['tokens']:,}) | {row['nll_fim']:.3f} | {row['nll_prefix']:.3f} | "
        f"{100 * row['gain']:.1f}% | {row['kept']}/{row['candidates']} | {row['empty']} | {row['overlap']:.2f} | "
        f"{row['gap_real']:.2f} / {row['gap_made']:.2f} |"]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run trained with --infill")
    parser.add_argument("--songs", choices=("test", "own"), default="test",
                        help="the 40 POP909 test songs, or the run's own validation split (default: test)")
    parser.add_argument("--pieces", type=int, default=40, help="excerpts at most (default: 40)")
    parser.add_argument("--samples", type=int, default=2, help="candidates per excerpt (default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "infill")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    parser.add_argument("--choose-suffix", type=int, nargs="+", metavar="TOKENS",
                        help="only compare the NLL gain of these suffix lengths (choose on --songs own)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    run = load_run(args.run)
    data = str(split_songs(POP909, args.workdir, quick=False)[1]) if args.songs == "test" else None
    paths = excerpts(run, data, args.workdir / f"excerpts-{args.songs}", args.pieces)
    if args.choose_suffix:
        print(choose_suffix(run, paths, args.choose_suffix))
        return 0
    text = table(measure(run, paths, args.samples, args.seed), f"{len(paths)} POP909 {args.songs} songs")
    print(text)
    if args.out:
        write_bytes_atomic(args.out, text.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
