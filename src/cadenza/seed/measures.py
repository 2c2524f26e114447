"""Where music21 puts the notes of one MIDI track: measures, voices, ties, and the layout
``makeRests`` gives the measures. Part of :mod:`.music21_replica`.

Offsets within a track decide the order of the seed tokens, and music21's layout has a
quirk that moves them: it caches a stream's ``highestTime`` and forgets it whenever the
stream's elements change, but not when a chord in it is cut at a barline. A measure or
voice asked its highest time before such a cut keeps the uncut end, and ``makeRests``,
which lays the measures end to end by their highest times, then starts every later
measure of the track that much later. The bookkeeping below follows music21 10: when a
stream is asked (and so caches), when it forgets, and when it counts as sorted.
"""
from __future__ import annotations

from bisect import bisect_right
from fractions import Fraction
from functools import lru_cache

import numpy as np

UNITS = 3072  # per quarter note: every 1/4 and 1/3 grid point and bar of n/2^k is whole

# An element is [offset in its measure, grace, insertion seq, group, length, chord];
# makeTies shortens it in place.
OFFSET, GRACE, SEQ, GROUP, LENGTH, CHORD = range(6)


@lru_cache(maxsize=4096)
def _rounds_down(units: int, bar: int = 0) -> bool:
    """Whether music21's float for an offset ``units`` into a measure at ``bar`` is below
    the exact offset. makeMeasures computes it as the part offset (a fraction unless
    dyadic) minus the barline (a float): ``float(part offset) - bar``; other inserts
    take the exact offset in the stream as a float (``bar`` 0)."""
    exact = Fraction(units, UNITS)
    return Fraction(float(Fraction(units + bar, UNITS)) - bar / UNITS) < exact


class _Stream(list):
    """A measure's or voice's elements, the highest time music21 has cached for it (None:
    none), whether it is sorted, and its true reach (kept up to date cheaply)."""

    def __init__(self, items=()) -> None:
        super().__init__(items)
        self.cache: int | None = None
        self.unsorted = False
        self._reach = max((e[OFFSET] + e[LENGTH] for e in self), default=None) if items else None
        self.cut = False  # an element was shortened: the reach is recomputed when asked

    def reach(self) -> int | None:
        if self.cut:
            self._reach = max((e[OFFSET] + e[LENGTH] for e in self), default=None)
            self.cut = False
        return self._reach

    def insert_sorted(self, e: list) -> None:
        """``Stream.insert``: the stream stays sorted if ``e`` starts after its reach; at
        the reach exactly, music21 compares the offset as a float with the reach as a
        fraction, and an offset rounded down seems earlier."""
        reach, offset = self.reach(), e[OFFSET]
        if reach is not None and (reach > offset or (reach == offset and _rounds_down(offset))):
            self.unsorted = True
        self.append(e)
        end = offset + e[LENGTH]
        self._reach = end if reach is None else max(reach, end)
        self.cache = None

    def asked(self) -> int:
        """``highestTime``: the cached value if any, else the reach (cached)."""
        if self.cache is None:
            self.cache = self.reach() or 0
        return self.cache


class _Measure:
    __slots__ = ("voices", "direct")

    def __init__(self) -> None:
        self.voices: list[_Stream] = []
        self.direct = _Stream()  # the measure itself: its own elements, cache, sortedness


def _sorted_after_filling(measure: _Stream, marks: list[int], bar: int) -> bool:
    """Whether makeMeasures leaves a measure sorted. It sorts the measure before each
    insert (asking ``m.clef`` iterates it), so only the last insert counts: the element
    last in order, a note or a tempo, key or time signature (``marks``: their offsets in
    the measure; they sort before notes at one offset). Inserting it keeps the measure
    sorted if everything inserted before reaches no further than its offset, compared as
    a float (see :func:`_rounds_down`)."""
    ends = [e[OFFSET] + e[LENGTH] for e in measure]
    marks = sorted(marks)
    if marks and marks[-1] > measure[-1][OFFSET]:
        last, before = marks[-1], ends + marks[:-1]
    else:
        last, before = measure[-1][OFFSET], ends[:-1] + marks
    reach = max(before, default=None)
    return reach is None or reach < last or (reach == last and not _rounds_down(last, bar))


def _in_order(container: list[list]) -> list[list]:
    return sorted(container, key=lambda e: (e[OFFSET], not e[GRACE], e[SEQ]))


