"""The seed notebook's tokens: a note is its pitch name with octave (``E-4``, ``C#5``, in
music21's spelling), notes sounding together form one chord token, the dot-joined normal
order of their pitch classes (``4.9``). Decoding writes one token every half beat, chords
voiced in octave 4, one beat long, velocity 90 (music21's defaults).

Extraction follows what ``music21.converter.parse`` + ``partitionByInstrument`` produce for
a piano file, computed from symusic arrays instead of note objects:

* notes that start within 1/16 beat of each other *and* end together form a chord; notes
  that start together but end at different times land in separate music21 voices and so
  become separate tokens, shorter ones first;
* music21 writes a note that crosses a barline as tied notes, and the notebook counts every
  tied piece as its own token, so a group emits one token per bar it touches.

Unlike the notebook, every non-drum track is kept (the notebook keeps only the first
instrument part, which loses the left hand of files with one track per instrument).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from symusic import Note, Score, Track

from ..errors import CadenzaError
from .base import Representation

_NAMES = ("C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B")
_STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
STEP_BEATS = 0.5
NOTE_BEATS = 1.0
VELOCITY = 90
CHORD_OCTAVE_BASE = 60  # chord tokens are voiced from C4


def pitch_name(midi: int) -> str:
    """music21's default spelling of a MIDI pitch (60 -> 'C4', 63 -> 'E-4')."""
    return f"{_NAMES[midi % 12]}{midi // 12 - 1}"


def parse_pitch_name(name: str) -> int:
    step = _STEPS.get(name[:1])
    if step is None:
        raise ValueError(f"not a pitch name: {name!r}")
    i, alter = 1, 0
    while i < len(name) and name[i] in "#-":
        alter += 1 if name[i] == "#" else -1
        i += 1
    return step + alter + 12 * (int(name[i:]) + 1)


@lru_cache(maxsize=4096)
def chord_token(pitch_classes: frozenset[int]) -> str:
    """music21's ``Chord.normalOrder`` joined with dots; cached per pitch-class set."""
    from music21 import chord  # music21 is the reference for normal order

    pcs = sorted(pitch_classes)
    return ".".join(str(pc) for pc in chord.Chord([60 + pc for pc in pcs]).normalOrder)


def _bar_starts(score: Score, end_tick: int) -> np.ndarray:
    """Tick of every barline up to ``end_tick`` from the score's time signatures (4/4 when
    there are none, as music21 assumes)."""
    sigs = [(ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures]
    if not sigs or sigs[0][0] > 0:
        sigs.insert(0, (0, 4, 4))
    bars: list[int] = []
    for k, (start, num, den) in enumerate(sigs):
        stop = sigs[k + 1][0] if k + 1 < len(sigs) else end_tick + 1
        length = max(1, round(score.tpq * 4 * num / den))
        bars.extend(range(start, max(start, stop), length))
    return np.asarray(bars, dtype=np.int64)


def score_to_seed_tokens(score: Score) -> list[str]:
    notes = [t.notes.numpy() for t in score.tracks if not t.is_drum and len(t.notes)]
    if not notes:
        return []
    time = np.concatenate([n["time"] for n in notes]).astype(np.int64)
    dur = np.concatenate([n["duration"] for n in notes]).astype(np.int64)
    pitch = np.concatenate([n["pitch"] for n in notes]).astype(np.int64)
    order = np.lexsort((pitch, dur, time))
    time, dur, pitch = time[order], dur[order], pitch[order]
    end = time + dur
    tol = score.tpq / 16
    bars = _bar_starts(score, int(end.max()))

    tokens: list[str] = []
    n, i = len(time), 0
    while i < n:
        j = i + 1
        while j < n and time[j] - time[i] <= tol:
            j += 1
        # one onset group [i, j): split into voices by end time, shorter first
        ends = end[i:j]
        for e in np.unique(ends):
            members = pitch[i:j][ends == e]
            if len(members) == 1:
                token = pitch_name(int(members[0]))
            else:
                token = chord_token(frozenset(int(p) % 12 for p in members))
            crossings = np.count_nonzero((bars > time[i]) & (bars < e))
            tokens.extend([token] * (1 + int(crossings)))
        i = j
    return tokens


def _transpose_token(token: str, semitones: int) -> str:
    if token[0].isdigit():
        pcs = frozenset((int(pc) + semitones) % 12 for pc in token.split("."))
        return chord_token(pcs) if len(pcs) > 1 else str(next(iter(pcs)))
    return pitch_name(parse_pitch_name(token) + semitones)


class SeedRepresentation(Representation):
    name = "seed"
    transferable = False  # its vocabulary is its own corpus's note and chord strings
    _FILE = "seed_vocab.json"

    def __init__(self, vocab: Sequence[str] | None = None):
        self.vocab: list[str] = list(vocab or [])
        self._index = {t: i for i, t in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def pretokenize(self, score: Score) -> list[str]:
        return score_to_seed_tokens(score)

    def fit(self, pretokens: Sequence[list[str]]) -> None:
        """The notebook's vocabulary: every distinct token string, sorted."""
        self.vocab = sorted({t for piece in pretokens for t in piece})
        self._index = {t: i for i, t in enumerate(self.vocab)}

    def to_ids(self, pretokens: list[str]) -> np.ndarray:
        """Token strings to ids; strings outside the vocabulary are dropped."""
        index = self._index
        return np.asarray([index[t] for t in pretokens if t in index], dtype=np.int64)

    def describe(self, ids: Sequence[int]) -> list[str]:
        return [self.vocab[int(i)] for i in ids]

    def decode(self, ids: Sequence[int]) -> Score:
        tpq = 480
        score = Score(tpq)
        track = Track("Piano", 0, False)
        step, length = round(STEP_BEATS * tpq), round(NOTE_BEATS * tpq)
        for k, token in enumerate(self.describe(ids)):
            if token[0].isdigit():
                pitches = [CHORD_OCTAVE_BASE + int(pc) for pc in token.split(".")]
            else:
                pitches = [parse_pitch_name(token)]
            for p in pitches:
                if 0 <= p <= 127:
                    track.notes.append(Note(k * step, length, p, VELOCITY))
        score.tracks.append(track)
        return score

    def transposition_table(self, semitones: int) -> np.ndarray:
        table = np.full(self.vocab_size, -1, dtype=np.int64)
        for i, token in enumerate(self.vocab):
            try:
                table[i] = self._index.get(_transpose_token(token, semitones), -1)
            except ValueError:
                pass
        return table

    def save(self, directory: Path) -> None:
        (Path(directory) / self._FILE).write_text(json.dumps({"vocab": self.vocab}))

    @classmethod
    def load(cls, directory: Path) -> "SeedRepresentation":
        path = Path(directory) / cls._FILE
        from ..validate import read_json

        data = read_json(path)
        vocab = data.get("vocab") if isinstance(data, dict) else None
        if not isinstance(vocab, list) or not all(isinstance(t, str) and t for t in vocab):
            raise CadenzaError(f"the seed vocabulary {path} is not a list of token strings")
        return cls(vocab)
