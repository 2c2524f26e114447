"""Bars that can be trusted: a time signature that cannot be the metre is replaced.

Many files carry a signature that is not the music's metre: POP909's 1/4 (for 4/4 songs),
or a 1/8. A numerator of 1 makes every beat a bar, so bar-based tokens (REMI's ``Bar``),
lengths in bars and every structure measure would count beats. Such a score is given 4/4
bars from its first tick instead.

Placing the bar lines by the music (the beat phase whose beats start the most sounding
time) was tried on POP909 and not kept: on files notated 4/4 it agreed with the notated
bars no better than chance, and POP909's beat annotations do not sit on its MIDI tick grid
(median 0.21 beat away), so it could not be checked there either.
"""
from __future__ import annotations

from symusic import Score, TimeSignature

BEATS = 4  # the metre an untrusted signature becomes


def untrusted(score: Score) -> bool:
    """True when a time signature cannot be the metre (numerator 1: one beat per bar)."""
    return any(ts.numerator <= 1 for ts in score.time_signatures)


def trusted_time_signatures(score: Score) -> Score:
    """``score`` itself when its signatures can be trusted, else a copy in 4/4."""
    if not untrusted(score):
        return score
    out = score.copy()
    out.time_signatures = trusted_signatures(score)
    return out


def trusted_signatures(score: Score) -> list:
    """The score's time signatures when they can be trusted, else one 4/4 from the start
    (without copying the notes, as :func:`trusted_time_signatures` does)."""
    if not untrusted(score):
        return list(score.time_signatures)
    return [TimeSignature(0, BEATS, 4)]
