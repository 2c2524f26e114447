"""Structured: the fixed Pitch, Velocity, Duration, TimeShift cycle (no rests, tempos or
time signatures: MidiTok's Structured supports none of them)."""
from miditok import Structured

from .grammar import StructuredGrammar
from .midi_tokens import MidiTokRepresentation


class StructuredRepresentation(MidiTokRepresentation):
    name = "structured"
    tokenizer_class = Structured
    grammar_class = StructuredGrammar
    supports = frozenset()
