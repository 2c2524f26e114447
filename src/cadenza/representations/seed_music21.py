"""What the seed notebook's music21 loop reads from a MIDI file, from symusic arrays.

The notebook parses a file with ``music21.converter.parse``, keeps the first part of
``instrument.partitionByInstrument`` and walks it. For a file whose tracks are all one
instrument that walk is fixed by four steps of music21's MIDI import, reproduced here
track by track (``music21/midi/translate.py``, ``Stream.quantize``, ``makeTies``):

1. chords: notes sorted by onset (file order among equal onsets); each note not yet
   taken starts a group, and every later note that starts less than 1/4 beat after it
   *and* ends within 1/4 beat of it joins (even one already taken by an earlier group,
   as music21 does). A group of one is a note, a larger one a chord whose length is its
   last member's.
2. quantization to the nearest 1/4 or 1/3 beat, offsets first; a length is never rounded
   to zero and prefers one that reaches the next onset; a zero-length MIDI note is a
   grace note and stays zero.
3. ties: a note or chord that crosses a barline (from the file's time signatures, 4/4
   when none) is cut there, and each piece is a token.
4. order: the tracks are flattened into one part, sorted by offset, grace notes first,
   then track, then the order each track's part had.
"""
from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
from symusic import Score

DIVISORS = (4, 3)  # music21's defaults.quantizationQuarterLengthDivisors
UNITS = 3072  # per quarter note: every 1/4 and 1/3 grid point and bar of n/2^k is whole


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


def _groups(on: np.ndarray, off: np.ndarray, tpq: int) -> tuple[list[tuple[int, int, list[int]]], bool]:
    """music21's chord grouping of one track: (first onset, length of the last member,
    member indices) in the order music21 creates them, and whether a note that started
    with a group ended apart from it (music21 then makes voices)."""
    tol = tpq / max(DIVISORS)
    n = len(on)
    taken = [False] * n
    on_l, off_l = on.tolist(), off.tolist()
    out = []
    voiced = False
    for i in range(n):
        if taken[i]:
            continue
        start, end = on_l[i], off_l[i]
        members = [i]
        for j in range(i + 1, n):
            if abs(on_l[j] - start) >= tol:
                break
            if abs(off_l[j] - end) <= tol:
                members.append(j)
                taken[j] = True
            else:
                voiced = True
        last = members[-1]
        out.append((start, off_l[last] - on_l[last], members))
    return out, voiced


def _units(x: float) -> int:
    """A quantized quarter-note value in exact units (music21 keeps offsets as fractions)."""
    return round(x * UNITS)


def _quantize(groups, tpq: int) -> list[tuple[int, int]]:
    """(offset, length) of each group in :data:`UNITS`, quantized as music21 does."""
    raw = [(start / tpq, length / tpq, length == 0) for start, length, _ in groups]
    # music21 sorts the part first: by offset, grace notes first, then creation order
    order = sorted(range(len(raw)), key=lambda k: (raw[k][0], not raw[k][2], k))
    offsets = [_units(_best_match(x)) for x, _, _ in raw]
    out: list[tuple[int, int]] = [(0, 0)] * len(raw)
    nxt = 0  # position in order of the first element quantized to a later offset
    for pos, k in enumerate(order):
        o = offsets[k]
        nxt = max(nxt, pos + 1)
        while nxt < len(order) and offsets[order[nxt]] <= o:
            nxt += 1
        length, grace = raw[k][1], raw[k][2]
        if nxt < len(order):
            gap = (offsets[order[nxt]] - o) / UNITS
            out[k] = (o, _units(_best_match(length, grace, gap)))
        else:
            out[k] = (o, _units(_best_match(length, grace)))
    return out


