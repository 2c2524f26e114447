"""Accompaniment under a given melody, against the real accompaniment, on held-out POP909 songs.

    python benchmarks/accompany.py --run base --songs test [--pieces 16] [--bars 16] [--workdir runs/accompany]

For each song: its first ``--bars`` bars, the MELODY track written alone to a file, and
``cadenza.accompany`` run on it (one candidate, seed = the song's number). Then:

- **melody kept**: the melody track of the output equals the file's, note for note;
- **chord support**: of the melody onsets that fall in a chord of POP909's annotation
  (``chord_midi.txt``; ``N`` and unknown labels left out), the share whose pitch class is in
  that chord and also sounds in the accompaniment at the onset (a note of that pitch class
  started at or before it and not yet ended); the same share for the song's real accompaniment
  (its BRIDGE and PIANO tracks); target: generated at least 0.9x the real one, summed over songs;
- **notes per bar**: accompaniment notes over the same bars, generated / real, median over
  songs (target 0.8-1.25).

``--songs val`` uses the POP909 validation songs of the base's chain (choices are made there);
``test`` the 40 test songs, looked at once.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from symusic import Score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from context import pop909_held_out  # noqa: E402

from cadenza import load_run  # noqa: E402
from cadenza.data.bars import bar_lines  # noqa: E402
from cadenza.generation.accompany import accompany  # noqa: E402

TARGETS = {"support": 0.9, "notes": (0.8, 1.25)}
MELODY = "MELODY"
# Harte chord qualities in POP909's annotations, as pitch classes above the root
QUALITIES = {"maj": (0, 4, 7), "min": (0, 3, 7), "sus2": (0, 2, 7), "sus4": (0, 5, 7), "dim": (0, 3, 6),
             "aug": (0, 4, 8), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10),
             "hdim7": (0, 3, 6, 10), "dim7": (0, 3, 6, 9), "minmaj7": (0, 3, 7, 11), "maj6": (0, 4, 7, 9),
             "min6": (0, 3, 7, 9), "sus4(b7)": (0, 5, 7, 10), "9": (0, 2, 4, 7, 10), "maj9": (0, 2, 4, 7, 11),
             "min9": (0, 2, 3, 7, 10)}
ROOTS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def chord_classes(label: str) -> frozenset[int] | None:
    """The pitch classes of a Harte label such as ``Bb:maj7/3`` (None: ``N`` or unknown)."""
    root, _, quality = label.partition(":")
    quality = quality.split("/")[0]
    if root[:1] not in ROOTS or quality not in QUALITIES:
        return None
    base = ROOTS[root[0]] + root[1:].count("#") - root[1:].count("b")
    return frozenset((base + i) % 12 for i in QUALITIES[quality])


def read_chords(path: Path) -> list[tuple[float, float, frozenset[int] | None]]:
    rows = []
    for line in path.read_text().splitlines():
        start, end, label = line.split("\t")[:3]
        rows.append((float(start), float(end), chord_classes(label.strip())))
    return rows


def _seconds(score: Score, ticks: np.ndarray) -> np.ndarray:
    """Seconds of each tick under ``score``'s tempo map."""
    changes = sorted((int(t.time), t.mspq) for t in score.tempos) or [(0, 500000)]
    if changes[0][0] > 0:
        changes = [(0, 500000)] + changes
    starts = np.array([c[0] for c in changes])
    spq = np.array([c[1] / 1e6 for c in changes])
    elapsed = np.concatenate([[0.0], np.cumsum(np.diff(starts) * spq[:-1] / score.tpq)])
    k = np.searchsorted(starts, ticks, side="right") - 1
    return elapsed[k] + (ticks - starts[k]) * spq[k] / score.tpq


def support(score: Score, melody: np.ndarray, parts: list[np.ndarray], chords) -> tuple[int, int]:
    """(melody onsets supported, melody onsets in a known chord): see the module's docstring."""
    acc = {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, int)
           for k in ("time", "duration", "pitch")}
    seconds = _seconds(score, melody["time"].astype(np.int64))
    tolerance = score.tpq // 8
    supported = counted = 0
    for onset, tick, pitch in zip(seconds, melody["time"], melody["pitch"]):
        found = [c for s, e, c in chords if s <= onset < e]
        if not found or found[0] is None:
            continue
        counted += 1
        # started by a 32nd note after the onset at the latest: the output is on the tokens' grid,
        # the melody as played (POP909's timing is the performance's)
        sounding = (acc["time"] <= tick + tolerance) & (acc["time"] + acc["duration"] > tick) \
            & (acc["pitch"] % 12 == pitch % 12)
        supported += int(pitch % 12 in found[0] and sounding.any())
    return supported, counted


