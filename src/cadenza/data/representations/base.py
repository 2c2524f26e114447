"""The interface every representation implements.

A representation turns one merged piano part (a symusic ``Score`` with one track) into
token ids and back. Encoding is split in two so the expensive part runs in parallel
worker processes before the vocabulary exists:

    pretokens = rep.pretokenize(score)      # in a worker; picklable result
    rep.fit(train_pretokens)                # once, on the training split
    ids = rep.to_ids(pretokens)             # fast, in the parent

A representation saves itself into a run directory and loads back from it alone, so the
vocabulary always travels with the weights.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
from symusic import Score

from ...spec import Spec


class Grammar(ABC):
    """Which tokens may follow a prefix: a small state machine used to mask sampling.

    ``start(prefix_ids)`` returns a state after reading ``prefix_ids``; ``allowed(state)``
    returns a boolean mask over the vocabulary; ``advance(state, token_id)`` returns the
    next state. States must be cheap to copy (tuples / small dataclasses).
    """

    @abstractmethod
    def start(self, prefix_ids: Sequence[int]) -> Any: ...

    @abstractmethod
    def allowed(self, state: Any) -> np.ndarray: ...

    @abstractmethod
    def advance(self, state: Any, token_id: int) -> Any: ...


class Representation(ABC):
    name: ClassVar[str]
    # the options __init__ takes, checked before it runs (see cadenza.data.representations)
    OPTIONS: ClassVar[dict[str, Spec]] = {}
    transferable: ClassVar[bool] = True  # can a fitted one encode another corpus (fine-tuning)?
    reads_tracks: ClassVar[bool] = False  # pretokenize gets the file's piano tracks, not one merged part
    reads_file: ClassVar[bool] = False  # the corpus also hands pretokenize the file's bytes (midi=)
    # a "bar" of a representation timed in seconds (no metre): this many seconds; None: real bars
    seconds_per_bar: ClassVar[float | None] = None
    # a note sounds until a later token ends it (NoteOff), so a sampled piece can leave one hanging
    holds_notes: ClassVar[bool] = False
    longest_note: float | None = None  # beats (seconds when timed in seconds); see limit_notes
    longest_pedal: float | None = None
    shortest_note: float | None = None  # beats: no sampled note ends sooner (with longest_note)

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    def bos_id(self) -> int | None:
        """Token placed before each piece in the prepared data (None: pieces are simply
        concatenated, as the seed notebook does)."""
        return None

    def config_dict(self) -> dict:
        """What identifies this representation's configuration (part of the data cache key)."""
        return {"name": self.name}

    @abstractmethod
    def pretokenize(self, score: Score) -> Any:
        """Vocabulary-independent encoding of one piece (runs in worker processes)."""

    def fit(self, train_pretokens: Sequence[Any]) -> None:
        """Build whatever depends on the training data (vocabulary, BPE merges)."""

    @abstractmethod
    def to_ids(self, pretokens: Any) -> np.ndarray: ...

    def encode(self, score: Score) -> np.ndarray:
        return self.to_ids(self.pretokenize(score))

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> Score:
        """Token ids back to a one-track piano ``Score``; never raises on a valid-grammar
        sequence."""

    def timeline(self, score: Score) -> Score:
        """A read piano score on the time line of this representation's decoded pieces (a
        primer is continued on it): the score itself for beat-grid tokens."""
        return score

    def describe(self, ids: Sequence[int]) -> list[str]:
        """Human-readable token strings (for --verbose and debugging)."""
        return [str(int(i)) for i in ids]

    def limit_notes(self, beats: float | None, pedal: float | None = None, shortest: float | None = None) -> None:
        """No decoded or sampled note longer than ``beats``, no pedal held longer than
        ``pedal`` (the training corpus's longest, from the run's token statistics), no
        sampled note shorter than ``shortest`` (the corpus's shortest but for a few freaks);
        None: no limit."""
        self.longest_note = None if beats is None else float(beats)
        self.longest_pedal = None if pedal is None else float(pedal)
        self.shortest_note = None if shortest is None else float(shortest)

    def grammar(self) -> Grammar | None:
        """Constraint on which tokens may follow which; None when any order decodes."""
        return None

    def transposition_table(self, semitones: int) -> np.ndarray | None:
        """``table[id]`` = id of the token transposed by ``semitones``, or -1 where the
        result does not exist. None when the representation cannot be transposed."""
        return None

    def tempo_table(self, steps: int) -> np.ndarray | None:
        """``table[id]`` = id of the token with its tempo moved ``steps`` bins (clamped to
        the tempo range), other tokens unchanged: a tempo stretch of the same music. None
        when the representation has no tempo tokens."""
        return None

    @abstractmethod
    def save(self, directory: Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> "Representation": ...
