"""Performance: played music as it was played (Performance RNN's events, through MidiTok).

NoteOn, Velocity (32 bins), NoteOff, TimeShift and the sustain pedal (Pedal, PedalOff), on a
clock of milliseconds instead of a beat grid: a piece is first laid out in seconds (its tempo
map applied), and time moves in steps of 10 ms up to a second (1 to 4 s in quarter seconds
beyond; longer gaps take several TimeShifts). Onsets and releases are kept within 5 ms,
velocities within 2, every pedal kept (``benchmarks/performance.py``). No bars, tempos or
time signatures: a decoded piece is in 60 bpm, one beat a second, so it plays at the speed
it was played, and its "bars" are four seconds.

Why MidiTok's MIDI-Like on a millisecond clock rather than MidiTok's PerTok, which aims at
expressive timing: measured on the ASAP Bach performances (miditok 3.1.0), PerTok decoding a
pedal release fails (``int(...).int(...)`` in its PedalOff branch), and without pedals it
kept 91 % of the notes with note ends on its beat grid (median 33 ms off). TSD on the same
clock keeps onsets as well but rounds long durations to its coarse duration bins (99th
percentile of note-end error 116 ms); MIDI-Like's NoteOff is exact to the clock.
"""
from __future__ import annotations

import numpy as np
from miditok import MIDILike
from symusic import Note, Score, Tempo, Track

from ..corpus.pedal import next_strike, set_pedals
from ..corpus.reader import merge_piano
from .grammar import PerformanceGrammar
from .midilike import MIDILikeRepresentation

CLOCK_BEAT_RES = {(0, 1): 100, (1, 4): 4}  # a beat is one second: 10 ms steps, then 250 ms
CLOCK_BPM = 60.0
CLOCK_TPQ = 10_000  # ticks a second of the score handed to MidiTok (0.1 ms: one rounding, its own)
VELOCITIES = 32


def in_milliseconds(score: Score) -> Score:
    """A one-track tick-time score laid out in seconds: CLOCK_TPQ ticks a beat at 60 bpm,
    notes and pedals where they sound in seconds (a key struck again while it sounds is
    released there); no time or key signatures."""
    seconds = score.to("second")
    out = Score(CLOCK_TPQ)
    out.tempos = [Tempo(0, CLOCK_BPM)]
    track = Track("Piano", 0, False)
    notes = seconds.tracks[0].notes.numpy() if seconds.tracks else {}
    if len(notes.get("time", ())):
        start = np.round(notes["time"] * CLOCK_TPQ).astype(np.int64)
        end = np.round((notes["time"] + notes["duration"]) * CLOCK_TPQ).astype(np.int64)
        # a key struck again while it sounds was released first (one string per key): a clock
        # step before, so the release comes before the strike on MidiTok's 10 ms clock too
        step = CLOCK_TPQ // max(CLOCK_BEAT_RES.values())
        end = np.maximum(np.minimum(end, next_strike(start, notes["pitch"]) - step), start + 1)
        track.notes = Note.from_numpy(time=start.astype(np.int32), duration=(end - start).astype(np.int32),
                                      pitch=notes["pitch"], velocity=notes["velocity"], ttype="tick")
    pedals = seconds.tracks[0].pedals.numpy() if seconds.tracks else {}
    if len(pedals.get("time", ())):
        start = np.round(pedals["time"] * CLOCK_TPQ)
        set_pedals(track, start, np.round((pedals["time"] + pedals["duration"]) * CLOCK_TPQ))
    out.tracks.append(track)
    return out


class PerformanceRepresentation(MIDILikeRepresentation):
    name = "performance"
    tokenizer_class = MIDILike
    grammar_class = PerformanceGrammar
    supports = frozenset()
    pedals = "tokens"
    seconds_per_bar = 4 * 60 / CLOCK_BPM  # a decoded piece is in 4/4 at CLOCK_BPM: its "bars" are 4 s windows

    def __init__(self, beat_res=None, num_velocities: int = VELOCITIES, use_rests=None, use_tempos=None,
                 use_time_signatures=None, vocab_size=None, *, _tokenizer=None) -> None:
        super().__init__(CLOCK_BEAT_RES if beat_res is None else beat_res, num_velocities, use_rests,
                         use_tempos, use_time_signatures, vocab_size, _tokenizer=_tokenizer)

    def piano_part(self, score: Score) -> Score:
        return in_milliseconds(merge_piano(score))

    def timeline(self, score: Score) -> Score:
        return self.piano_part(score)

    def decode(self, ids) -> Score:
        """The piece on its clock: 60 bpm, a beat a second, pedals as CC 64."""
        score = super().decode(ids)
        score.tempos = [Tempo(0, CLOCK_BPM)]
        score.time_signatures, score.key_signatures = [], []
        return score


__all__ = ["CLOCK_BPM", "PerformanceRepresentation", "in_milliseconds"]