def bar_lines(score: Score, end: int) -> np.ndarray:
    """Barline offsets in :data:`UNITS` to past ``end``, from the time signatures (their
    times quantized like notes; of several at one time the last; 4/4 from the start when
    there is none there, as music21 assumes)."""
    at_time = {}
    for ts in sorted(score.time_signatures, key=lambda ts: ts.time):
        at_time[_units(_best_match(ts.time / score.tpq))] = (ts.numerator, ts.denominator)
    sigs = [(t, num, den) for t, (num, den) in sorted(at_time.items())]
    if not sigs or sigs[0][0] > 0:
        sigs.insert(0, (0, 4, 4))
    bars: list[int] = []
    for k, (start, num, den) in enumerate(sigs):
        length = round(UNITS * 4 * num / den)
        if length <= 0:
            continue
        stop = sigs[k + 1][0] if k + 1 < len(sigs) else end + 2 * length  # a spare bar after the end
        bars.extend(range(start, max(start, stop), length))
    return np.asarray(bars, dtype=np.int64)


# music21 caches a stream's highestTime and forgets it whenever the stream's elements
# change, but not when a chord in it is cut at a barline: a measure or voice asked its
# highest time before such a cut keeps reporting the uncut end, and makeRests then lays
# the following measures out from that end. That moves every later note of the track, so
# it decides the order of the tokens; the bookkeeping below follows music21 10.

# An element is [offset in its measure, grace, insertion seq, group, length, chord];
# makeTies changes its length in place.
OFFSET, GRACE, SEQ, GROUP, LENGTH, CHORD = range(6)


@lru_cache(maxsize=4096)
def _rounds_down(units: int) -> bool:
    exact = Fraction(units, UNITS)
    return Fraction(float(exact)) < exact


def _stays_sorted(reach: int | None, offset: int) -> bool:
    """``coreInsert``'s test: an element inserted at ``offset`` into a stream reaching to
    ``reach`` (None: empty) keeps it sorted if it starts after that end; at the end
    exactly, music21 compares the offset as a float and, rounded down, finds it earlier."""
    return reach is None or reach < offset or (reach == offset and not _rounds_down(offset))


class _Stream(list):
    """A measure's or voice's elements, its cached highest time (None: not cached) and
    whether it is sorted."""

    def __init__(self, items=()) -> None:
        super().__init__(items)
        self.cache: int | None = None
        self.unsorted = False

    def reach(self) -> int | None:
        return max((e[OFFSET] + e[LENGTH] for e in self), default=None)

    def insert_sorted(self, e: list) -> None:
        if not _stays_sorted(self.reach(), e[OFFSET]):
            self.unsorted = True
        self.append(e)
        self.cache = None


class _Measure:
    __slots__ = ("voices", "direct")

    def __init__(self) -> None:
        self.voices: list[_Stream] = []
        self.direct = _Stream()  # the measure itself: its own elements, cache, sortedness

    def highest(self) -> int:
        own = self.direct.reach() or 0
        return max([own] + [v.cache if v.cache is not None else (v.reach() or 0) for v in self.voices])


def _in_order(container: list[list]) -> list[list]:
    return sorted(container, key=lambda e: (e[OFFSET], not e[GRACE], e[SEQ]))


def _make_voices(meas: _Measure, meta_inside: bool) -> None:
    """``Measure.makeVoices``: each element, in order, into the first voice whose highest
    time (asked, and so cached) is not after its offset; nothing when one voice does.
    ``meta_inside``: a tempo, key or time signature lies inside the measure (after 0)."""
    voices: list[_Stream] = []
    for e in meas.direct:
        for v in voices:
            if v.cache is None:
                v.cache = v.reach()
            if v.cache <= e[OFFSET]:
                v.insert_sorted(e)
                break
        else:
            voices.append(_Stream())
            voices[-1].insert_sorted(e)
    if len(voices) > 1:
        if not meta_inside:  # inserting the second voice asks the (still sorted) measure
            voices[0].cache = voices[0].reach()  # its highest time, so the first voice's
        meas.voices, meas.direct = voices, _Stream()
        meas.direct.unsorted = True  # the voices went in at offset 0