def _make_voices(meas: _Measure, meta_inside: bool) -> None:
    """``Measure.makeVoices``: each element, in order, into the first voice whose highest
    time (asked, so cached) is not after its offset; nothing when one voice does.
    ``meta_inside``: a tempo, key or time signature lies inside the measure (after 0)."""
    reach = None
    for e in meas.direct:  # no overlap: one voice, nothing done (and nothing asked that stays)
        if reach is not None and e[OFFSET] < reach:
            break
        reach = e[OFFSET] + e[LENGTH] if reach is None else max(reach, e[OFFSET] + e[LENGTH])
    else:
        return
    voices: list[_Stream] = []
    for e in meas.direct:
        for v in voices:
            if v.asked() <= e[OFFSET]:
                v.insert_sorted(e)
                break
        else:
            voices.append(_Stream())
            voices[-1].insert_sorted(e)
    if len(voices) > 1:
        if not meta_inside:  # inserting the second voice asks the still sorted measure
            voices[0].asked()  # its highest time, and so the first voice its own
        meas.voices, meas.direct = voices, _Stream()
        meas.direct.unsorted = True  # the voices went in at offset 0


def _cut(meas: _Measure, container: _Stream, e: list, length: int, seq: int) -> list:
    """Cut ``e`` at the barline; a note's cut tells its streams, a chord's does not."""
    rest = [0, False, seq, e[GROUP], e[OFFSET] + e[LENGTH] - length, e[CHORD]]
    e[LENGTH] = length - e[OFFSET]
    container.cut = True
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
            for v in nxt.voices:  # which asks its voices, before any of their cuts
                v.asked()
        nxt.direct.insert_sorted(rest)
        return
    if meas.voices and not next_had_voices and not nxt.voices:
        nxt.voices, nxt.direct = [_Stream(nxt.direct)], _Stream()
    dst = nxt.voices[0] if (next_had_voices or meas.voices) else nxt.direct
    dst.insert_sorted(rest)
    nxt.direct.cache = None


def _make_ties(measures: dict[int, _Measure], lengths: np.ndarray, seq) -> None:
    """``makeTies``: cut what crosses its barline, measure by measure (a remainder may
    add a measure)."""
    for meas in measures.values():  # it starts by sorting every unsorted stream
        for stream in [meas.direct, *meas.voices]:
            if stream.unsorted:
                stream.cache, stream.unsorted = None, False
    m, last = min(measures), max(measures)
    while m <= last:
        meas = measures.get(m)
        m += 1
        if meas is None:
            continue
        length = int(lengths[m - 1])
        nxt = None
        for container in (meas.voices or [meas.direct]):
            if (container.reach() or 0) <= length:
                continue
            for e in _in_order(container):
                if e[OFFSET] + e[LENGTH] <= length or e[OFFSET] >= length:
                    continue
                if nxt is None:
                    nxt = measures.setdefault(m, _Measure())
                    next_had_voices = bool(nxt.voices)
                    last = max(last, m)
                _put_remainder(meas, nxt, next_had_voices, _cut(meas, container, e, length, next(seq)))


def _gap(spans) -> bool:
    reach = 0
    for start, end in sorted(spans):
        if start > reach:
            return True
        reach = max(reach, end)
    return False


def _extent(meas: _Measure, bar: int) -> int:
    """The measure's highest time after makeRests: a stream keeps a stale cache only if
    no rest goes into it (it starts at 0, has no gap and reaches the bar), and a rest in
    a voice tells the measure too."""
    if not meas.voices and meas.direct.cache is None:
        return max(bar, meas.direct.reach() or 0)
    for v in meas.voices:
        high = v.cache if v.cache is not None else v.reach()
        if high < bar or _gap((e[OFFSET], e[OFFSET] + e[LENGTH]) for e in v):
            v.cache = None
            meas.direct.cache = None
    voice_ends = [v.cache if v.cache is not None else v.reach() for v in meas.voices]
    own = meas.direct.cache
    spans = [(e[OFFSET], e[OFFSET] + e[LENGTH]) for e in meas.direct] + [(0, h) for h in voice_ends]
    if own is None or own < bar or _gap(spans):
        return max([bar, meas.direct.reach() or 0] + voice_ends)
    return own


