"""Errors that reach the user as one line, never as a traceback; and what keeps a message
naming a file one line (:func:`printable`)."""
from __future__ import annotations

import os


class CadenzaError(Exception):
    """A usage or data error shown to the user as one line (exit code 2)."""


def printable(text: str | bytes | os.PathLike) -> str:
    """``text`` (a path, or a message naming one) safe to print: control characters and
    other non-printables escaped as ``repr`` writes them (``\\x1b``, ``\\n``), bytes of a
    file name that are not UTF-8 as ``\\xff``; letters of any script kept. A file named
    ``esc\\x1b[31m.mid`` or with a newline in its name then cannot recolour a terminal or
    split a line. Printing it twice changes nothing (a backslash is kept as it is)."""
    text = os.fsdecode(text) if isinstance(text, (bytes, os.PathLike)) else str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def _escaped(char: str) -> str:
    if "\udc80" <= char <= "\udcff":  # the byte os.fsdecode could not decode (surrogateescape)
        return f"\\x{ord(char) - 0xDC00:02x}"
    return repr(char)[1:-1]
