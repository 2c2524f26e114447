"""What the seed notebook's music21 loop reads from a MIDI file, from symusic arrays.

The notebook parses a file with ``music21.converter.parse``, keeps the first part of
``instrument.partitionByInstrument`` and walks it. For a file whose tracks are all one
instrument that walk is fixed by four steps of music21's MIDI import, reproduced here
track by track (``music21/midi/translate.py``, ``Stream.quantize``, ``makeTies``):

0. note-offs: a note ends at the first note-off of its pitch after its note-on, so of
   two overlapping notes of one pitch both end at the first (``getNotesFromEvents``).
   Given the file's bytes, the parts, their notes and marks are read from them instead
   (:mod:`.midi_parts`): one part per MIDI track, note-offs taken in file order.
1. chords: notes sorted by onset (file order among equal onsets); each note not yet
   taken starts a group, and every later note that starts less than 1/4 beat after it
   *and* ends within 1/4 beat of it joins (even one already taken by an earlier group,
   as music21 does). A group of one is a note, a larger one a chord whose length is its
   last member's.
2. quantization to the nearest 1/4 or 1/3 beat, offsets first; a length is never rounded
   to zero and prefers one that reaches the next onset (or the next tempo, key, time
   signature or instrument mark written in the part's own track); a zero-length MIDI
   note is a grace note and stays zero.
3. ties: a note or chord that crosses a barline (from the file's time signatures, 4/4
   when none) is cut there, and each piece is a token.
4. order: the tracks are flattened into one part, sorted by offset, grace notes first,
   then track, then the order each track's part had.
"""
from __future__ import annotations

import math
import operator
from bisect import bisect_right
from functools import lru_cache
from itertools import repeat

import numpy as np
from symusic import Score

from .measures import UNITS, track_layout
from .midi_parts import read_parts

DIVISORS = (4, 3)  # music21's defaults.quantizationQuarterLengthDivisors


def _nearest_multiple(n: float, unit: float) -> tuple[float, float]:
    """``common.nearestMultiple``: the match and its unsigned error (7 decimals)."""
    mult = math.floor(n / unit)
    low, high = unit * mult, unit * (mult + 1)
    if low <= n <= low + unit / 2.0:
        return low, round(n - low, 7)
    return high, round(high - n, 7)


@lru_cache(maxsize=65536)
def _best_match(x: float, zero_allowed: bool = True, gap: float = 0.0) -> float:
    """``Stream.quantize``'s bestMatch: least remaining gap, then error, then grid."""
    found = []
    for div in DIVISORS:
        tick = 1 / div
        match, error = _nearest_multiple(x, tick)
        if not zero_allowed and match == 0.0:
            match, error = tick, abs(round(x - tick, 7))
        remaining = 0.0 if gap % tick == 0 else max(gap - match, 0.0)
        found.append((remaining, error, tick, match))
    return min(found)[3]


def _groups(on: np.ndarray, off: np.ndarray, tpq: int) -> tuple[list[tuple[int, int, list[int]]], list[bool]]:
    """music21's chord grouping of one track: (first onset, length of the last member,
    member indices) in the order music21 creates them, and for each whether a note that
    started with it ended apart from it (music21 then makes voices)."""
    tol = tpq / max(DIVISORS)
    n = len(on)
    taken = [False] * n
    on_l, off_l = on.tolist(), off.tolist()
    window = np.searchsorted(on, on + tol, side="left").tolist()  # notes starting within tol
    out, voiced = [], []
    for i in range(n):
        if taken[i]:
            continue
        start, end = on_l[i], off_l[i]
        members = [i]
        apart = False
        if window[i] == i + 1:
            out.append((start, end - start, members))
            voiced.append(apart)
            continue
        for j in range(i + 1, window[i]):
            if abs(off_l[j] - end) <= tol:
                members.append(j)
                taken[j] = True
            else:
                apart = True
        last = members[-1]
        out.append((start, off_l[last] - on_l[last], members))
        voiced.append(apart)
    return out, voiced


def _onset_groups(on: np.ndarray, off: np.ndarray, tpq: int) -> np.ndarray | None:
    """The first note of each group when :func:`_groups` would group plainly: the notes of
    one onset end within 1/4 beat of its first, and the next onset is 1/4 beat or more
    later. Then each onset is one group and nothing is voiced; None otherwise."""
    tol = tpq / max(DIVISORS)
    new = np.empty(len(on), dtype=bool)
    new[0] = True
    np.not_equal(on[1:], on[:-1], out=new[1:])
    firsts = np.flatnonzero(new)
    if (np.diff(on[firsts]) < tol).any():
        return None
    if len(firsts) < len(on) and (np.abs(off - off[firsts][np.cumsum(new) - 1]) > tol).any():
        return None
    return firsts


