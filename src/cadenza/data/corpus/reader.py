"""Read one MIDI file into one piano part, or say why it was skipped."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
from symusic import Note, Score, Track

from .meter import trusted_signatures, untrusted
from .pedal import SUSTAIN_CC, pedal_spans, set_pedals

PIANO_LOW, PIANO_HIGH = 21, 108
MAX_FILE_BYTES = 64 * 1024 * 1024
# Bounds that keep one file from holding a worker for minutes or filling memory with
# tokens: half a million notes is hours of piano; 100,000 quarter notes is ~14 hours at
# 120 bpm (a few bytes of huge delta-times otherwise become millions of Bar tokens).
MAX_NOTES = 500_000
MAX_QUARTERS = 100_000


class SkipFile(Exception):
    """A file inside a corpus that cannot be used; the message is the reason."""


def merge_piano(score: Score) -> Score:
    """All non-drum tracks merged into one piano track (program 0), notes sorted.

    Notes outside the 88 piano keys and notes of zero length are dropped; tempos, time and
    key signatures are kept, except a time signature that cannot be the metre (1/4: see
    :mod:`.meter`); the sustain pedals of those tracks become one pedal (see :mod:`.pedal`).
    """
    if _merged_already(score):  # the reader's own output, handed on to a tokenizer
        return score
    tracks = [t for t in score.tracks if not t.is_drum]
    arrays = [t.notes.numpy() for t in tracks if len(t.notes)]
    merged = Score(score.tpq)
    merged.tempos = score.tempos.copy()
    merged.time_signatures = trusted_signatures(score)
    merged.key_signatures = score.key_signatures.copy()
    track = Track("Piano", 0, False)
    if arrays:
        cols = {k: np.concatenate([a[k] for a in arrays]) if len(arrays) > 1 else arrays[0][k]
                for k in ("time", "duration", "pitch", "velocity")}
        keep = ((cols["pitch"] >= PIANO_LOW) & (cols["pitch"] <= PIANO_HIGH)
                & (cols["duration"] > 0) & (cols["time"] >= 0))
        if not keep.all():
            cols = {k: v[keep] for k, v in cols.items()}
        order = np.lexsort((cols["pitch"], cols["time"]))  # stable: tracks in order at a tie
        track.notes = Note.from_numpy(
            time=cols["time"][order].astype(np.int32), duration=cols["duration"][order].astype(np.int32),
            pitch=cols["pitch"][order].astype(np.int8),
            velocity=np.clip(cols["velocity"][order], 1, 127).astype(np.int8), ttype="tick")
    if any(len(t.pedals) for t in tracks):  # a new track has neither pedals nor controls
        set_pedals(track, *pedal_spans(tracks))
    merged.tracks.append(track)
    return merged


def _merged_already(score: Score) -> bool:
    """True when merging would give the same score: one clean program-0 piano track,
    notes sorted by time and pitch, trusted time signatures."""
    if len(score.tracks) != 1 or untrusted(score):
        return False
    track = score.tracks[0]
    if track.is_drum or track.program != 0 or track.name != "Piano" or not len(track.notes):
        return False
    if len(track.pedals):  # pedals as merging leaves them: sorted spans apart, CC 64 only
        p = track.pedals.numpy()
        start, end = p["time"].astype(np.int64), (p["time"] + p["duration"]).astype(np.int64)
        if (start[1:] <= end[:-1]).any() or (p["duration"] <= 0).any():
            return False
    if any(c.number != SUSTAIN_CC for c in track.controls):
        return False
    a = track.notes.numpy()
    pitch = a["pitch"]
    if pitch.min() < PIANO_LOW or pitch.max() > PIANO_HIGH:
        return False
    order = a["time"].astype(np.int64) * 128 + pitch  # by time, then pitch (pitch < 128)
    return bool((np.diff(order) >= 0).all() and a["time"][0] >= 0 and a["duration"].min() > 0
                and a["velocity"].min() >= 1)


def _read_file(path: Path) -> bytes:
    """The bytes of a regular file; opening never blocks (a FIFO named .mid)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SkipFile(f"cannot open: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SkipFile("not a regular file")
        if info.st_size == 0:
            raise SkipFile("empty file (0 bytes)")
        if info.st_size > MAX_FILE_BYTES:
            raise SkipFile(f"file larger than {MAX_FILE_BYTES // 2**20} MiB")
        data = _read_fd(fd, min(info.st_size, MAX_FILE_BYTES) + 1)
    except OSError as exc:
        raise SkipFile(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if not data:
        raise SkipFile("empty file (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise SkipFile(f"file larger than {MAX_FILE_BYTES // 2**20} MiB")
    return data


def _read_fd(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes (asking for no more: a 64 MiB request costs a 64 MiB buffer)."""
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def piano_tracks(score: Score) -> Score:
    """The score's non-drum tracks with notes, as the file has them (notes, time
    signatures): what a representation that reads tracks the way music21 does needs."""
    out = score.copy()
    out.tracks = [t for t in score.tracks if not t.is_drum and len(t.notes)]
    return out


def read_piano_score(path: Path, merge: bool = True) -> Score:
    """The merged piano part of one MIDI file (``merge=False``: its piano tracks
    unchanged, see :func:`piano_tracks`); raises ``SkipFile`` with a reason."""
    score = _parse(path)
    tracks = [t for t in score.tracks if len(t.notes)]
    if not tracks:
        raise SkipFile("no notes")
    if all(t.is_drum for t in tracks):
        raise SkipFile("drum tracks only")
    piano = [t for t in tracks if not t.is_drum]
    notes = sum(len(t.notes) for t in piano)
    if notes > MAX_NOTES:
        raise SkipFile(f"too many notes: {notes:,} (limit {MAX_NOTES:,})")
    if merge:
        merged = merge_piano(score)
        cols = merged.tracks[0].notes.numpy()
        _check_end(_end(cols["time"], cols["duration"]), merged.tpq)
        return merged
    _check_end(_playable_end([t.notes.numpy() for t in piano]), score.tpq)
    score.tracks = piano  # as piano_tracks gives them, without copying the score just read
    return score


def _parse(path: Path) -> Score:
    data = _read_file(path)
    if not data.startswith(b"MThd"):
        raise SkipFile("not a MIDI file (no MThd header)")
    try:
        score = Score.from_midi(data)
    except Exception as exc:  # symusic reports any malformed input as an exception
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SkipFile(f"unreadable MIDI: {reason}") from None
    if score.tpq < 1:
        raise SkipFile(f"invalid MIDI header: {score.tpq} ticks per quarter note")
    return score


def _end(time: np.ndarray, duration: np.ndarray) -> int | None:
    """The latest end of a note (None: no note)."""
    return int((time.astype(np.int64) + duration).max()) if len(time) else None


def _playable_end(tracks: list[dict]) -> int | None:
    """The latest end of the notes :func:`merge_piano` keeps of these tracks' note columns."""
    ends = []
    for a in tracks:
        pitch, time, duration = a["pitch"], a["time"], a["duration"]
        if pitch.min() >= PIANO_LOW and pitch.max() <= PIANO_HIGH and duration.min() > 0 and time.min() >= 0:
            ends.append(_end(time, duration))  # all kept
            continue
        keep = (pitch >= PIANO_LOW) & (pitch <= PIANO_HIGH) & (duration > 0) & (time >= 0)
        if keep.any():
            ends.append(_end(time[keep], duration[keep]))
    return max(ends, default=None)


def _check_end(end: int | None, tpq: int) -> None:
    """Skip a piano part without notes (``end`` None) or one that ends too late."""
    if end is None:
        raise SkipFile("no playable piano notes (all outside 21-108 or zero length)")
    quarters = end / tpq
    if quarters > MAX_QUARTERS:
        raise SkipFile(f"too long: {quarters:,.0f} quarter notes (limit {MAX_QUARTERS:,}; "
                       f"huge delta-times or note lengths)")
