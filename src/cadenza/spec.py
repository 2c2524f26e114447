"""What a value may hold, declared once and read by every caller: a :class:`Spec` says its
kind, range and whether null is allowed, and :class:`SpecError` names the field that broke it.

The specs live beside what they describe (a representation's or a model's options on its class, the sampling
settings in :mod:`cadenza.generation.sampling`, a run's files in :mod:`cadenza.validate`); the command
line, the studio and the run loader read the same ones, so a value one accepts the others
accept too. This module imports nothing of cadenza's: a model, the sampler and the checks
of a run folder can all use it without importing each other.
"""
from __future__ import annotations

import math

from .errors import CadenzaError

BIG = 2**62


class Spec:
    """What one field may hold: a kind (int, float, str, bool, or a set of choices), a
    range, and whether null is allowed."""

    @classmethod
    def finite(cls, none: bool = False) -> "Spec":
        return cls(float, -math.inf, math.inf, none=none, lo_open=True, hi_open=True)

    def __init__(self, kind, lo=None, hi=None, none: bool = False, lo_open: bool = False, hi_open: bool = False):
        self.kind, self.lo, self.hi, self.none, self.lo_open, self.hi_open = kind, lo, hi, none, lo_open, hi_open

    def describe(self, null: bool = True) -> str:
        """``an integer in [1, 4,096]``; with ``null`` and a spec that allows it, ``(or null)`` after."""
        if isinstance(self.kind, (set, frozenset, tuple)):
            text = "one of " + ", ".join(sorted(map(str, self.kind)))
        else:
            text = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
                    list: "a list", dict: "an object"}[self.kind]
            if self.lo is not None and self.hi is not None and abs(self.hi) < BIG / 2:
                text += f" in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
            elif self.lo == -math.inf and self.hi == math.inf and self.lo_open:
                text = "a finite number"
            elif self.lo is not None:
                text += f" {'>' if self.lo_open else '>='} {_num(self.lo)}"
        return text + (" (or null)" if self.none and null else "")

    def ok(self, value) -> bool:
        if value is None:
            return self.none
        if isinstance(self.kind, (set, frozenset, tuple)):
            return isinstance(value, str) and value in self.kind
        if self.kind is float:
            good = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN != NaN
        elif self.kind is int:
            good = isinstance(value, int) and not isinstance(value, bool)
        else:
            good = isinstance(value, self.kind)
        if not good or self.lo is None:
            return good
        above = value > self.lo if self.lo_open else value >= self.lo
        below = self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)
        return above and below

    def check(self, field: str, value, where: object = None) -> None:
        """Raise :class:`SpecError` unless ``value`` is what this spec allows."""
        if not self.ok(value):
            raise SpecError(field, self, value, where)


class SpecError(CadenzaError):
    """A value its spec refuses: ``field`` names it and ``where`` (a file, or None for a value
    given directly) says where it came from, so the command line can name its flag instead
    (:meth:`said`) and the studio its form field."""

    def __init__(self, field: str, spec: Spec, value, where: object = None) -> None:
        self.field, self.spec, self.value, self.where = field, spec, value, where
        super().__init__((f"{where}: " if where is not None else "") + self.said(field))

    def said(self, name: str, null: bool = True) -> str:
        """``NAME must be <the spec>, not <the value>``."""
        shown = repr(self.value) if len(repr(self.value)) <= 60 else repr(self.value)[:57] + "..."
        return f"{name} must be {self.spec.describe(null)}, not {shown}"


def _num(x) -> str:
    """``1,000,000`` for 1e6 as well as for 1000000; ``0.5`` as it is."""
    return f"{x:,}" if isinstance(x, int) else f"{x:,.0f}" if x.is_integer() and abs(x) < 1e18 else f"{x:g}"
