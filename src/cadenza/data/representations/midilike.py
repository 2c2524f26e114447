"""MIDI-Like: NoteOn, Velocity, NoteOff, TimeShift, plus Rest, Tempo, TimeSig."""
from miditok import MIDILike

from .grammar import MIDILikeGrammar
from .midi_tokens import MidiTokRepresentation


class MIDILikeRepresentation(MidiTokRepresentation):
    """``decode`` ends the notes still sounding at the end of the sequence (a generated
    piece cut at its length) instead of dropping them as MidiTok does, and none later than
    the longest note the run's corpus has (:meth:`limit_notes`)."""

    name = "midilike"
    tokenizer_class = MIDILike
    grammar_class = MIDILikeGrammar
    holds_notes = True

    def _complete(self, base: list[int]) -> list[int]:
        grammar = self.base_grammar() if self.is_trained else self.grammar()
        return base + grammar.closing(grammar.start(base))
