"""Steering to a key and a tempo, with the shipped base.

    python benchmarks/steer.py [--run base] [--asks C:major@96,A:minor@72,F#:major@120,Eb:minor@140]
        [--num 16] [--bars 16] [--seed 0] [--out FILE.md]

For each asked key and tempo: ``num`` pieces of ``bars`` bars generated with
``Steer(key, tempo)``; the share whose key estimate (music21's ``analyze('key')``) is the asked
key, the share whose every tempo event is the asked bpm (to the MIDI file's resolution), the
pieces drawn again for missing the key, the pieces left off key (written with a warning),
and the wall time beside plain generation of the same pieces (same seed, no steering).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cadenza import generate, load_run, to_scores
from cadenza.errors import CadenzaError
from cadenza.files import write_bytes_atomic
from cadenza.generation.steer import Steer, estimate_key


def _asks(text: str) -> list[Steer]:
    asks = []
    for item in text.split(","):
        key, _, tempo = item.partition("@")
        try:
            asks.append(Steer(key=key.strip(), tempo=float(tempo)))
        except (CadenzaError, ValueError) as exc:
            sys.exit(f"steer.py: error: --asks {item!r}: {exc}")
    return asks


def measure(run, steer: Steer, num: int, bars: int, seed: int) -> dict:
    """One row of the table."""
    quiet = dict(quiet=True, log=lambda line: None)
    started = time.perf_counter()
    plain = generate(run, num=num, length=bars, unit="bars", seed=seed, **quiet)
    to_scores(run, plain)
    plain_s = time.perf_counter() - started
    started = time.perf_counter()
    result = generate(run, num=num, length=bars, unit="bars", seed=seed, steer=steer, **quiet)
    scores = to_scores(run, result)
    steer_s = time.perf_counter() - started
    in_key = sum(steer.matches(estimate_key(s)) for s in scores)
    exact = sum(len(s.tempos) > 0 and all(round(t.qpm, 3) == steer.tempo for t in s.tempos) for s in scores)
    return {"ask": f"{steer.key} @ {steer.tempo:g} bpm", "key": in_key / num, "tempo": exact / num,
            "redraws": result.redraws, "off": sum("by the key estimate" in w for w in result.warnings),
            "plain_s": plain_s, "steer_s": steer_s}


def table(rows: list[dict], num: int, bars: int) -> str:
    lines = [f"{num} pieces of {bars} bars per ask",
             "",
             "| asked | key estimate = asked | tempo exact | redrawn pieces | left off key | "
             "plain s | steered s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['ask']} | {r['key']:.0%} | {r['tempo']:.0%} | {r['redraws']} | {r['off']} | "
              f"{r['plain_s']:.0f} | {r['steer_s']:.0f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="base")
    p.add_argument("--asks", default="C:major@96,A:minor@72,F#:major@120,Eb:minor@140")
    p.add_argument("--num", type=int, default=16)
    p.add_argument("--bars", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the table here (markdown)")
    args = p.parse_args()
    asks = _asks(args.asks)
    if args.num < 1 or args.bars < 1:
        sys.exit("steer.py: error: --num and --bars must be >= 1")
    run = load_run(args.run)
    rows = []
    for steer in asks:
        rows.append(measure(run, steer, args.num, args.bars, args.seed))
        print(table(rows[-1:], args.num, args.bars).splitlines()[-1], flush=True)
    text = table(rows, args.num, args.bars)
    print(text)
    if args.out:
        write_bytes_atomic(Path(args.out), text.encode())


if __name__ == "__main__":
    main()