def _grouped(on: np.ndarray, off: np.ndarray, pitch: np.ndarray, tpq: int):
    """(onsets, lengths, tokens, chords, voiced) of the groups, in the order music21
    creates them (see :func:`_groups`)."""
    firsts = _onset_groups(on, off, tpq)
    if firsts is None:
        groups, voiced = _groups(on, off, tpq)
        pitch_l = pitch.tolist()
        tokens = [_token([pitch_l[i] for i in members]) for _, _, members in groups]
        return ([g[0] for g in groups], [g[1] for g in groups], tokens,
                [len(g[2]) > 1 for g in groups], voiced)
    lasts = np.append(firsts[1:], len(on)) - 1
    sizes = (lasts - firsts + 1).tolist()
    masks = np.bitwise_or.reduceat(np.left_shift(1, pitch % 12), firsts).tolist()
    tokens = [NOTE_NAMES[p] if size == 1 else CHORD_NAMES[mask]
              for p, size, mask in zip(pitch[firsts].tolist(), sizes, masks)]
    chords = [size > 1 for size in sizes]
    return on[firsts].tolist(), (off - on)[lasts].tolist(), tokens, chords, [False] * len(sizes)


def _units(x: float) -> int:
    """A quantized quarter-note value in exact units (music21 keeps offsets as fractions)."""
    return round(x * UNITS)


@lru_cache(maxsize=65536)
def _offset_units(tick: int, tpq: int) -> int:
    return _units(_best_match(tick / tpq))


@lru_cache(maxsize=65536)
def _length_units(ticks: int, tpq: int, gap: int | None) -> int:
    """A length quantized as music21 does when the next later element starts ``gap``
    units after this one (None: there is none)."""
    if gap is None:
        return _units(_best_match(ticks / tpq, ticks == 0))
    return _units(_best_match(ticks / tpq, ticks == 0, gap / UNITS))


def _quantize(onsets: list[int], lengths: list[int], tpq: int, marks: list[int] = ()) -> tuple[list[int], list[int]]:
    """(offsets, lengths) of the groups in :data:`UNITS`, quantized as music21 does: in
    the order music21 sorts the part (by onset, grace notes first, then creation), each
    length looks ahead to the next element quantized to a later offset, a group or one
    of the part's own ``marks`` (sorted offsets in units)."""
    offsets = [_offset_units(start, tpq) for start in onsets]
    if 0 not in lengths and all(map(operator.lt, offsets, offsets[1:])):  # each next one is later
        gaps = [*map(operator.sub, offsets[1:], offsets), None]
        if marks:
            gaps = [_nearer(g, marks, o) for g, o in zip(gaps, offsets)]
        return offsets, list(map(_length_units, lengths, repeat(tpq), gaps))
    order = list(range(len(onsets)))  # groups come by onset already
    if 0 in lengths:
        order.sort(key=lambda k: (onsets[k], lengths[k] != 0))
    out = [0] * len(onsets)
    nxt, n = 0, len(order)  # position in order of the first element quantized later
    for pos, k in enumerate(order):
        o = offsets[k]
        if nxt <= pos:
            nxt = pos + 1
        while nxt < n and offsets[order[nxt]] <= o:
            nxt += 1
        gap = offsets[order[nxt]] - o if nxt < n else None
        out[k] = _length_units(lengths[k], tpq, _nearer(gap, marks, o) if marks else gap)
    return offsets, out


def _nearer(gap: int | None, marks: list[int], offset: int) -> int | None:
    """``gap`` to the next group, or to the first mark after ``offset`` if that is nearer."""
    k = bisect_right(marks, offset)
    if k == len(marks):
        return gap
    return marks[k] - offset if gap is None else min(gap, marks[k] - offset)


def bar_lines(score: Score, end: int) -> np.ndarray:
    """Barline offsets in :data:`UNITS` to past ``end``: each measure as long as the time
    signature in force where it starts (makeMeasures), so a signature placed inside a
    measure takes effect at the next barline. Signature times are quantized like notes;
    of several at one time the last holds; 4/4 when none is in force (music21's default)."""
    at_time = {}
    for ts in sorted(score.time_signatures, key=lambda ts: ts.time):
        at_time[_units(_best_match(ts.time / score.tpq))] = (ts.numerator, ts.denominator)
    sigs = sorted(at_time.items())
    bars: list[int] = []
    at, k, length = 0, 0, 4 * UNITS
    while True:
        while k < len(sigs) and sigs[k][0] <= at:
            num, den = sigs[k][1]
            length = round(UNITS * 4 * num / den) or length
            k += 1
        bars.append(at)
        if at > end + length:  # a spare bar after the end
            return np.asarray(bars, dtype=np.int64)
        at += length


