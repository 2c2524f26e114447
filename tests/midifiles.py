"""Real MIDI files written with symusic, for the tests."""
from __future__ import annotations

import random
from pathlib import Path

from symusic import Note, Score, Track


def write_piece(path: Path, events, tpq: int = 480, program: int = 0, drum: bool = False, tracks=None) -> Path:
    """``events``: (time, duration, pitch, velocity) in ticks; ``tracks`` overrides with a list of
    event lists (one track each)."""
    score = Score(tpq)
    for evs in tracks or [events]:
        track = Track("Piano", program, drum)
        for time, dur, pitch, vel in evs:
            track.notes.append(Note(time, dur, pitch, vel))
        score.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))
    return path


def random_piece(rng: random.Random, n_onsets: int = 120, tpq: int = 480):
    events, time = [], 0
    for _ in range(n_onsets):
        dur = rng.choice([tpq // 2, tpq, tpq * 2])
        size = rng.choice([1, 1, 2, 3])
        for pitch in rng.sample(range(48, 80), size):
            events.append((time, dur, pitch, rng.choice([64, 80, 96])))
        time += dur
    return events