def _cut(meas: _Measure, container: _Stream, e: list, length: int) -> list:
    """Cut ``e`` at the barline; a note's cut tells its streams, a chord's does not."""
    rest = [0, False, None, e[GROUP], e[OFFSET] + e[LENGTH] - length, e[CHORD]]
    e[LENGTH] = length - e[OFFSET]
    if not e[CHORD]:
        container.cache = None
        meas.direct.cache = None
    return rest


def _put_remainder(meas: _Measure, nxt: _Measure, next_had_voices: bool, rest: list) -> None:
    """Where makeTies puts a remainder: the next measure itself when both have voices
    (music21 looks the voice up by an id it cannot find), else the next measure's first
    voice, made (moveNotesToVoices) when only this measure has voices."""
    if next_had_voices and meas.voices:
        if not nxt.direct.unsorted:  # inserting asks the sorted measure its highest time,
            for v in nxt.voices:  # which asks (and caches) its voices' before any cut
                v.cache = v.reach()
        nxt.direct.insert_sorted(rest)
        return
    if meas.voices and not next_had_voices and not nxt.voices:
        nxt.voices, nxt.direct = [_Stream(nxt.direct)], _Stream()
    dst = nxt.voices[0] if (next_had_voices or meas.voices) else nxt.direct
    dst.insert_sorted(rest)
    nxt.direct.cache = None


def _make_ties(measures: dict[int, _Measure], lengths: np.ndarray, seq) -> int:
    """``makeTies``: cut what crosses its barline, measure by measure (a remainder may
    add a measure). Returns the last measure."""
    for meas in measures.values():  # it starts by sorting every unsorted stream
        for stream in [meas.direct, *meas.voices]:
            if stream.unsorted:
                stream.cache, stream.unsorted = None, False
    m, last = min(measures), max(measures)
    while m <= last:
        meas = measures.setdefault(m, _Measure())
        nxt = measures.setdefault(m + 1, _Measure())
        next_had_voices = bool(nxt.voices)
        length = int(lengths[m])
        for container in (meas.voices or [meas.direct]):
            for e in _in_order(container):
                if e[OFFSET] + e[LENGTH] <= length or e[OFFSET] >= length:
                    continue
                rest = _cut(meas, container, e, length)
                rest[SEQ] = next(seq)
                _put_remainder(meas, nxt, next_had_voices, rest)
                last = max(last, m + 1)
        m += 1
    return last


def _gap(spans) -> bool:
    reach = 0
    for start, end in sorted(spans):
        if start > reach:
            return True
        reach = max(reach, end)
    return False


def _extent(meas: _Measure, bar: int) -> int:
    """The measure's highest time after makeRests, which lays measures end to end: a
    stream keeps a stale cache only if no rest goes into it (it starts at 0, has no gap
    and reaches the bar), and a rest in a voice tells the measure too."""
    for v in meas.voices:
        h = v.cache if v.cache is not None else v.reach()
        if _gap((e[OFFSET], e[OFFSET] + e[LENGTH]) for e in v) or h < bar:
            v.cache = None
            meas.direct.cache = None
    spans = [(e[OFFSET], e[OFFSET] + e[LENGTH]) for e in meas.direct]
    spans += [(0, v.cache if v.cache is not None else v.reach()) for v in meas.voices]
    own = meas.direct.cache
    if own is None or own < bar or _gap(spans):
        return max(bar, meas.highest())
    return own