def _token(pitches: list[int]) -> str:
    if len(pitches) == 1:
        return NOTE_NAMES[pitches[0]]
    mask = 0
    for p in pitches:
        mask |= 1 << (p % 12)
    return CHORD_NAMES[mask]


def _note_offs(on: np.ndarray, off: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """Each note's end as music21 pairs note-offs: a note-on takes the first note-off of
    its pitch after it, so of two overlapping notes of one pitch both end at the first
    note-off (symusic pairs first in, first out: the second ends at the second). A
    zero-length note keeps its end, and its note-off ends a longer note of its pitch too.
    ``on`` is sorted."""
    low = min(int(on[0]), int(off.min()), 0)  # no tick is negative in a MIDI file
    lane = pitch * (max(int(on[-1]), int(off.max())) - low + 1) - low  # a stretch of keys per pitch
    ends = np.sort(lane + off)  # every note-off, by pitch then time
    first = np.searchsorted(ends, lane + on, side="right")  # the first after the note-on
    return np.where(off > on, ends[np.minimum(first, len(ends) - 1)] - lane, off)


def _columns(tracks) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(onsets, ends, pitches) of each symusic track, ends as symusic pairs note-offs."""
    out = []
    for t in tracks:
        c = t.notes.numpy()
        on = c["time"].astype(np.int64)
        out.append((on, on + c["duration"], c["pitch"].astype(np.int64)))
    return out


def _notes(cols, tpq: int, paired: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], int]:
    """The parts' notes as one track, part k moved ``k * width`` ticks later (far enough
    that no chord grouping or note-off pairing reaches across): onsets by time (file order
    among equal onsets), ends as music21 pairs note-offs (``paired``: they are already),
    pitches; each part's shift, and the earliest tick of any part unmoved."""
    on = np.concatenate([c[0] for c in cols])
    off = np.concatenate([c[1] for c in cols])
    pitch = np.concatenate([c[2] for c in cols])
    low = min(int(on.min()), int(off.min()))
    shifts = [k * (max(int(on.max()), int(off.max())) - low + tpq + 1) for k in range(len(cols))]
    if len(cols) > 1:
        shift = np.repeat(shifts, [len(c[0]) for c in cols])
        on, off = on + shift, off + shift
    if (np.diff(on) < 0).any():  # symusic gives each track's notes by time: seldom needed
        order = np.argsort(on, kind="stable")
        on, off, pitch = on[order], off[order], pitch[order]
    return on, off if paired else _note_offs(on, off, pitch), pitch, shifts, low


def _tracks(cols, marks, tpq: int, paired: bool) -> list[tuple[list[int], list[int], list[str], list[bool], bool, int]]:
    """Each part's groups quantized (offsets, lengths), their tokens, which are chords,
    whether music21 makes voices in it, and where it ends. ``marks``: each part's own
    tempo, key, time signature and instrument ticks (see :mod:`.midi_parts`)."""
    on, off, pitch, shifts, low = _notes(cols, tpq, paired)
    onsets, lengths, tokens, chords, voiced = _grouped(on, off, pitch, tpq)
    cuts = [0, *np.searchsorted(onsets, [low + shift for shift in shifts[1:]]).tolist(), len(onsets)]
    out = []
    for shift, own, a, b in zip(shifts, marks, cuts, cuts[1:]):
        offsets, quantized = _quantize([o - shift for o in onsets[a:b]] if shift else onsets[a:b], lengths[a:b],
                                       tpq, _later_marks(own, tpq))
        end = max(map(operator.add, offsets, quantized))
        out.append((offsets, quantized, tokens[a:b], chords[a:b], any(voiced[a:b]), end))
    return out


def _later_marks(ticks: np.ndarray, tpq: int) -> list[int]:
    """The quantized offsets (sorted, without 0) of a part's own marks, which its lengths
    look ahead to."""
    return sorted({_offset_units(int(t), tpq) for t in ticks.tolist()} - {0})


def _stored_at_end(score: Score, tick: int) -> int | None:
    """Where (in :data:`UNITS`) makeMeasures stores a tempo, key or time signature at
    ``tick`` at the end of a part, asking every measure its highest time; None: it
    never does. The conductor track is quantized like notes, and measures are made up
    to the first barline at or after the part's end, so only a mark on a barline (at
    or after the part's last note) is left outside them; one elsewhere lands in the
    last measure."""
    if tick < 0:
        return None
    units = _offset_units(tick, score.tpq)
    return units if units in set(bar_lines(score, units).tolist()) else None


def _uncut(offsets: list[int], lengths: list[int], bars: np.ndarray) -> bool:
    """No note or chord crosses a barline (none is tied)."""
    o = np.asarray(offsets, dtype=np.int64)
    return bool((bars[np.searchsorted(bars, o, side="right")] >= o + np.asarray(lengths, dtype=np.int64)).all())


