"""Form: sections that come back. A form such as ``AABA`` lays sections of equal length in
bars over a piece's new material; a letter that has been heard before repeats its first
section, bar for bar, and the last bar of a returning section is composed anew (A and A',
the varied ending of the song forms that pop and jazz standards use). Bars past the end of
the form are composed freely.

A repeat is made in token space while the piece is sampled: from the token that starts a
returning bar, the tokens of the bar it repeats are fed to the model in place of sampled
ones, so the model hears the repeat and goes on from it. It needs tokens that mark bars
(REMI and its BPE); a BPE token that starts a bar is replaced by the one that started the
bar repeated.
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import CadenzaError

NONE = ("", "none")
DEFAULT_SECTION_BARS = 8  # when the length is not given in bars
MAX_FORM = 64


def parse_form(text: str | None) -> str:
    """A form's letters (upper case), or "" for none (``""`` / ``"none"``)."""
    text = (text or "").strip()
    if text.lower() in NONE:
        return ""
    if not re.fullmatch(r"[A-Za-z]{1,%d}" % MAX_FORM, text):
        raise CadenzaError(f"--form must be letters such as AABA (at most {MAX_FORM}) or 'none', got {text!r}")
    return text.upper()


def section_bars(form: str, length: float, unit: str, bars: int | None = None) -> int:
    """Bars per section: ``bars`` if given, else the length in bars shared out over the form's
    sections (at least one bar each), else :data:`DEFAULT_SECTION_BARS`."""
    if bars is not None:
        if bars < 1:
            raise CadenzaError(f"--section-bars must be >= 1, got {bars}")
        return bars
    if unit == "bars":
        return max(1, round(length / len(form)))
    return DEFAULT_SECTION_BARS


class FormPlan:
    """Which earlier bar each new bar repeats (bar 0 is the first new bar)."""

    def __init__(self, form: str, bars_per_section: int) -> None:
        self.form, self.size = form, bars_per_section

    def source(self, bar: int) -> int | None:
        section, within = divmod(bar, self.size)
        if section >= len(self.form) or (self.size > 1 and within == self.size - 1):
            return None  # past the form, or a returning section's varied last bar
        first = self.form.index(self.form[section])
        return None if first == section else first * self.size + within

    def repeated_bars(self, total: int) -> int:
        return sum(self.source(b) is not None for b in range(total))


class SectionCopier:
    """One piece's repeats: where each of its bars starts in its new tokens, and the tokens
    still to feed for the bar being repeated. ``start`` is the token that began the first
    new bar (the context's last, a Bar), or None where the context ends inside a bar (a
    primer whose last event lies on its closing bar line): the form then counts from the
    first bar line the model writes; ``bar_tokens[t]`` > 0 where token ``t`` starts a bar."""

    def __init__(self, plan: FormPlan, bar_tokens: np.ndarray, start: int | None) -> None:
        self.plan, self.bar_tokens, self.start = plan, bar_tokens, start
        # index in the new tokens of each bar's first token (-1: in the context)
        self.starts = [-1] if start is not None else []
        self.queue: list[int] = []

    def choose(self, sampled: int, new: list[int]) -> int:
        """The token to add: the next one of a repeat, else ``sampled`` (or, if it starts a bar
        that repeats, the token that started the bar it repeats)."""
        if self.queue:
            return self.queue.pop(0)
        if self.bar_tokens[sampled]:
            source = self.plan.source(len(self.starts))
            if source is not None:
                return self._token_at(self.starts[source], new)
        return sampled

    def added(self, token: int, new: list[int]) -> None:
        """Note ``token`` (now ``new[-1]``); on a repeated bar's first token, queue the rest of
        the bar it repeats and the token that began the bar after it."""
        if not self.bar_tokens[token]:
            return
        self.starts.append(len(new) - 1)
        source = self.plan.source(len(self.starts) - 1)
        if source is not None and not self.queue:
            self.queue = list(new[self.starts[source] + 1: self.starts[source + 1] + 1])

    def _token_at(self, index: int, new: list[int]) -> int:
        return self.start if index < 0 else new[index]
