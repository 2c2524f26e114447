"""TSD: TimeShift, Pitch, Velocity, Duration, plus Rest, Tempo, TimeSig."""
from miditok import TSD

from .grammar import TSDGrammar
from .midi_tokens import MidiTokRepresentation


class TSDRepresentation(MidiTokRepresentation):
    name = "tsd"
    tokenizer_class = TSD
    grammar_class = TSDGrammar
