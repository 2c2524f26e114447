"""Do cadenza's seed tokens equal the notebook's on typeset two-hand piano files? Random ones.

    python benchmarks/seed_typeset.py [--files N] [--seed S] [--first K] [--out FILE.json]
        [--keep DIR]

Writes N small MIDI files (a fixed seed each: file k is the same on every run) in the style
of typeset piano arrangements: both hands in one track, chords whose notes start a little
apart or end apart, notes of one pitch overlapping, notes held past the next chord or across
barlines, grace notes, the left hand on a channel of its own, several ticks-per-quarter, tempo and time-signature changes, and the
note-on and note-off events of one tick in the orders different programs write them. Each
file is read by the notebook's music21 loop (benchmarks/seed_agreement.py) and by cadenza's
seed representation as ``cadenza prepare`` reads it; prints how many differ and, for each,
the first differing position. ``--keep``: also copy the files that differ there.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import mido

from seed_agreement import cadenza_tokens, first_difference, notebook_loop

from cadenza.files import write_bytes_atomic

TPQS = (96, 100, 120, 192, 240, 384, 480, 960, 1000, 1024)
METERS = ((4, 4), (3, 4), (2, 4), (6, 8), (2, 2), (5, 4), (12, 8), (7, 8), (3, 8), (9, 8))


def _grid(rng: random.Random, tpq: int) -> int:
    """A typeset note value in ticks: sixteenth to half note, triplets sometimes."""
    q = rng.choice([tpq // 4, tpq // 2, tpq // 2, tpq, tpq, 2 * tpq])
    return round(q * 2 / 3) if rng.random() < 0.15 else q


def _hand(rng: random.Random, tpq: int, end: int, low: int, high: int, chordy: float) -> list[list[int]]:
    """One hand's notes [on, off, pitch, velocity]: values on a grid, with the offsets,
    overlaps and ornaments typeset files have."""
    notes, t = [], 0
    while t < end:
        step = _grid(rng, tpq)
        size = rng.choice([2, 3, 3, 4]) if rng.random() < chordy else 1
        pitches = rng.sample(range(low, high), size)
        spread = rng.choice([0, 0, 0, 1, 2, 5, tpq // 24, tpq // 12, tpq // 6])  # rolled chords
        for k, p in enumerate(pitches):
            on = t + (k * spread if rng.random() < 0.5 else rng.randint(0, spread))
            length = step
            r = rng.random()
            if r < 0.25:
                length = round(step * rng.choice([0.5, 0.8, 0.9, 0.95]))  # detached
            elif r < 0.4:
                length = step + rng.choice([1, 5, tpq // 16, tpq // 8, tpq // 3, tpq])  # held over
            elif r < 0.5:
                length = step * rng.choice([2, 3, 4, 6])  # held across the next ones, barlines
            elif r < 0.55:
                length = rng.choice([0, 1, 2])  # a blip (zero: a grace note to music21)
            notes.append([on, on + max(length, 0), p, rng.choice([60, 80, 100])])
        if rng.random() < 0.08:  # a grace note just before the beat
            g = rng.choice([1, 5, tpq // 16, tpq // 8])
            notes.append([max(t - g, 0), t + rng.choice([0, 0, 1, g // 2]), rng.randrange(low, high), 70])
        if rng.random() < 0.06 and notes:  # the same key struck again before it is released
            o, f, p, v = notes[-1]
            again = o + rng.choice([1, tpq // 8, tpq // 4, step // 2 or 1])
            notes.append([again, again + step, p, v])
        t += step
    return notes


def _meter_changes(rng: random.Random, tpq: int, end: int) -> list[tuple[int, int, int]]:
    """(tick, numerator, denominator): one at 0 (or none), then a few, mostly on barlines."""
    if rng.random() < 0.15:
        return []
    num, den = rng.choice(METERS)
    out, t = [(0, num, den)], 0
    while rng.random() < 0.4:
        t += num * 4 * tpq // den * rng.randint(1, 4)
        if rng.random() < 0.2:
            t += rng.choice([tpq // 2, tpq, tpq // 3])  # inside a measure
        if t >= end:
            break
        num, den = rng.choice(METERS)
        out.append((t, num, den))
    return out


def spec(k: int, seed: int) -> dict:
    """File ``k`` of the search started with ``seed``, as data: ticks per quarter, notes
    (on, off, pitch, velocity, rank of the note-on and of the note-off among the events
    of their tick, channel), tempos, time signatures, note-offs as note-ons of velocity 0, format."""
    rng = random.Random(f"{seed}:{k}")
    tpq = rng.choice(TPQS)
    end = tpq * rng.randint(6, 28)
    left_channel = rng.choice([0, 0, 1])  # some programs write the left hand on a channel of its own
    notes = [n + [0] for n in _hand(rng, tpq, end, 60, 84, 0.25)]
    notes += [n + [left_channel] for n in _hand(rng, tpq, end, 36, 62, 0.6)]
    if rng.random() < 0.3:  # both hands meet on a key
        for on, off, p, v, c in rng.sample(notes, 3):
            shift = rng.choice([0, 1, tpq // 4])
            notes.append([on + shift, off + shift, p, v, c])
    meters = _meter_changes(rng, tpq, end)
    tempos = [(0, rng.choice([400000, 500000, 600000]))]
    tempos += [(rng.randrange(0, end), rng.randint(300000, 900000)) for _ in range(rng.choice([0, 0, 1, 3]))]
    off_first = rng.choice([True, True, False, None])  # None: file order at one tick is random
    ranked = []
    for on, off, p, v, c in notes:
        ron, roff = (1, 0) if off_first else (0, 1)
        if off_first is None:
            ron, roff = rng.random(), rng.random()
        if off == on:  # a zero-length note is written on, then off
            ron, roff = 0.5, 0.6
        ranked.append((on, off, p, v, ron, roff, c))
    return {"tpq": tpq, "notes": ranked, "tempos": tempos, "meters": meters,
            "zero_velocity_offs": rng.random() < 0.5, "type": 1 if rng.random() < 0.7 else 0}


def midi_file(s: dict) -> mido.MidiFile:
    """The file :func:`spec` describes: a conductor track and the piano track (format 1),
    or one track (format 0)."""
    events = []  # (tick, rank within the tick, message)
    for on, off, p, v, ron, roff, c in s["notes"]:
        events.append((on, ron, mido.Message("note_on", note=p, velocity=v, channel=c)))
        if s["zero_velocity_offs"]:
            events.append((off, roff, mido.Message("note_on", note=p, velocity=0, channel=c)))
        else:
            events.append((off, roff, mido.Message("note_off", note=p, velocity=64, channel=c)))
    meta = [(t, -1, mido.MetaMessage("set_tempo", tempo=u)) for t, u in s["tempos"]]
    meta += [(t, -1, mido.MetaMessage("time_signature", numerator=n, denominator=d)) for t, n, d in s["meters"]]
    piano = [(0, -2, mido.MetaMessage("track_name", name="Piano"))]
    piano += [(0, -2, mido.Message("program_change", program=0, channel=c)) for c in sorted({n[6] for n in s["notes"]})]
    mid = mido.MidiFile(ticks_per_beat=s["tpq"], type=s["type"])
    if s["type"] == 1:
        mid.tracks += [_track(meta), _track(piano + events)]
    else:
        mid.tracks.append(_track(meta + piano + events))
    return mid


def _track(events) -> mido.MidiTrack:
    track, now = mido.MidiTrack(), 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def compare(path: Path) -> dict:
    theirs = notebook_loop(path)[0]
    ours = cadenza_tokens(path)
    row = {"path": path.name, "tokens": len(theirs), "identical": ours == theirs}
    if not row["identical"]:
        at = first_difference(ours, theirs)
        row.update(at=at, cadenza=ours[at:at + 4], music21=theirs[at:at + 4], cadenza_tokens=len(ours))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--first", type=int, default=0, help="start at file K")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write every file's row as JSON")
    ap.add_argument("--keep", type=Path, default=None, help="copy the files that differ here")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.first, args.first + args.files):
            path = Path(tmp) / f"typeset_{args.seed}_{k}.mid"
            midi_file(spec(k, args.seed)).save(str(path))
            rows.append(compare(path))
            if not rows[-1]["identical"]:
                print(json.dumps(rows[-1]), flush=True)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    write_bytes_atomic(args.keep / path.name, path.read_bytes())
    differ = sum(not r["identical"] for r in rows)
    print(f"files: {len(rows)}; identical token lists: {len(rows) - differ}; differing: {differ}")
    if args.out:
        write_bytes_atomic(args.out, json.dumps(rows, indent=1).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