def _flatten_unnecessary_voices(meas: _Measure, seq) -> None:
    if meas.voices and (len(meas.voices) == 1 or not all(meas.voices)):
        meas.voices = [v for v in meas.voices if v]
        meas.direct.cache = None
        if len(meas.voices) == 1:
            for e in _in_order(meas.voices[0]):
                meas.direct.insert_sorted([e[0], e[1], next(seq), *e[3:]])
            meas.voices = []


def _plain_layout(timed: list[tuple[int, int]], bars: np.ndarray) -> list[tuple]:
    """track_layout for a track without voices whose measures nobody asked their highest
    time: every piece is cut at its barlines and no measure moves. A remainder follows
    the elements that start its measure, in the order its source was cut, which is the
    order of its source in the measure before: so a piece's rank nests its source's."""
    pieces = []
    bar_list = bars.tolist()
    for k, (o, d) in enumerate(timed):
        key = (o, 0, k)
        pieces.append((o, d == 0, key, k))
        m = bisect_right(bar_list, o)
        while m < len(bar_list) and bar_list[m] < o + d:
            key = (bar_list[m], 1, key)
            pieces.append((bar_list[m], False, key, k))
            m += 1
    return pieces


def track_layout(timed: list[tuple[int, int]], chords: list[bool], bars: np.ndarray,
                 lengths: np.ndarray, voiced: bool, end_marker: bool,
                 metas: np.ndarray) -> list[tuple]:
    """(offset, grace, rank, group) of every piece of one track's notes and chords, in
    :data:`UNITS`, after makeMeasures, makeVoices, makeTies and makeRests; ``rank``
    orders the pieces at one offset. ``timed``: each group's quantized (offset, length);
    ``voiced``: music21 made voices in this track; ``end_marker``: a tempo, key or time
    signature lies, quantized, on a barline at or after the track's end (makeMeasures
    then stores it at the end of the part, asking every measure its highest time);
    ``metas``: sorted quantized offsets of the tempos, key and time signatures."""
    if not voiced and not end_marker:
        return _plain_layout(timed, bars)
    seq = iter(range(1 << 62))
    offsets = np.asarray([o for o, _ in timed], dtype=np.int64)
    in_bar = (np.searchsorted(bars, offsets, side="right") - 1).tolist()
    bar_list, lengths_list = bars.tolist(), lengths.tolist()
    measures: dict[int, _Measure] = {}
    order = range(len(timed))  # by offset already; grace notes go first among equals
    if any(d == 0 for _, d in timed):
        order = sorted(order, key=lambda k: (timed[k][0], timed[k][1] != 0))
    for k in order:
        o, d = timed[k]
        m = in_bar[k]
        meas = measures.get(m)
        if meas is None:
            meas = measures[m] = _Measure()
        meas.direct.insert_sorted([o - bar_list[m], d == 0, next(seq), k, d, chords[k]])
    for m, meas in measures.items():
        lo, hi = np.searchsorted(metas, [bar_list[m], bar_list[m] + lengths_list[m]])
        marks = [x - bar_list[m] for x in metas[lo:hi].tolist()]
        meas.direct.unsorted = not _sorted_after_filling(meas.direct, marks, bar_list[m])
    if end_marker:
        for meas in measures.values():
            meas.direct.asked()
    if voiced:
        for m, meas in measures.items():
            inside = np.searchsorted(metas, [bars[m] + 1, bars[m] + int(lengths[m])])
            _make_voices(meas, bool(inside[1] > inside[0]))
    _make_ties(measures, lengths, seq)
    pieces = []
    shift = 0  # how much later than its barline makeRests has put the measure
    for m in sorted(measures):
        meas = measures[m]
        start, rank = bar_list[m] + shift, 0
        if meas.voices:
            _flatten_unnecessary_voices(meas, seq)
        for container in (meas.voices + [meas.direct]) if meas.voices else (meas.direct,):
            for e in (_in_order(container) if len(container) > 1 else container):
                pieces.append((start + e[OFFSET], e[GRACE], rank, e[GROUP]))
                rank += 1
        if meas.voices or meas.direct.cache is not None:
            bar = int(lengths[m])
            shift += _extent(meas, bar) - bar
        elif meas.direct.reach() > lengths_list[m]:
            shift += meas.direct.reach() - lengths_list[m]
    return pieces