def _track_rows(ti: int, track, bars: np.ndarray, lengths: np.ndarray, at_end: int | None,
                metas: np.ndarray) -> list[tuple]:
    """(offset, not a grace note, ti, rank, token) of every piece of one track: its
    sort key in the part, and its token."""
    offsets, durations, tokens, chords, voiced, end = track
    end_marker = at_end is not None and at_end >= end
    if not voiced and not end_marker and _uncut(offsets, durations, bars):  # each group one piece
        return list(zip(offsets, [d != 0 for d in durations], repeat(ti), range(len(tokens)), tokens))
    timed = list(zip(offsets, durations))
    return [(o, not grace, ti, rank, tokens[k])
            for o, grace, rank, k in track_layout(timed, chords, bars, lengths, voiced, end_marker, metas)]


_PART_ORDER = operator.itemgetter(0, 1, 2, 3)  # a row's sort key: offset, not grace, track, rank


def _part_rows(score: Score, midi: bytes | None = None) -> list[tuple]:
    """Every note or chord music21's first part yields for ``score``'s non-drum tracks, in
    its order (by offset, grace notes first, then track, then the track's own order), as
    ``_track_rows`` gives them. ``midi``: the file's bytes, read as music21 reads them
    (:mod:`.midi_parts`) instead of as symusic's tracks."""
    tpq = score.tpq
    parts = read_parts(midi) if midi is not None else None
    if parts is not None and parts[0] == tpq:
        cols, marks, paired = [p[:3] for p in parts[1]], [p.marks for p in parts[1]], True
    else:
        tracks = [t for t in score.tracks if not t.is_drum and len(t.notes)]
        cols, marks, paired = _columns(tracks), [np.zeros(0, dtype=np.int64)] * len(tracks), False
    if not cols:
        return []
    tracks = _tracks(cols, marks, tpq, paired)
    bars = bar_lines(score, max(track[-1] for track in tracks))
    lengths = np.diff(np.append(bars, 2 * bars[-1] - bars[-2] if len(bars) > 1 else bars[-1] + 4 * UNITS))
    meta_ticks = [e.time for e in (*score.tempos, *score.time_signatures, *score.key_signatures)]
    at_end = _stored_at_end(score, max(meta_ticks, default=-1))
    metas = np.sort(np.asarray([_offset_units(t, tpq) for t in meta_ticks], dtype=np.int64))
    rows = []
    for ti, track in enumerate(tracks):
        rows += _track_rows(ti, track, bars, lengths, at_end, metas)
    rows.sort(key=_PART_ORDER)
    return rows


def seed_events(score: Score, midi: bytes | None = None) -> list[tuple[float, str]]:
    """Every note or chord music21's first part yields for ``score``'s non-drum tracks,
    in its order: (offset in quarter notes, token); ``midi`` as for :func:`_part_rows`."""
    return [(r[0] / UNITS, r[4]) for r in _part_rows(score, midi)]


def _normal_order(pcs: list[int]) -> tuple[int, ...]:
    """Forte's normal order (music21's ``Chord.normalOrder``, checked on all 4095 sets):
    the rotation with the smallest span, ties broken by the intervals from its first
    pitch class to the second, the third, ... ."""
    best = None
    n = len(pcs)
    for k in range(n):
        rot = pcs[k:] + [p + 12 for p in pcs[:k]]
        key = (rot[-1] - rot[0], *(p - rot[0] for p in rot[1:-1]))
        if best is None or key < best[0]:
            best = (key, rot)
    return tuple(p % 12 for p in best[1])


def _chord_table() -> list[str]:
    """The chord token of every pitch-class set, indexed by its 12-bit mask."""
    table = [""]
    for mask in range(1, 4096):
        table.append(".".join(str(pc) for pc in _normal_order([pc for pc in range(12) if mask >> pc & 1])))
    return table


def pitch_name(midi: int) -> str:
    """music21's default spelling of a MIDI pitch (60 -> 'C4', 63 -> 'E-4')."""
    return f"{_NAMES[midi % 12]}{midi // 12 - 1}"


_NAMES = ("C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B")
CHORD_NAMES = _chord_table()
NOTE_NAMES = [pitch_name(m) for m in range(128)]


def notebook_tokens(score: Score, midi: bytes | None = None) -> list[str]:
    """The token list the notebook's music21 loop gives for ``score``'s non-drum tracks;
    ``midi``: the bytes of the file ``score`` was read from, whose tracks, note-off order
    and marks music21 reads as symusic does not (without them: as if the file were
    written as symusic writes ``score``)."""
    return [r[4] for r in _part_rows(score, midi)]
