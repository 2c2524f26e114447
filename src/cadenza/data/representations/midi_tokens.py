"""The shared base of the MidiTok representations (remi.py, tsd.py, midilike.py, structured.py).

One merged piano track (program 0) per piece, no program tokens; velocities
(``num_velocities`` bins), durations and onsets on the ``beat_res`` grid; rests, tempos
and time signatures where the tokenizer supports them. Special tokens PAD, BOS, EOS (BOS
separates pieces in the prepared data).

``pretokenize`` gives MidiTok's base ids; ``fit`` optionally trains MidiTok's BPE to
``vocab_size`` tokens; ``to_ids`` applies it. Saved as MidiTok's own JSON plus a small
JSON of the cadenza options. With BPE trained, ``transposition_table`` is None (merged
tokens cannot be transposed token by token) and the grammar checks each BPE token's
whole base sequence (see :mod:`.grammar`).

The sustain pedal: these grid representations have no pedal tokens; the pedal is applied to
the notes when tracks are merged (:func:`~cadenza.data.corpus.pedal.sustain`: a note released
under the pedal lasts until the pedal lifts), so what is heard is kept.

Tempos: 121 log-spaced bins from 15 to 480 bpm, 24 a doubling (a tempo is kept within
1.5 %; 30, 60, 120, 240 bpm exactly), so slow and fast pieces keep their speed (MidiTok's
default, 32 linear bins from 40 to 250, played a 30-bpm piece at 40).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
from miditok import TokenizerConfig, TokSequence
from miditok.midi_tokenizer import MusicTokenizer
from symusic import Note, Score, Track

from ..corpus.pedal import pedal_spans, set_pedals, sustain
from ..corpus.reader import PIANO_HIGH, PIANO_LOW, merge_piano
from ...errors import CadenzaError
from ...files import read_json
from ...spec import Spec
from ...validate import check_miditok_file, check_rep_options
from .base import Grammar, Representation
from .grammar import BPEGrammar

DEFAULT_BEAT_RES = {(0, 4): 8, (4, 12): 4}
TEMPO_RANGE, TEMPOS_PER_DOUBLING = (15, 480), 24
NUM_TEMPOS = 5 * TEMPOS_PER_DOUBLING + 1  # 15 * 2**5 = 480
SPECIAL_TOKENS = ["PAD", "BOS", "EOS"]
_PITCH_TYPES = ("Pitch", "NoteOn", "NoteOff", "PitchDrum", "DrumOn", "DrumOff")


class _TrainingIterator:
    """Base ids of the training pieces as MidiTok's byte strings (what its own
    ``TokTrainingIterator`` yields), split per bar as configured; each piece read when it
    is reached (the pieces may be on disk: :mod:`cadenza.data.spool`)."""

    def __init__(self, tokenizer: MusicTokenizer, pieces: Sequence[np.ndarray]) -> None:
        self.tokenizer, self.pieces = tokenizer, pieces
        # spooled pieces tell their lengths without being read (MidiTok asks len() first)
        lengths = pieces.lengths() if hasattr(pieces, "lengths") else map(len, pieces)
        self._count = sum(1 for n in lengths if n)

    def __len__(self) -> int:
        return self._count

    def __iter__(self):
        for ids in self.pieces:
            if not len(ids):
                continue
            seq = TokSequence(ids=[int(i) for i in ids])
            self.tokenizer.complete_sequence(seq)
            if self.tokenizer.config.encode_ids_split == "bar":
                chunks = [s.ids for s in seq.split_per_bars() if len(s)]
            else:
                chunks = [seq.ids]
            yield [self.tokenizer._ids_to_bytes(c, as_one_str=True) for c in chunks]


def _clip_durations(track: Track, longest: int | None) -> None:
    """Notes of ``track`` ended ``longest`` ticks after their onset at the latest (a note left
    sounding by a sequence that never ended it: no drone to the end of the piece)."""
    if longest is None or not len(track.notes):
        return
    cols = track.notes.numpy()
    if cols["duration"].max() > longest:
        cols["duration"] = np.minimum(cols["duration"], max(1, longest))
        track.notes = Note.from_numpy(**cols, ttype="tick")


class MidiTokRepresentation(Representation):
    """A MidiTok tokenizer behind cadenza's :class:`Representation` interface."""

    name: ClassVar[str] = "miditok"
    tokenizer_class: ClassVar[type[MusicTokenizer]]  # set by each subclass
    grammar_class: ClassVar[type]
    supports: ClassVar[frozenset[str]] = frozenset({"rests", "tempos", "time_signatures"})
    pedals: str = "sustain"  # or "tokens": Pedal / PedalOff tokens; "ignore": saved before pedal support
    TOKENIZER_FILE = "miditok_tokenizer.json"
    OPTIONS_FILE = "cadenza_tokens.json"
    # beat_res is also held to a grid of a size cadenza builds (validate.check_beat_res)
    OPTIONS: ClassVar[dict[str, Spec]] = {
        "beat_res": Spec(list), "num_velocities": Spec(int, 1, 127), "use_rests": Spec(bool, none=True),
        "use_tempos": Spec(bool, none=True), "use_time_signatures": Spec(bool, none=True),
        "vocab_size": Spec(int, 1, 1 << 20, none=True)}

    def __init__(self, beat_res: dict | Sequence | None = None, num_velocities: int = 16,
                 use_rests: bool | None = None, use_tempos: bool | None = None,
                 use_time_signatures: bool | None = None, vocab_size: int | None = None,
                 *, _tokenizer: MusicTokenizer | None = None) -> None:
        if beat_res is None:
            beat_res = DEFAULT_BEAT_RES
        if not isinstance(beat_res, dict):  # JSON form: [[start, end, res], ...]
            beat_res = {(int(a), int(b)): int(r) for a, b, r in beat_res}
        self.beat_res = {(int(a), int(b)): int(r) for (a, b), r in beat_res.items()}
        self.num_velocities = int(num_velocities)
        self.use_rests = self._supported("rests", use_rests)
        self.use_tempos = self._supported("tempos", use_tempos)
        self.use_time_signatures = self._supported("time_signatures", use_time_signatures)
        self.OPTIONS["vocab_size"].check("vocab_size", vocab_size)
        self.bpe_vocab_size = None if vocab_size is None else int(vocab_size)
        self.tokenizer = _tokenizer if _tokenizer is not None else self.tokenizer_class(
            self._tokenizer_config())
        config = self.tokenizer.config  # what MidiTok actually enabled
        self.use_rests, self.use_tempos = bool(config.use_rests), bool(config.use_tempos)
        self.use_time_signatures = bool(config.use_time_signatures)
        self._refresh()
        self._check_bpe_size()

    def _supported(self, what: str, value: bool | None) -> bool:
        if value and what not in self.supports:
            raise CadenzaError(f"the {self.name} representation has no {what.replace('_', ' ')}")
        return (what in self.supports) if value is None else bool(value)

    def _tokenizer_config(self) -> TokenizerConfig:
        return TokenizerConfig(
            pitch_range=(PIANO_LOW, PIANO_HIGH), beat_res=self.beat_res, num_velocities=self.num_velocities,
            special_tokens=list(SPECIAL_TOKENS), use_velocities=True,
            use_rests=self.use_rests, use_tempos=self.use_tempos,
            use_time_signatures=self.use_time_signatures, use_programs=False,
            use_pitchdrum_tokens=False, use_chords=False,
            use_sustain_pedals=self.pedals == "tokens", sustain_pedal_duration=False,
            tempo_range=TEMPO_RANGE, num_tempos=NUM_TEMPOS, log_tempos=True,
            use_pitch_bends=False, use_control_changes=False)

    def _refresh(self) -> None:
        """Tables derived from the tokenizer: each id's base-id expansion, BOS id."""
        tk = self.tokenizer
        self._base_size = len(tk.vocab)
        if tk.is_trained:
            expansions: list[tuple[int, ...]] = [()] * len(tk)
            for byte_, i in tk.vocab_model.items():
                expansions[i] = tuple(tk.vocab[t] for t in tk._vocab_learned_bytes_to_tokens[byte_])
        else:
            expansions = [(i,) for i in range(self._base_size)]
        self._expansions = expansions
        single = {e[0]: i for i, e in enumerate(expansions) if len(e) == 1}
        self._special_ids = {single[tk.vocab[f"{t}_None"]] for t in SPECIAL_TOKENS}
        self._bos_id = single[tk.vocab["BOS_None"]]
        self._grammar: Grammar | None = None

    # -- configuration ----------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def bos_id(self) -> int:
        return self._bos_id

    @property
    def is_trained(self) -> bool:
        return self.tokenizer.is_trained

    def options(self) -> dict:
        return {"beat_res": [[a, b, r] for (a, b), r in sorted(self.beat_res.items())],
                "num_velocities": self.num_velocities, "use_rests": self.use_rests,
                "use_tempos": self.use_tempos, "use_time_signatures": self.use_time_signatures,
                "vocab_size": self.bpe_vocab_size}

    def config_dict(self) -> dict:
        config = self.tokenizer.config
        return {"name": self.name, "tokenizer": self.tokenizer_class.__name__, "pedals": self.pedals,
                "tempos": [*config.tempo_range, config.num_tempos, config.log_tempos], **self.options()}

    # -- encoding -------------------------------------------------------------------
    def piano_part(self, score: Score) -> Score:
        """The one-track score the tokens hold: merged, the pedal applied or kept."""
        merged = merge_piano(score)
        if self.pedals != "sustain" or not (len(merged.tracks[0].pedals) or len(merged.tracks[0].controls)):
            return merged  # nothing to apply (sustain would copy the score to change nothing)
        return sustain(merged)

    def pretokenize(self, score: Score) -> np.ndarray:
        merged = self.piano_part(score)
        if not len(merged.tracks[0].notes):
            return np.zeros(0, dtype=np.int32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seqs = self.tokenizer.encode(merged, encode_ids=False)
        if isinstance(seqs, TokSequence):
            seqs = [seqs]
        ids = [i for s in seqs for i in s.ids]
        return np.asarray(ids, dtype=np.int32)

    def fit(self, train_pretokens: Sequence[Any]) -> None:
        """Train MidiTok's BPE on the training pieces when ``vocab_size`` is set."""
        if self.bpe_vocab_size is None:
            return
        self._check_bpe_size()
        iterator = _TrainingIterator(self.tokenizer, train_pretokens)
        if not len(iterator):
            raise CadenzaError("no training pieces to learn BPE from")
        self.tokenizer.train(vocab_size=self.bpe_vocab_size, model="BPE", iterator=iterator)
        self._refresh()

    def _check_bpe_size(self) -> None:
        """Refused when the tokenizer is made, before any file is read (or a folder created)."""
        if self.bpe_vocab_size is not None and self.bpe_vocab_size <= self._base_size:
            raise CadenzaError(
                f"vocab_size {self.bpe_vocab_size} must exceed the {self._base_size} base "
                f"tokens of {self.name}")

    def to_ids(self, pretokens: Any) -> np.ndarray:
        if not self.is_trained or not len(pretokens):
            return np.asarray(pretokens, dtype=np.int64)
        seq = TokSequence(ids=[int(i) for i in pretokens])
        self.tokenizer.complete_sequence(seq)
        self.tokenizer.encode_token_ids(seq)
        return np.asarray(seq.ids, dtype=np.int64)

    def base_ids(self, ids: Sequence[int]) -> list[int]:
        """Base ids of ``ids`` (BPE expanded), dropping special and unknown ids."""
        n = len(self._expansions)
        out: list[int] = []
        for i in ids:
            i = int(i)
            if 0 <= i < n and i not in self._special_ids:
                out.extend(self._expansions[i])
        return out

    def describe(self, ids: Sequence[int]) -> list[str]:
        tk, n = self.tokenizer, len(self._expansions)
        return ["+".join(tk[b] for b in self._expansions[int(i)]) if 0 <= int(i) < n
                else f"<unknown {int(i)}>" for i in ids]

    def _complete(self, base: list[int]) -> list[int]:
        """Base ids made decodable as a whole (hook for MIDI-Like's sounding notes)."""
        return base

    def decode(self, ids: Sequence[int]) -> Score:
        base = self._complete(self.base_ids(ids))
        score = None
        if base:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    score = self.tokenizer.decode([TokSequence(ids=base)])
            except Exception:  # garbage in: MidiTok skips most errors, not all
                score = None
        if score is None:
            score = Score(self.tokenizer.time_division)
        track = Track("Piano", 0, False)
        for t in score.tracks:
            track.notes.extend(t.notes)
        track.notes.sort()
        _clip_durations(track, None if self.longest_note is None else round(self.longest_note * score.tpq))
        starts, ends = pedal_spans(score.tracks)
        if self.longest_pedal is not None:  # a pedal never lifted: no longer than the corpus's longest
            ends = np.minimum(ends, starts + max(1, round(self.longest_pedal * score.tpq)))
        set_pedals(track, starts, ends)
        score.tracks = [track]
        return score

    # -- constraints ------------------------------------------------------------------
    def limit_notes(self, beats: float | None, pedal: float | None = None, shortest: float | None = None) -> None:
        super().limit_notes(beats, pedal, shortest)
        self._grammar = None  # made again with the limits

    def base_grammar(self):
        """The grammar of the base tokens (notes and pedals no longer than :attr:`longest_note`
        and :attr:`longest_pedal`, notes no shorter than :attr:`shortest_note`, where the
        tokens can hold them: see :class:`~.grammar.MIDILikeGrammar`)."""
        if not self.holds_notes or self.longest_note is None:
            return self.grammar_class(self.tokenizer)
        ticks = [round(b * self.tokenizer.time_division) for b in (self.longest_note, self.longest_pedal)
                 if b is not None]
        shortest = None if self.shortest_note is None else round(self.shortest_note * self.tokenizer.time_division)
        return self.grammar_class(self.tokenizer, *ticks, shortest=shortest)

    def grammar(self) -> Grammar:
        """Base-token grammar; with BPE, lifted onto BPE tokens (each candidate's whole
        base sequence must be valid from the current state)."""
        if self._grammar is None:
            base = self.base_grammar()
            self._grammar = BPEGrammar(base, self._expansions) if self.is_trained else base
        return self._grammar

    def transposition_table(self, semitones: int) -> np.ndarray | None:
        """Pitch-carrying tokens moved by ``semitones`` (-1 outside the pitch range),
        other tokens unchanged. None once BPE is trained: a merged token may mix pitches
        and other tokens, and its transposed sequence need not be one BPE token (see
        :meth:`transpose_ids`)."""
        return None if self.is_trained else self._base_transposition(semitones)

    def _base_transposition(self, semitones: int) -> np.ndarray:
        vocab = self.tokenizer.vocab
        table = np.arange(self._base_size, dtype=np.int64)
        for token, i in vocab.items():
            kind, _, value = token.partition("_")
            if kind in _PITCH_TYPES:
                table[i] = vocab.get(f"{kind}_{int(value) + semitones}", -1)
        return table

    def transpose_ids(self, ids: np.ndarray, semitones: int) -> np.ndarray | None:
        """BPE ids of the same music ``semitones`` higher: expanded to base tokens,
        transposed, merged again (the result may be longer or shorter); pieces stay apart
        at their BOS tokens. None when a pitch would leave the range."""
        table = self._base_transposition(semitones)
        out: list[np.ndarray] = []
        bos = np.flatnonzero(np.asarray(ids) == self._bos_id)
        for k, segment in enumerate(np.split(np.asarray(ids), bos)):
            body = segment[1:] if k else segment  # every segment after the first starts with BOS
            moved = table[np.asarray(self.base_ids(body), dtype=np.int64)]
            if (moved < 0).any():
                return None
            if k:
                out.append(np.asarray([self._bos_id]))
            out.append(self.to_ids(moved))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def tempo_table(self, steps: int) -> np.ndarray | None:
        """Tempo tokens moved ``steps`` bins up or down (clamped); None without tempo
        tokens or once BPE is trained (merged tokens may hold a tempo)."""
        vocab = self.tokenizer.vocab
        tempos = sorted((float(t.partition("_")[2]), i) for t, i in vocab.items() if t.startswith("Tempo_"))
        if self.is_trained or not tempos:
            return None
        table = np.arange(self._base_size, dtype=np.int64)
        for k, (_, i) in enumerate(tempos):
            table[i] = tempos[min(len(tempos) - 1, max(0, k + steps))][1]
        return table

    # -- persistence ------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(directory / self.TOKENIZER_FILE)
        (directory / self.OPTIONS_FILE).write_text(
            json.dumps({"name": self.name, **self.options(), "pedals": self.pedals}, indent=1))

    @classmethod
    def load(cls, directory: Path) -> "MidiTokRepresentation":
        directory = Path(directory)
        options_path = directory / cls.OPTIONS_FILE
        options = read_json(options_path)
        if not isinstance(options, dict) or options.pop("name", None) != cls.name:
            raise CadenzaError(f"{options_path}: name must be {cls.name!r}")
        # a tokenizer saved before pedal support read notes as written: it keeps doing so
        pedals = options.pop("pedals", "ignore" if cls.pedals == "sustain" else cls.pedals)
        if pedals not in ({"sustain", "ignore"} if cls.pedals == "sustain" else {cls.pedals}):
            raise CadenzaError(f"{options_path}: pedals must not be {str(pedals)[:40]!r}")
        check_rep_options(cls.name, options, options_path, prefix="")
        path = directory / cls.TOKENIZER_FILE
        check_miditok_file(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tokenizer = cls.tokenizer_class(params=path)
            rep = cls(**options, _tokenizer=tokenizer)
        except CadenzaError:
            raise
        except Exception as exc:
            raise CadenzaError(f"cannot load the MidiTok tokenizer {path}: {exc}") from None
        if rep.bpe_vocab_size is not None and not rep.is_trained:
            raise CadenzaError(f"the MidiTok tokenizer {path} has lost its BPE model")
        rep.pedals = pedals
        return rep

