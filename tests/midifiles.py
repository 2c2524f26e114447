"""Real MIDI files written with symusic, for the tests."""
from __future__ import annotations

import random
from pathlib import Path

from symusic import Note, Score, Track


def write_piece(path: Path, events, tpq: int = 480, program: int = 0, drum: bool = False, tracks=None,
                names=None) -> Path:
    """``events``: (time, duration, pitch, velocity) in ticks; ``tracks`` overrides with a list of
    event lists (one track each), named by ``names`` (default: each "Piano")."""
    score = Score(tpq)
    lists = tracks or [events]
    for evs, name in zip(lists, names or ["Piano"] * len(lists)):
        track = Track(name, program, drum)
        for time, dur, pitch, vel in evs:
            track.notes.append(Note(time, dur, pitch, vel))
        score.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))
    return path


def write_melody(path: Path, bass: bool = False) -> Path:
    """8 bars of quarter notes climbing a C major scale, in a track named Melody (``bass``:
    and half notes under it in a second track, Bass)."""
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    parts = [("Melody", [(k * 480, 480, scale[k % 8], 80) for k in range(32)])]
    parts += [("Bass", [(k * 960, 960, 48 + scale[k % 8] % 12, 70) for k in range(16)])] if bass else []
    return write_piece(path, None, tracks=[events for _, events in parts], names=[name for name, _ in parts])




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


def write_performed_piece(path: Path, seed: int, notes: int = 150, tempos=((0, 120.0),)) -> Path:
    """A played-looking piece: onsets at random milliseconds off any grid, velocities 20-120,
    sustain pedal (CC 64) down and up every few seconds, under the ``tempos`` given as
    (tick, bpm). 480 ticks a quarter."""
    import numpy as np
    from symusic import ControlChange, Tempo

    rng = np.random.default_rng(seed)
    score, track = Score(480), Track("Piano", 0, False)
    onsets = np.cumsum(rng.integers(37, 400, size=notes))
    pitches = rng.integers(40, 90, size=notes)
    ends = onsets + rng.integers(60, 900, size=notes)
    for k, (t, pitch) in enumerate(zip(onsets, pitches)):
        again = onsets[k + 1:][pitches[k + 1:] == pitch]  # a key is released before it is struck again
        end = min(ends[k], again[0] - 20) if len(again) else ends[k]
        track.notes.append(Note(int(t), int(end - t), int(pitch), int(rng.integers(20, 121))))
    for start in range(200, int(onsets[-1]), 2400):
        track.controls.append(ControlChange(start + int(rng.integers(0, 300)), 64, 127))
        track.controls.append(ControlChange(start + 1500 + int(rng.integers(0, 300)), 64, 0))
    score.tracks.append(track)
    score.tempos = [Tempo(int(t), float(bpm)) for t, bpm in tempos]
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))
    return path


TINY_RUN = dict(model_options={"dim": 32, "layers": 1, "dropout": 0.0}, seq_len=32, batch_size=4,
                steps_per_epoch=2, epochs=1, threads=1, warmup_steps=0)


def train_tiny_run(base: Path, **changes) -> Path:
    """The eighths corpus under ``base/corpus`` and a finished tiny ``small`` run in
    ``base/run``, prepared in its own cache ``base/cache`` (tests point CADENZA_CACHE there)."""
    import os

    from cadenza import preset, train

    corpus = write_eighths_corpus(base / "corpus")
    before = os.environ.get("CADENZA_CACHE")
    os.environ["CADENZA_CACHE"] = str(base / "cache")
    try:
        train(str(corpus), base / "run", preset("small", **{**TINY_RUN, **changes}), quiet=True, workers=1)
    finally:
        if before is None:
            del os.environ["CADENZA_CACHE"]
        else:
            os.environ["CADENZA_CACHE"] = before
    return base / "run"


def fine_tune_infill(songs: list[Path], root: Path, run_dir: Path) -> Path:
    """The shipped base fine-tuned 2 steps on ``songs`` with half its windows made FIM examples
    (seconds), into ``run_dir``; ``root`` holds the songs' links and the data cache."""
    (root / "songs").mkdir()
    for song in songs:
        (root / "songs" / song.name).symlink_to(song)
    return fine_tune_base(root / "songs", root / "cache", run_dir, "--infill", "0.5", "--batch-size", "4",
                          "--workers", "1")


def fine_tune_eighths(root: Path, *flags: str) -> Path:
    """The shipped base fine-tuned 2 steps with ``flags`` (e.g. ``--controls 1``) on four files
    of the eighths corpus written under ``root``, into ``root/run`` (seconds)."""
    write_eighths_corpus(root / "songs", files=4)
    return fine_tune_base(root / "songs", root / "cache", root / "run", "--batch-size", "2", *flags)


def fine_tune_base(songs: Path, cache: Path, run_dir: Path, *flags: str) -> Path:
    """The shipped base fine-tuned 2 steps (one epoch, one thread) on the folder ``songs`` with
    ``flags``, prepared in the data cache ``cache``, into ``run_dir``."""
    import pytest

    from cadenza.cli import main

    mp = pytest.MonkeyPatch()
    mp.setenv("CADENZA_CACHE", str(cache))
    try:
        assert main(["train", str(songs), "--run-dir", str(run_dir), "--from", "base", *flags,
                     "--epochs", "1", "--steps-per-epoch", "2", "--threads", "1", "--quiet"]) == 0
    finally:
        mp.undo()
    return run_dir
