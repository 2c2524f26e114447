"""How long the ``cadenza`` command takes to answer ``--help`` and a mistyped flag.

    python benchmarks/cli_speed.py [--repeat 5]

Each case runs ``python -m cadenza ...`` in a fresh process ``--repeat`` times and prints
the median and the slowest wall-clock second, and whether torch was loaded (the goal: both
within 1 s, neither importing torch; the training and generating commands import it).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {"cadenza --help": ["--help"],
         "cadenza generate --help": ["generate", "--help"],
         "cadenza generate --lenght 3": ["generate", "base", "-o", "x.mid", "--lenght", "3"]}
PROBE = "import runpy, sys; sys.argv = ['cadenza', *sys.argv[1:]]\n" \
        "try:\n    runpy.run_module('cadenza', run_name='__main__')\n" \
        "finally:\n    print('torch loaded' if 'torch' in sys.modules else 'no torch', file=sys.stderr)"


def one(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    return seconds, done.stderr.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="fresh processes per case (default: 5)")
    args = ap.parse_args()
    print("| command | median s | slowest s | torch |\n|---|---|---|---|")
    for name, argv in CASES.items():
        runs = [one(argv) for _ in range(args.repeat)]
        times = [t for t, _ in runs]
        print(f"| `{name}` | {statistics.median(times):.2f} | {max(times):.2f} | {runs[-1][1]} |")


if __name__ == "__main__":
    main()
