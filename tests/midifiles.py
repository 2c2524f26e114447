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



def write_eighths_corpus(folder: Path, files: int = 3) -> Path:
    """``files`` pieces of 100 eighth notes at random pitches 48-79 (seeded by file number)."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        rng = np.random.default_rng(k)
        score, track = Score(480), Track("Piano", 0, False)
        for i in range(100):
            track.notes.append(Note(i * 240, 240, int(rng.integers(48, 80)), 80))
        score.tracks.append(track)
        score.dump_midi(str(folder / f"p{k}.mid"))
    return folder