def excerpt_of(score: Score, bars: int) -> tuple[Score, int]:
    """``bars`` bars from the bar of the first melody note (songs open with an intro), moved to
    tick 0, and the tick they start at."""
    melody = [t for t in score.tracks if t.name == MELODY][0].notes.numpy()
    lines = bar_lines(score, score.end() + 1)
    first = int(np.searchsorted(lines, int(melody["time"].min()), side="right")) - 1
    lines = bar_lines(score, score.end() + 1, min_bars=first + bars + 1)
    start, end = int(lines[first]), int(lines[first + bars])
    return score.clip(start, end, clip_end=True).shift_time(-start), start


def measure_song(run, song: Path, bars: int, workdir: Path) -> dict:
    score = Score(str(song))
    excerpt, start = excerpt_of(score, bars)
    tracks = {t.name: t for t in excerpt.tracks}
    melody_file = workdir / f"melody-{song.stem}.mid"
    alone = excerpt.copy()
    alone.tracks = [tracks[MELODY].copy()]
    alone.dump_midi(str(melody_file))
    began = time.perf_counter()
    result = accompany(run, melody_file, seed=int(song.stem), quiet=True)
    wall = time.perf_counter() - began
    out = result.scores[0]
    out.dump_midi(str(workdir / f"accompanied-{song.stem}.mid"))
    kept, generated = out.tracks[0].notes.numpy(), out.tracks[1].notes.numpy()
    original = tracks[MELODY].notes.numpy()
    same = all(np.array_equal(kept[k], original[k]) for k in ("time", "duration", "pitch", "velocity"))
    # beside the song (held-out folders link it), in seconds of the whole song
    offset = float(_seconds(score, np.array([start]))[0])
    chords = [(s - offset, e - offset, c) for s, e, c in read_chords(song.resolve().parent / "chord_midi.txt")]
    real = [t.notes.numpy() for name, t in tracks.items() if name != MELODY]
    gen_support, counted = support(excerpt, original, [generated], chords)
    real_support, _ = support(excerpt, original, real, chords)
    real_notes = sum(len(p["time"]) for p in real)
    return {"song": song.stem, "melody_kept": same, "onsets": counted, "generated_support": gen_support,
            "real_support": real_support, "generated_notes": int(len(generated["time"])), "real_notes": real_notes,
            "bars": result.bars, "wall_s": wall, "warnings": result.warnings}


def summary(rows: list[dict]) -> dict:
    onsets = sum(r["onsets"] for r in rows)
    gen, real = sum(r["generated_support"] for r in rows) / onsets, sum(r["real_support"] for r in rows) / onsets
    ratios = [r["generated_notes"] / r["real_notes"] for r in rows if r["real_notes"]]
    return {"songs": len(rows), "melody_kept": sum(r["melody_kept"] for r in rows), "support_generated": gen,
            "support_real": real, "support_ratio": gen / real if real else float("nan"),
            "notes_ratio_median": float(np.median(ratios)), "notes_ratio_in_range": sum(
                TARGETS["notes"][0] <= x <= TARGETS["notes"][1] for x in ratios),
            "wall_s_median": float(np.median([r["wall_s"] for r in rows]))}


def table(s: dict, label: str) -> str:
    lo, hi = TARGETS["notes"]
    return "\n".join([
        "| songs | melody kept | chord support, generated / real | ratio (>= 0.9) | notes per bar, "
        f"median ratio ({lo}-{hi}) | songs in range | wall s per song (median) |",
        "|---|---|---|---|---|---|---|",
        f"| {label}: {s['songs']} | {s['melody_kept']}/{s['songs']} | {s['support_generated']:.3f} / "
        f"{s['support_real']:.3f} | {s['support_ratio']:.2f} | {s['notes_ratio_median']:.2f} | "
        f"{s['notes_ratio_in_range']}/{s['songs']} | {s['wall_s_median']:.1f} |"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="base")
    ap.add_argument("--songs", choices=("test", "val"), default="val")
    ap.add_argument("--pieces", type=int, default=16, help="songs measured")
    ap.add_argument("--bars", type=int, default=16)
    ap.add_argument("--workdir", type=Path, default=Path("runs/accompany"))
    args = ap.parse_args(argv)
    run = load_run(args.run)
    args.workdir.mkdir(parents=True, exist_ok=True)
    folder = Path(pop909_held_out(run, args.workdir, args.songs))
    songs = sorted(folder.glob("*.mid"))[:args.pieces]
    rows = []
    for n, song in enumerate(songs, 1):
        rows.append(measure_song(run, song, args.bars, args.workdir))
        r = rows[-1]
        print(f"[{n}/{len(songs)}] {r['song']}: support {r['generated_support']}/{r['onsets']} "
              f"(real {r['real_support']}), notes {r['generated_notes']} vs {r['real_notes']}, "
              f"{r['wall_s']:.1f} s", flush=True)
    s = summary(rows)
    (args.workdir / f"accompany-{args.songs}.json").write_text(json.dumps({"summary": s, "songs": rows}, indent=1))
    print(table(s, f"POP909 {args.songs}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
