"""Token grammars for the MidiTok representations: small state machines that mask the
tokens which cannot follow a prefix, so that constrained sampling only produces
sequences MidiTok decodes without errors (``tokenizer.tokens_errors(...) == 0``).

Every grammar works on *base* (pre-BPE) token ids; :class:`BPEGrammar` lifts one onto a
trained BPE vocabulary by checking the whole base sequence of each candidate token.
States are hashable tuples; masks are cached per state (the number of distinct states is
small: a phase, a position in the bar, a time signature; MIDILike adds the set of sounding
pitches, handled without the cache, and with a run's longest note the time: see
:class:`MIDILikeGrammar`, whose ``redirect`` also says where the probability of a forbidden
key event goes).

Special tokens (PAD, BOS, EOS) are never allowed; BOS in a prefix resets the state.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .base import Grammar

_SPECIAL = ("PAD", "BOS", "EOS", "MASK")


class _TokenGrammar(Grammar):
    """Shared machinery: token types/values per base id, per-type masks, a mask cache."""

    #: phase -> token types that may follow it (refined by ``_mask``)
    FOLLOW: dict[str, tuple[str, ...]] = {}

    def __init__(self, tokenizer) -> None:
        vocab = tokenizer.vocab  # base vocabulary: token string -> id
        self.size = len(vocab)
        self.types: list[str] = [""] * self.size
        self.values: list[str] = [""] * self.size
        for token, i in vocab.items():
            kind, _, value = token.partition("_")
            self.types[i], self.values[i] = kind, value
        self.type_mask: dict[str, np.ndarray] = {}
        for i, kind in enumerate(self.types):
            self.type_mask.setdefault(kind, np.zeros(self.size, dtype=bool))[i] = True
        self.pos_per_beat = tokenizer.config.max_num_pos_per_beat
        self._cache: dict[Any, np.ndarray] = {}

    def _types(self, *kinds: str) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        for kind in kinds:
            if kind in self.type_mask and kind not in _SPECIAL:
                mask |= self.type_mask[kind]
        return mask

    # -- Grammar interface -------------------------------------------------------
    def initial(self) -> tuple:
        return ("start",)

    def start(self, prefix_ids: Sequence[int]) -> Any:
        state = self.initial()
        for token_id in prefix_ids:
            state = self.advance(state, int(token_id))
        return state

    def allowed(self, state: Any) -> np.ndarray:
        mask = self._cache.get(state)
        if mask is None:
            mask = self._mask(state)
            if not mask.any():  # never leave the sampler without a choice
                mask = self._types(*self.FOLLOW["start"])
            mask.setflags(write=False)
            self._cache[state] = mask
        return mask

    def advance(self, state: Any, token_id: int) -> Any:
        if not 0 <= token_id < self.size:
            return state
        kind = self.types[token_id]
        if kind == "BOS":
            return self.initial()
        if kind in _SPECIAL:
            return state
        return self._advance(state, kind, self.values[token_id], token_id)

    # -- per-representation rules -----------------------------------------------
    def _mask(self, state: tuple) -> np.ndarray:
        return self._types(*self.FOLLOW[state[0]])

    def _advance(self, state: tuple, kind: str, value: str, token_id: int) -> tuple:
        return (kind,) + state[1:]


class REMIGrammar(_TokenGrammar):
    """Bar [TimeSig] then, inside the bar, Position tokens strictly increasing (and
    within the bar of the current time signature), each followed by [Tempo] and notes
    Pitch Velocity Duration; Rest tokens between notes. After a Rest the next Position
    may be any position of its bar (the grammar does not track note ends in ticks).

    State: (phase, position in bar or -1, positions per bar).
    """

    FOLLOW = {
        "start": ("Bar", "Rest"),
        "Bar": ("TimeSig",),  # replaced below when time signatures are off
        "TimeSig": ("Position", "Bar", "Rest"),
        "Position": ("Pitch", "Tempo"),
        "Tempo": ("Pitch", "Position", "Bar", "Rest"),  # a piece that starts with a rest
        "Pitch": ("Velocity",),
        "Velocity": ("Duration",),
        "Duration": ("Pitch", "Position", "Bar", "Rest"),
        "Rest": ("Rest", "Position", "Bar"),
    }

    def __init__(self, tokenizer) -> None:
        super().__init__(tokenizer)
        self.FOLLOW = dict(self.FOLLOW)
        if "TimeSig" not in self.type_mask:
            self.FOLLOW["Bar"] = ("Position", "Bar", "Rest")
        self.position_ids = np.flatnonzero(self.type_mask["Position"])
        self.position_values = np.array([int(self.values[i]) for i in self.position_ids])

    def initial(self) -> tuple:
        return ("start", -1, 4 * self.pos_per_beat)

    def _mask(self, state: tuple) -> np.ndarray:
        phase, pos, per_bar = state
        mask = self._types(*self.FOLLOW[phase])
        if mask[self.position_ids].any():
            lowest = -1 if phase == "Rest" else pos
            keep = (self.position_values > lowest) & (self.position_values < per_bar)
            mask[self.position_ids[~keep]] = False
        return mask

    def _advance(self, state: tuple, kind: str, value: str, token_id: int) -> tuple:
        _, pos, per_bar = state
        if kind == "Bar":
            return ("Bar", -1, per_bar)
        if kind == "TimeSig":
            return ("TimeSig", -1, int(value.split("/")[0]) * self.pos_per_beat)
        if kind == "Position":
            return ("Position", int(value), per_bar)
        return (kind, pos, per_bar)


class TSDGrammar(_TokenGrammar):
    """Notes Pitch Velocity Duration; TimeShift / Rest between notes; Tempo and TimeSig
    after a time move (MidiTok's type graph without special tokens)."""

    FOLLOW = {
        "start": ("TimeSig", "Tempo", "Pitch", "TimeShift", "Rest"),
        "TimeSig": ("Tempo", "Pitch", "TimeShift", "Rest"),
        "Tempo": ("Pitch", "TimeShift", "Rest"),
        "Pitch": ("Velocity",),
        "Velocity": ("Duration",),
        "Duration": ("Pitch", "TimeShift", "Rest"),
        "TimeShift": ("TimeSig", "Tempo", "Pitch", "TimeShift"),
        "Rest": ("Rest", "TimeSig", "Tempo", "Pitch", "TimeShift"),
    }


class StructuredGrammar(_TokenGrammar):
    """The fixed cycle Pitch Velocity Duration TimeShift (a piece starts with either a
    TimeShift or a Pitch)."""

    FOLLOW = {
        "start": ("TimeShift", "Pitch"),
        "Pitch": ("Velocity",),
        "Velocity": ("Duration",),
        "Duration": ("TimeShift",),
        "TimeShift": ("Pitch",),
    }


class MIDILikeGrammar(_TokenGrammar):
    """NoteOn Velocity; NoteOff only for a sounding pitch, NoteOn only for a silent one;
    Rest only when nothing sounds; TimeShift / Tempo / TimeSig as in MidiTok's graph.

    With ``longest`` (ticks of the token clock: the longest note of the training corpus) no
    note outlives it: a time move that would carry a sounding note past it is masked, and a
    note that has reached it must be ended (its NoteOff is the only choice wherever a NoteOff
    may come). A model that forgot a note it struck long ago (its NoteOn is out of the
    context it reads) would otherwise leave it sounding to the end of the piece. With
    ``shortest`` too (ticks) no note is ended sooner: its NoteOff is masked until then (a
    model unsure which keys sound releases a key it has just struck, a 10 ms note no
    pianist plays).

    State: (phase, frozenset of sounding (pitch, onset tick), now in ticks); without
    ``longest`` time is not counted (onsets and now stay 0, so states repeat and masks cache).
    A sequence cut while notes sound has unended notes: :meth:`closing` gives the tokens that
    end them.
    """

    FOLLOW = {
        "start": ("TimeSig", "Tempo", "NoteOn", "TimeShift", "Rest"),
        "TimeSig": ("Tempo", "NoteOn", "TimeShift", "Rest", "NoteOff"),
        "Tempo": ("NoteOn", "TimeShift", "Rest", "NoteOff"),
        "NoteOn": ("Velocity",),
        "Velocity": ("NoteOn", "TimeShift"),
        "TimeShift": ("TimeSig", "Tempo", "NoteOn", "NoteOff", "TimeShift"),
        "NoteOff": ("NoteOn", "NoteOff", "TimeShift", "Rest"),
        "Rest": ("Rest", "TimeSig", "Tempo", "NoteOn", "TimeShift"),
    }

    def __init__(self, tokenizer, longest: int | None = None, *, shortest: int | None = None) -> None:
        super().__init__(tokenizer)
        self.on_id = {int(self.values[i]): i for i in np.flatnonzero(self.type_mask["NoteOn"])}
        self.off_id = {int(self.values[i]): i for i in np.flatnonzero(self.type_mask["NoteOff"])}
        self.ticks = np.zeros(self.size, dtype=np.int64)  # how far each TimeShift / Rest moves time
        for kind in ("TimeShift", "Rest"):
            for i in np.flatnonzero(self.type_mask.get(kind, np.zeros(self.size, dtype=bool))):
                self.ticks[i] = tokenizer._time_token_to_ticks(self.values[i], tokenizer.time_division)
        shifts = np.flatnonzero(self.type_mask["TimeShift"])
        self.shift_id = int(shifts[np.argmin(self.ticks[shifts])])
        self.longest = None if longest is None else max(int(longest), int(self.ticks[self.shift_id]))
        self.shortest = None if longest is None or shortest is None else min(int(shortest), self.longest)

    def initial(self) -> tuple:
        return ("start", frozenset(), 0)

    def allowed(self, state: Any) -> np.ndarray:
        phase, sounding, now = state[:3]
        key = (phase, bool(sounding))
        mask = self._cache.get(key)
        if mask is None:
            mask = self._types(*self.FOLLOW[phase])
            mask[list(self.off_id.values())] = False
            if sounding:
                mask &= ~self.type_mask.get("Rest", np.zeros(self.size, dtype=bool))
            mask.setflags(write=False)
            self._cache[key] = mask
        if sounding:
            mask = mask.copy()
            may_off = "NoteOff" in self.FOLLOW[phase]
            for pitch, onset in sounding:
                mask[self.on_id[pitch]] = False
                if may_off:
                    mask[self.off_id[pitch]] = not self.shortest or now - onset >= self.shortest
            if self.longest is not None:
                mask = self._within_longest(mask, sounding, now, may_off)
            if not mask.any():  # all pitches sounding right after a Velocity
                mask[self.shift_id] = True
        return mask

    def _within_longest(self, mask: np.ndarray, sounding: frozenset, now: int, may_off: bool) -> np.ndarray:
        """``mask`` without the time moves that would carry a note past ``longest``; only the
        NoteOffs of the notes that reached it, where a NoteOff may come."""
        left = self.longest - (now - min(onset for _, onset in sounding))
        mask &= self.ticks <= max(left, 0)
        if left <= 0 and may_off:
            mask = np.zeros(self.size, dtype=bool)
            mask[[self.off_id[p] for p, onset in sounding if now - onset >= self.longest]] = True
        return mask

    def redirect(self, state: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """Where the probability of a forbidden key event goes (with ``longest`` only), as
        (forbidden ids, the allowed ids taking their probability): a NoteOn of a sounding key
        to its NoteOff (it is struck again: released first), a NoteOff of a silent key to the
        NoteOff of the oldest sounding one. A model that lost track of which keys sound (its
        NoteOn is out of the context it reads) still says when a key is released; masking
        alone spreads that over every other token, and the forgotten note sounds on."""
        phase, sounding, _ = state[:3]
        if self.longest is None or not sounding or "NoteOff" not in self.FOLLOW[phase]:
            return None
        pitches = {p for p, _ in sounding}
        oldest = self.off_id[min(sounding, key=lambda n: (n[1], n[0]))[0]]
        moves = [(self.on_id[p], self.off_id[p]) for p in pitches]
        moves += [(i, oldest) for p, i in self.off_id.items() if p not in pitches]
        return np.array([a for a, _ in moves]), np.array([b for _, b in moves])

    def _advance(self, state: tuple, kind: str, value: str, token_id: int) -> tuple:
        _, sounding, now = state[:3]
        if self.longest is not None:
            now += int(self.ticks[token_id])
        if kind == "NoteOn":
            sounding = sounding | {(int(value), now)}
        elif kind == "NoteOff":
            sounding = frozenset(n for n in sounding if n[0] != int(value))
        return (kind, sounding, now)

    def closing(self, state: tuple) -> list[int]:
        """Base ids that end every sounding note (a TimeShift first if needed)."""
        phase, sounding = state[:2]
        if not sounding:
            return []
        ids = []
        if phase == "NoteOn":  # finish the note: its Velocity, then a time move
            ids.append(int(np.flatnonzero(self.type_mask["Velocity"])[-1]))
        if phase not in ("TimeShift", "NoteOff", "Tempo", "TimeSig"):
            ids.append(int(self.shift_id))
        return ids + [self.off_id[p] for p in sorted({p for p, _ in sounding})]


class BPEGrammar(Grammar):
    """A base grammar lifted onto a BPE vocabulary: a BPE token is allowed when every
    base token of its expansion is allowed in turn from the current state. Masks are
    cached per base state (hashable), so each distinct state costs one pass over the
    vocabulary."""

    def __init__(self, base: _TokenGrammar, expansions: Sequence[tuple[int, ...]],
                 cache_size: int = 20000) -> None:
        self.base = base
        self.expansions = [tuple(e) for e in expansions]
        self.size = len(self.expansions)
        self.first = np.array([e[0] if e else 0 for e in self.expansions], dtype=np.int64)
        self.special = np.array(
            [not e or base.types[e[0]] in _SPECIAL for e in self.expansions], dtype=bool)
        self._cache: dict[Any, np.ndarray] = {}
        self._cache_size = cache_size

    def start(self, prefix_ids: Sequence[int]) -> Any:
        state = self.base.initial()
        for token_id in prefix_ids:
            state = self.advance(state, int(token_id))
        return state

    def advance(self, state: Any, token_id: int) -> Any:
        if not 0 <= token_id < self.size:
            return state
        for base_id in self.expansions[token_id]:
            state = self.base.advance(state, base_id)
        return state

    def allowed(self, state: Any) -> np.ndarray:
        mask = self._cache.get(state)
        if mask is not None:
            return mask
        first_ok = self.base.allowed(state)[self.first] & ~self.special
        mask = np.zeros(self.size, dtype=bool)
        for token_id in np.flatnonzero(first_ok):
            expansion = self.expansions[token_id]
            s = self.base.advance(state, expansion[0])
            ok = True
            for base_id in expansion[1:]:
                if not self.base.allowed(s)[base_id]:
                    ok = False
                    break
                s = self.base.advance(s, base_id)
            mask[token_id] = ok
        if not mask.any():
            mask = first_ok.copy()
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        mask.setflags(write=False)
        self._cache[state] = mask
        return mask


class PerformanceGrammar(MIDILikeGrammar):
    """MIDI-Like with the sustain pedal: Pedal only while the pedal is up, PedalOff only
    while it is down, both where a NoteOn or NoteOff may come, and time passes between two
    pedal events (no pedal of no length, no lift of no length: each Pedal token is one
    pedal of the decoded piece). Notes no longer than ``longest`` (nor shorter than
    ``shortest``) as in MIDI-Like, and with
    ``longest_pedal`` (ticks) no pedal held longer: time moves that would carry it past are
    masked, then its PedalOff is the only choice (a pedal never lifted holds every note
    under it to the end of the piece when it is played).

    State: MIDI-Like's (phase, sounding notes, now), then pedal down, a pedal event at this
    time, the tick the pedal went down."""

    FOLLOW = {
        **{phase: follow + ("Pedal", "PedalOff") for phase, follow in MIDILikeGrammar.FOLLOW.items()},
        "NoteOn": ("Velocity",),  # MidiTok reads the token after a NoteOn as its velocity
        "Velocity": ("NoteOn", "TimeShift", "Pedal", "PedalOff"),
        "Pedal": ("NoteOn", "NoteOff", "TimeShift"),
        "PedalOff": ("NoteOn", "NoteOff", "TimeShift"),
    }

    def __init__(self, tokenizer, longest: int | None = None, longest_pedal: int | None = None, *,
                 shortest: int | None = None) -> None:
        super().__init__(tokenizer, longest, shortest=shortest)
        none = np.zeros(self.size, dtype=bool)
        self.pedal_on, self.pedal_off = self.type_mask.get("Pedal", none), self.type_mask.get("PedalOff", none)
        self.longest_pedal = None if longest is None or longest_pedal is None else max(
            int(longest_pedal), int(self.ticks[self.shift_id]))

    def initial(self) -> tuple:
        return super().initial() + (False, False, 0)

    def allowed(self, state: Any) -> np.ndarray:
        phase, _, now, down, just, pressed = state
        mask = super().allowed(state[:3])
        if down and self.longest_pedal is not None:
            left = self.longest_pedal - (now - pressed)
            mask = mask & (self.ticks <= max(left, 0))
            if left <= 0 and not just and "PedalOff" in self.FOLLOW[phase]:
                mask = self.pedal_off.copy()
        wrong = self.pedal_on | self.pedal_off if just else self.pedal_on if down else self.pedal_off
        return mask & ~wrong if (mask & wrong).any() else mask

    def redirect(self, state: Any) -> tuple[np.ndarray, np.ndarray] | None:
        return super().redirect(state[:3])

    def _advance(self, state: tuple, kind: str, value: str, token_id: int) -> tuple:
        down, just, pressed = state[3:]
        if kind in ("Pedal", "PedalOff"):
            return (kind,) + state[1:3] + (kind == "Pedal", True, state[2])
        return super()._advance(state[:3], kind, value, token_id) + (down, just and kind != "TimeShift", pressed)

    def closing(self, state: tuple) -> list[int]:
        """Base ids that end every sounding note and lift a pedal still down."""
        down, just = state[3:5]
        ids = super().closing(state[:3])
        if down:
            if just and not any(self.types[i] == "TimeShift" for i in ids):
                ids.append(int(self.shift_id))
            ids.append(int(np.flatnonzero(self.pedal_off)[0]))
        return ids
