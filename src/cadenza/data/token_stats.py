"""What a run's tokens mean to generation, and what its training corpus did with them.

:class:`TokenKinds` reads each token id of a representation as the base tokens it stands
for (``Bar_None``, ``Tempo_106.91``, ``TimeSig_3/4``; a BPE token stands for several), so
generation can count bars and follow the tempo and metre in force token by token.

:func:`token_stats` summarises the training split once, at training time; the run keeps it
as ``token_stats.json`` (see :mod:`cadenza.rundir`)::

    seen                       sorted ids that occur in training (transposed copies too)
    tempo_changes_per_piece    mean number of changes to another tempo within a piece
    pieces_changing_tempo      the share of pieces with such a change
    timesig_changes_per_piece  the same two for the time signature
    pieces_changing_timesig
    max_tokens_per_bar         the most tokens one bar takes (None without Bar tokens)
    p99_tokens_per_bar         99 % of bars take at most this many
    longest_note_beats         the longest decoded note, in beats (seconds for a representation
                               timed in seconds), where a token ends a note (MIDI-Like's NoteOff;
                               None for the others): no generated note is longer
    longest_pedal_beats        the same for the sustain pedal (None without pedal tokens)
    shortest_note_beats        the decoded notes' 0.1th-percentile duration, where a token ends
                               a note: no generated note is shorter (None for the others)
    pieces                     how many pieces were counted

The maximum is often one freak bar (POP909: 4,435 tokens where 99 % of bars take at most
217), so generation caps a bar at a multiple of the 99th percentile.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

BAR = "Bar_None"
TEMPO, TIMESIG = "Tempo", "TimeSig"


class TokenKinds:
    """Per token id: the base tokens it stands for, as (kind, value) pairs."""

    def __init__(self, rep) -> None:
        self.size = rep.vocab_size
        self.bos_id = rep.bos_id
        words = rep.describe(range(self.size))
        self.parts = [[tuple(w.partition("_")[::2]) for w in word.split("+")] for word in words]
        self.bar_id = words.index(BAR) if BAR in words else None
        self._values: dict[str, list[tuple[str, ...]]] = {}

    @cached_property
    def bars(self) -> np.ndarray | None:
        """Bar tokens in each token (None: the representation has no Bar tokens)."""
        return None if self.bar_id is None else self.count("Bar")

    def count(self, kind: str) -> np.ndarray:
        """Per token, how many ``kind`` base tokens it stands for."""
        return np.array([len(vs) for vs in self.values(kind)], dtype=np.int64)

    def values(self, kind: str) -> list[tuple[str, ...]]:
        """Per token, the values of its ``kind`` base tokens (``()`` for most tokens)."""
        if kind not in self._values:
            self._values[kind] = [tuple(v for k, v in p if k == kind) for p in self.parts]
        return self._values[kind]

    def numbers(self, kind: str, read=int) -> np.ndarray:
        """Per token that is one ``kind`` event alone, its value as ``read`` makes it a number;
        -1 for every other token."""
        return np.array([read(vs[0]) if len(vs) == 1 and len(p) == 1 else -1
                         for vs, p in zip(self.values(kind), self.parts)], dtype=np.int64)

    def in_force(self, kind: str, ids) -> str | None:
        """The ``kind`` value in force after ``ids`` (a BOS starts a new piece), or None."""
        values = self.values(kind)
        for token in reversed([int(i) for i in ids]):
            if token == self.bos_id:
                return None
            if values[token]:
                return values[token][-1]
        return None

    def codes(self, kind: str) -> np.ndarray:
        """Per token, a number for the last ``kind`` value it sets (-1: none)."""
        values = self.values(kind)
        index = {v: n for n, v in enumerate(sorted({v for vs in values for v in vs}))}
        return np.array([index[vs[-1]] if vs else -1 for vs in values], dtype=np.int64)


def _changes(pieces: list[np.ndarray], codes: np.ndarray) -> np.ndarray:
    """Per piece, the number of changes to another value (setting the first one is none)."""
    counts = []
    for piece in pieces:
        set_to = codes[piece]
        counts.append(np.count_nonzero(np.diff(set_to[set_to >= 0])))
    return np.asarray(counts, dtype=np.int64)


def _bar_sizes(pieces: list[np.ndarray], bars: np.ndarray | None) -> np.ndarray:
    """The number of tokens of every bar of every piece (empty without Bar tokens)."""
    if bars is None:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.bincount(np.cumsum(bars[p])) for p in pieces if len(p)] or [np.zeros(0, np.int64)])


def _summary(name: str, changes: np.ndarray) -> dict:
    return {f"{name}_changes_per_piece": float(changes.mean()) if len(changes) else 0.0,
            f"pieces_changing_{name}": float((changes > 0).mean()) if len(changes) else 0.0}


SHORTEST_PERCENTILE = 0.1  # a few notes shorter than this (0.04 % of ASAP's Bach at 10 ms) are freaks


def held_lengths(pieces: list[np.ndarray], rep) -> dict[str, float | None]:
    """The longest note, the longest pedal and the shortest note (the
    :data:`SHORTEST_PERCENTILE` percentile, a duration on the clock) of the decoded
    ``pieces``, in beats, under their token_stats keys; None where durations are tokens of
    their own (they cannot hang) or there are none."""
    keys = ("longest_note_beats", "longest_pedal_beats", "shortest_note_beats")
    if not getattr(rep, "holds_notes", False):
        return dict.fromkeys(keys)
    notes, pedals = [np.zeros(0)], [0.0]
    for piece in pieces:
        score = rep.decode(piece)
        for track in score.tracks:
            notes.append(track.notes.numpy()["duration"] / score.tpq)
            pedals += [float(track.pedals.numpy()["duration"].max()) / score.tpq] if len(track.pedals) else []
    notes = np.concatenate(notes)
    if not len(notes):
        return {**dict.fromkeys(keys), "longest_pedal_beats": max(pedals) or None}
    shortest = float(np.percentile(notes, SHORTEST_PERCENTILE, method="lower"))
    return dict(zip(keys, (float(notes.max()) or None, max(pedals) or None, shortest or None)))


def token_stats(pieces: list[np.ndarray], rep, tables: list[np.ndarray] | None = None) -> dict:
    """Statistics of the training split's ``pieces`` (token ids, one array per piece) that
    generation uses; ``tables`` are the transposition tables of augmentation (``table[id]``,
    -1 where the transposed token does not exist): the tokens they produce count as seen."""
    kinds = TokenKinds(rep)
    pieces = [np.asarray(p, dtype=np.int64) for p in pieces]
    seen = np.zeros(kinds.size, dtype=bool)
    for piece in pieces:
        seen[piece] = True
    ids = np.flatnonzero(seen)
    for table in tables or []:
        moved = np.asarray(table)[ids]
        seen[moved[moved >= 0]] = True
    sizes = _bar_sizes(pieces, kinds.bars)
    return {"seen": np.flatnonzero(seen).tolist(),
            **_summary("tempo", _changes(pieces, kinds.codes(TEMPO))),
            **_summary("timesig", _changes(pieces, kinds.codes(TIMESIG))),
            "max_tokens_per_bar": int(sizes.max()) if len(sizes) else None,
            "p99_tokens_per_bar": int(np.ceil(np.percentile(sizes, 99))) if len(sizes) else None,
            **held_lengths(pieces, rep),
            "pieces": len(pieces)}
