"""The seed notebook's tokens: a note is its pitch name with octave (``E-4``, ``C#5``, in
music21's spelling), notes sounding together form one chord token, the dot-joined normal
order of their pitch classes (``4.9``). Decoding writes one token every half beat, chords
voiced in octave 4, one beat long, velocity 90 (music21's defaults).

Extraction gives the token list the notebook's music21 loop gives, computed from symusic
arrays (:mod:`.music21_replica` reproduces music21's MIDI import: note-off pairing, chord
grouping per track, quantization, ties at barlines, the track order) and, when the file's
bytes are given, from the tracks, event order and marks music21 reads there and symusic
does not keep (:mod:`.midi_parts`); chord names come from a table of all 4095 pitch-class
sets built once at import, without music21.

Unlike the notebook, every non-drum track is kept: the notebook keeps only the first part
of ``partitionByInstrument``, which loses any track with another instrument name, and any
track without a program change or name (the left hand of the ASAP Bach scores).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from symusic import Note, Score, Track

from ..errors import CadenzaError
from ..data.representations.base import Representation
from .music21_replica import CHORD_NAMES, notebook_tokens, pitch_name

_STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
STEP_BEATS = 0.5
NOTE_BEATS = 1.0
VELOCITY = 90
CHORD_OCTAVE_BASE = 60  # chord tokens are voiced from C4


def parse_pitch_name(name: str) -> int:
    step = _STEPS.get(name[:1])
    if step is None:
        raise ValueError(f"not a pitch name: {name!r}")
    i, alter = 1, 0
    while i < len(name) and name[i] in "#-":
        alter += 1 if name[i] == "#" else -1
        i += 1
    return step + alter + 12 * (int(name[i:]) + 1)


def chord_token(pitch_classes: frozenset[int]) -> str:
    """music21's ``Chord.normalOrder`` joined with dots, from the table."""
    mask = 0
    for pc in pitch_classes:
        mask |= 1 << (pc % 12)
    return CHORD_NAMES[mask]


def score_to_seed_tokens(score: Score, midi: bytes | None = None) -> list[str]:
    """The notebook's tokens for ``score``'s non-drum tracks; ``midi``: the bytes of the
    file ``score`` was read from (music21 reads some things symusic does not keep)."""
    return notebook_tokens(score, midi)


def _transpose_token(token: str, semitones: int) -> str:
    if token[0].isdigit():
        pcs = frozenset((int(pc) + semitones) % 12 for pc in token.split("."))
        return chord_token(pcs) if len(pcs) > 1 else str(next(iter(pcs)))
    return pitch_name(parse_pitch_name(token) + semitones)


class SeedRepresentation(Representation):
    name = "seed"
    transferable = False  # its vocabulary is its own corpus's note and chord strings
    reads_tracks = True  # music21 groups chords and places bars track by track
    reads_file = True  # and reads tracks, note-off order and marks from the file itself
    _FILE = "seed_vocab.json"

    def __init__(self, vocab: Sequence[str] | None = None):
        self.vocab: list[str] = list(vocab or [])
        self._index = {t: i for i, t in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def config_dict(self) -> dict:
        # tokens as music21 10 reads them; the revision renews prepared caches when the
        # reproduction changes (2: note-offs of overlapping notes, end-of-part marks;
        # 3: which measures makeMeasures leaves sorted, POP909 766; 4: the file's own
        # tracks, note-off order and marks, see midi_parts)
        return {"name": self.name, "extraction": "music21-10", "revision": 4}

    def pretokenize(self, score: Score, midi: bytes | None = None) -> list[str]:
        return score_to_seed_tokens(score, midi)

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
        from ..files import read_json

        data = read_json(path)
        vocab = data.get("vocab") if isinstance(data, dict) else None
        if not isinstance(vocab, list) or not all(isinstance(t, str) and t for t in vocab):
            raise CadenzaError(f"the seed vocabulary {path} is not a list of token strings")
        return cls(vocab)
