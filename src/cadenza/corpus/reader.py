"""Read one MIDI file into one piano part, or say why it was skipped."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from symusic import Note, Score, Track

PIANO_LOW, PIANO_HIGH = 21, 108
MAX_FILE_BYTES = 64 * 1024 * 1024


class SkipFile(Exception):
    """A file inside a corpus that cannot be used; the message is the reason."""


def merge_piano(score: Score) -> Score:
    """All non-drum tracks merged into one piano track (program 0), notes sorted.

    Notes outside the 88 piano keys and notes of zero length are dropped; tempos, time and
    key signatures are kept.
    """
    arrays = [t.notes.numpy() for t in score.tracks if not t.is_drum and len(t.notes)]
    merged = Score(score.tpq)
    merged.tempos = score.tempos.copy()
    merged.time_signatures = score.time_signatures.copy()
    merged.key_signatures = score.key_signatures.copy()
    track = Track("Piano", 0, False)
    if arrays:
        cols = {k: np.concatenate([a[k] for a in arrays]).astype(np.int64) for k in arrays[0]}
        keep = ((cols["pitch"] >= PIANO_LOW) & (cols["pitch"] <= PIANO_HIGH)
                & (cols["duration"] > 0) & (cols["time"] >= 0))
        order = np.lexsort((cols["pitch"][keep], cols["time"][keep]))
        track.notes = Note.from_numpy(
            time=cols["time"][keep][order].astype(np.int32),
            duration=cols["duration"][keep][order].astype(np.int32),
            pitch=cols["pitch"][keep][order].astype(np.int8),
            velocity=np.clip(cols["velocity"][keep][order], 1, 127).astype(np.int8),
            ttype="tick")
    merged.tracks.append(track)
    return merged


def read_piano_score(path: Path) -> Score:
    """The merged piano part of one MIDI file; raises ``SkipFile`` with a reason."""
    path = Path(path)
    try:
        size = os.stat(path).st_size
        if not path.is_file():
            raise SkipFile("not a regular file")
        if size == 0:
            raise SkipFile("empty file (0 bytes)")
        if size > MAX_FILE_BYTES:
            raise SkipFile(f"file larger than {MAX_FILE_BYTES // 2**20} MiB")
        data = path.read_bytes()
    except SkipFile:
        raise
    except OSError as exc:
        raise SkipFile(f"cannot open: {exc.strerror or exc}") from None
    if not data.startswith(b"MThd"):
        raise SkipFile("not a MIDI file (no MThd header)")
    try:
        score = Score.from_midi(data)
    except Exception as exc:  # symusic reports any malformed input as an exception
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SkipFile(f"unreadable MIDI: {reason}") from None
    tracks = [t for t in score.tracks if len(t.notes)]
    if not tracks:
        raise SkipFile("no notes")
    if all(t.is_drum for t in tracks):
        raise SkipFile("drum tracks only")
    merged = merge_piano(score)
    if not len(merged.tracks[0].notes):
        raise SkipFile("no playable piano notes (all outside 21-108 or zero length)")
    return merged
