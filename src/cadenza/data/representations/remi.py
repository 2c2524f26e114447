"""REMI (the default): Bar, Position, Pitch, Velocity, Duration, plus Rest, Tempo, TimeSig."""
from miditok import REMI

from .grammar import REMIGrammar
from .midi_tokens import MidiTokRepresentation


class REMIRepresentation(MidiTokRepresentation):
    name = "remi"
    tokenizer_class = REMI
    grammar_class = REMIGrammar