def _track_order(timed, chords, bars: np.ndarray, lengths: np.ndarray, voiced: bool,
                 end_marker: bool, metas: np.ndarray) -> list[tuple]:
    """(offset, grace, rank, group) of every piece of one track's notes and chords after
    makeMeasures, makeVoices, makeTies and makeRests; rank orders pieces at one offset.
    ``end_marker``: a tempo, key or time signature lies at or after the track's end
    (makeMeasures then stores it at the end of the part). ``metas``: sorted offsets of
    the tempos, key and time signatures."""
    seq = iter(range(1 << 62))
    measures: dict[int, _Measure] = {}
    for k in sorted(range(len(timed)), key=lambda k: (timed[k][0], timed[k][1] != 0, k)):
        o, d = timed[k]
        m = int(np.searchsorted(bars, o, side="right")) - 1
        meas = measures.setdefault(m, _Measure())
        meas.direct.insert_sorted([o - int(bars[m]), d == 0, next(seq), k, d, chords[k]])
    for meas in measures.values():
        if end_marker:  # storeAtEnd asked the part its highest time, so every measure's
            meas.direct.cache = meas.direct.reach() or 0
    if voiced:
        for m, meas in measures.items():
            inside = np.searchsorted(metas, [bars[m] + 1, bars[m] + int(lengths[m])])
            _make_voices(meas, bool(inside[1] > inside[0]))
    last = _make_ties(measures, lengths, seq)
    pieces = []
    start = 0
    for m in range(last + 1):
        meas = measures.get(m) or _Measure()
        if any(not v for v in meas.voices) or len(meas.voices) == 1:  # flattenUnnecessaryVoices
            meas.voices = [v for v in meas.voices if v]
            meas.direct.cache = None
            if len(meas.voices) == 1:
                meas.direct.extend([e[0], e[1], next(seq), *e[3:]] for e in _in_order(meas.voices[0]))
                meas.voices = []
        rank = 0
        for container in meas.voices + [meas.direct]:
            for e in _in_order(container):
                pieces.append((start + e[OFFSET], e[GRACE], rank, e[GROUP]))
                rank += 1
        if _TRACE is not None:
            _TRACE.append((m, start))
        start += _extent(meas, int(lengths[m]))
    return pieces


_TRACE = None


def seed_events(score: Score):
    """Every note or chord music21 yields, in its order: (offset, pitches)."""
    tpq = score.tpq
    tracks = [t for t in score.tracks if not t.is_drum and len(t.notes)]
    per_track = []
    end = 0
    for track in tracks:
        arr = track.notes.numpy()
        order = np.argsort(arr["time"], kind="stable")
        on = arr["time"][order].astype(np.int64)
        off = on + arr["duration"][order].astype(np.int64)
        pitch = arr["pitch"][order].astype(np.int64)
        groups, voiced = _groups(on, off, tpq)
        timed = _quantize(groups, tpq)
        per_track.append((groups, timed, pitch, voiced))
        end = max([end] + [o + d for o, d in timed])
    bars = bar_lines(score, end)
    meta_ticks = [e.time for e in (*score.tempos, *score.time_signatures, *score.key_signatures)]
    last_meta = max(meta_ticks, default=-1)
    metas = np.sort(np.asarray([t * UNITS // tpq for t in meta_ticks], dtype=np.int64))
    lengths = np.diff(np.append(bars, 2 * bars[-1] - bars[-2] if len(bars) > 1 else bars[-1] + 4 * UNITS))
    rows = []
    for ti, (groups, timed, pitch, voiced) in enumerate(per_track):
        chords = [len(g[2]) > 1 for g in groups]
        track_end = max(o + d for o, d in timed)
        end_marker = last_meta * UNITS >= track_end * tpq
        for o, grace, rank, k in _track_order(timed, chords, bars, lengths, voiced, end_marker, metas):
            rows.append((o / UNITS, not grace, ti, rank, pitch[groups[k][2]]))
    rows.sort(key=lambda r: r[:4])
    return [(r[0], r[4]) for r in rows]


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


CHORD_NAMES = _chord_table()
_NAMES = ("C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B")
NOTE_NAMES = [f"{_NAMES[m % 12]}{m // 12 - 1}" for m in range(128)]


def notebook_tokens(score: Score) -> list[str]:
    tokens = []
    for _, pitches in seed_events(score):
        if len(pitches) == 1:
            tokens.append(NOTE_NAMES[int(pitches[0])])
        else:
            mask = 0
            for p in pitches.tolist():
                mask |= 1 << (p % 12)
            tokens.append(CHORD_NAMES[mask])
    return tokens
