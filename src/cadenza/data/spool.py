"""Pretokens on disk while a corpus is prepared, so memory does not grow with the corpus.

Each piece's pretokens are appended to one file as its worker hands them over; the
vocabulary is then fitted and the token files written reading the pieces back one at a
time. Pretokens that are arrays of ids (the MidiTok
representations) are stored as they are; lists of strings (seed) as a number per distinct
string, the strings kept once in memory (a vocabulary's worth).
"""
from __future__ import annotations

import os
from array import array
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

DTYPE = np.int32


class PretokenSpool:
    """Append with :meth:`add` (which returns the piece's number), then :meth:`close` and
    read back with ``spool[number]`` or :meth:`pieces`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = open(self.path, "wb")
        self._bounds = array("q", [0])
        self._strings: list[str] | None = None  # None: the pretokens are ids
        self._codes: dict[str, int] = {}
        self._fd: int | None = None  # for reading, once closed

    def add(self, pretokens: Any) -> int:
        strings = not isinstance(pretokens, np.ndarray)
        known = self._known(pretokens) if strings else None
        if strings and known is None and not all(isinstance(t, str) for t in pretokens):
            raise TypeError("pretokens must be an array of ids or a list of strings")
        if len(self._bounds) == 1:
            self._strings = [] if strings else None
        elif strings != (self._strings is not None):
            raise TypeError("every piece's pretokens must be of one kind")
        if strings:
            codes = np.array(known if known is not None else [self._code(t) for t in pretokens], dtype=DTYPE)
        elif len(pretokens) and (pretokens.min() < np.iinfo(DTYPE).min or pretokens.max() > np.iinfo(DTYPE).max):
            raise ValueError("pretoken ids out of the int32 range")
        else:
            codes = pretokens
        self._file.write(np.ascontiguousarray(codes, dtype=DTYPE).tobytes())
        self._bounds.append(self._bounds[-1] + len(codes))
        return len(self._bounds) - 2

    def _known(self, tokens) -> list[int] | None:
        """The strings' numbers if every one was seen before (looked up at C speed), else None."""
        try:
            codes = list(map(self._codes.get, tokens))
        except TypeError:  # something unhashable: not a string
            return None
        return None if None in codes else codes

    def _code(self, token: str) -> int:
        code = self._codes.get(token)
        if code is None:
            code = self._codes[token] = len(self._strings)
            self._strings.append(token)
        return code

    def lengths(self, numbers: np.ndarray) -> np.ndarray:
        """The pieces' numbers of pretokens, from the bounds (nothing is read)."""
        bounds = np.asarray(self._bounds)
        return bounds[numbers + 1] - bounds[numbers]

    def close(self) -> None:
        """Done adding: the file is read back from here on."""
        if self._fd is not None or self._file is None:
            return
        self._file.close()
        self._file = None
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def __len__(self) -> int:
        return len(self._bounds) - 1

    def __getitem__(self, number: int) -> Any:
        if self._fd is None:
            raise RuntimeError("close the spool before reading it")
        start, end = self._bounds[number], self._bounds[number + 1]
        size = np.dtype(DTYPE).itemsize
        # read, not mapped: pages of a mapping read once stay in the process's resident set
        codes = np.frombuffer(os.pread(self._fd, (end - start) * size, start * size), dtype=DTYPE)
        if self._strings is None:
            return codes
        strings = self._strings
        return [strings[c] for c in codes.tolist()]

    def pieces(self, numbers: Sequence[int]) -> "SpooledPieces":
        return SpooledPieces(self, numbers)

    def remove(self) -> None:
        self.close()
        os.close(self._fd)
        self._fd = None
        self.path.unlink(missing_ok=True)


class SpooledPieces(Sequence):
    """Some pieces of a spool as a sequence, each read when it is asked for."""

    def __init__(self, spool: PretokenSpool, numbers: Sequence[int]):
        self.spool, self.numbers = spool, np.asarray(numbers, dtype=np.int64)  # 8 bytes a piece

    def __len__(self) -> int:
        return len(self.numbers)

    def __getitem__(self, k: int) -> Any:
        return self.spool[int(self.numbers[k])]

    def lengths(self) -> list[int]:
        """Each piece's number of pretokens, without reading any piece."""
        return self.spool.lengths(self.numbers).tolist()

    def __iter__(self) -> Iterator[Any]:
        for number in self.numbers:
            yield self.spool[int(number)]
