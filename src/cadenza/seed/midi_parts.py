"""The parts music21's MIDI import makes of a file's bytes, where symusic's reading differs.

Three things music21 sees that symusic's arrays no longer hold (``music21/midi``):

- one part per MTrk chunk: symusic splits a track by channel, so two hands written on two
  channels of one track are two tracks to symusic and one part to music21, whose chords
  join notes of both hands;
- the note-off a note-on takes is the next one of its pitch and channel *in the file*
  (``getNotesFromEvents`` walks the events backwards), so a note-on written before a
  note-off of its pitch at the same tick ends there, with length zero (a grace note);
  symusic pairs the note-off with the note already sounding;
- tempos, key and time signatures, track and instrument names and program changes written
  in a track with notes are elements of its part while it is quantized, so a length looks
  ahead to them as to the next note (see :func:`.music21_replica._quantize`); those of a
  track without notes join the part only afterwards.

:func:`read_parts` gives, per part, its notes as music21 pairs them and where those marks
lie; None where the file is not one it reads plainly (then symusic's view is used).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

_MARKS = frozenset((0x03, 0x04, 0x51, 0x58, 0x59))  # track/instrument name, tempo, time, key
DRUM_CHANNEL = 9  # symusic's drum tracks, which cadenza leaves out


class Part(NamedTuple):
    on: np.ndarray  # ticks, by note-on in file order
    off: np.ndarray  # ticks, as music21 pairs the note-offs
    pitch: np.ndarray
    marks: np.ndarray  # ticks of the part's own tempo, key, time signature, instrument marks


class _Unread(Exception):
    """Bytes this reader does not follow music21 through."""


def _varlen(data: bytes, i: int) -> tuple[int, int]:
    value = 0
    while True:
        b = data[i]
        i += 1
        value = (value << 7) | (b & 0x7F)
        if b < 0x80:
            return value, i


def _events(chunk: bytes) -> tuple[list[tuple[int, int, int, bool]], list[int]]:
    """A track's note events in file order (tick, pitch, channel, is a note-on) and the
    ticks of its marks."""
    notes, marks = [], []
    i, tick, status, n = 0, 0, None, len(chunk)
    while i < n:
        b = chunk[i]
        if b < 0x80:  # most deltas are one byte
            tick, i = tick + b, i + 1
        else:
            delta, i = _varlen(chunk, i)
            tick += delta
        b = chunk[i]
        if b == 0xFF:
            length, j = _varlen(chunk, i + 2)
            if chunk[i + 1] in _MARKS:
                marks.append(tick)
            i = j + length
            continue
        if b in (0xF0, 0xF7):
            length, j = _varlen(chunk, i + 1)
            i, status = j + length, None  # music21 would read running status after it as sysex
            continue
        if b & 0x80:
            status, i = b, i + 1
        elif status is None:
            raise _Unread
        kind, channel = status & 0xF0, status & 0x0F
        if kind in (0xC0, 0xD0):
            if kind == 0xC0:
                marks.append(tick)
            i += 1
            continue
        if kind <= 0x90:  # a note-off or note-on
            if channel != DRUM_CHANNEL:
                notes.append((tick, chunk[i], channel, kind == 0x90 and chunk[i + 1] > 0))
        elif kind == 0xF0:
            raise _Unread
        i += 2
    if i != n:
        raise _Unread
    return notes, marks


def _pair(notes: list[tuple[int, int, int, bool]]) -> list[tuple[int, int, int]]:
    """(on, off, pitch) of each note-on that has a note-off after it, in file order: the
    next note-off of its pitch and channel in the file."""
    awaiting: dict[tuple[int, int], int] = {}
    out = []
    for tick, pitch, channel, is_on in reversed(notes):
        if not is_on:
            awaiting[pitch, channel] = tick
        elif (pitch, channel) in awaiting:
            out.append((tick, awaiting[pitch, channel], pitch))
    out.reverse()
    return out


def read_parts(data: bytes) -> tuple[int, list[Part]] | None:
    """(ticks per quarter, the parts of the tracks with non-drum notes, in file order),
    as music21 reads ``data``; None: not a format 0 or 1 file with ticks per quarter and
    well-formed tracks."""
    try:
        if data[:4] != b"MThd" or int.from_bytes(data[4:8], "big") != 6:
            return None
        fmt, count, division = (int.from_bytes(data[k:k + 2], "big") for k in (8, 10, 12))
        if fmt not in (0, 1) or division & 0x8000 or division == 0:
            return None
        parts, pos = [], 14
        for _ in range(count):
            length = int.from_bytes(data[pos + 4:pos + 8], "big")
            if data[pos:pos + 4] != b"MTrk" or pos + 8 + length > len(data):
                return None
            notes, marks = _events(data[pos + 8:pos + 8 + length])
            pos += 8 + length
            paired = _pair(notes)
            if paired:
                on, off, pitch = (np.asarray(c, dtype=np.int64) for c in zip(*paired))
                parts.append(Part(on, off, pitch, np.asarray(sorted(marks), dtype=np.int64)))
        return division, parts
    except (_Unread, IndexError):
        return None
