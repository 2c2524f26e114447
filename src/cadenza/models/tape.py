"""The latest entries of a growing sequence, appended in place: a model's memory of the past
(attention keys and values, a cache's keys and ids) without copying all of it every step.

    carried, seen = remember(carried, new, dim, keep)   # seen: <= keep earlier entries, then new

A tape's buffer holds up to twice ``keep`` entries (or one long chunk): appending writes after
the last entry, and only when the buffer is full are the latest ``keep`` moved to its front
(one copy per ``keep`` steps, not one per step). A tape is consumed by the call that extends
it, as a model's state is by the step that continues it: extending an older tape again would
overwrite what its first extension wrote.
"""
from __future__ import annotations

import torch


class Tape:
    def __init__(self, buffer: torch.Tensor, length: int, dim: int, keep: int):
        self.buffer, self.length, self.dim, self.keep = buffer, length, dim, keep

    @classmethod
    def start(cls, first: torch.Tensor, dim: int, keep: int) -> "Tape":
        size = list(first.shape)
        size[dim] = max(2 * keep, first.size(dim))
        buffer = first.new_empty(size)
        buffer.narrow(dim, 0, first.size(dim)).copy_(first)
        return cls(buffer, first.size(dim), dim, keep)

    def view(self) -> torch.Tensor:
        return self.buffer.narrow(self.dim, 0, self.length)

    def extend(self, more: torch.Tensor) -> "Tape":
        """The latest ``keep`` entries (at least) followed by ``more``."""
        n, dim = more.size(self.dim), self.dim
        length = self.length
        if length + n > self.buffer.size(dim):
            latest = self.view().narrow(dim, max(0, length - self.keep), min(length, self.keep))
            if latest.size(dim) + n > self.buffer.size(dim):
                return Tape.start(torch.cat((latest, more), dim), dim, self.keep)
            length = latest.size(dim)
            self.buffer.narrow(dim, 0, length).copy_(latest.clone())
        self.buffer.narrow(dim, length, n).copy_(more)
        return Tape(self.buffer, length + n, dim, self.keep)

    def rows(self, index: torch.Tensor) -> "Tape":
        """The tape of the sequences ``index`` (the batch is dimension 0), in a buffer of its own."""
        return Tape(self.buffer.index_select(0, index), self.length, self.dim, self.keep)


def rows(carried, index: torch.Tensor):
    """What ``remember`` carried (None, a tensor or a tape; batch first), for the sequences
    ``index`` only: generation drops the pieces that are done, or repeats the ones it keeps."""
    if carried is None:
        return None
    return carried.rows(index) if isinstance(carried, Tape) else carried.index_select(0, index)


def remember(past, new: torch.Tensor, dim: int, keep: int):
    """What to carry after ``new`` (at least its latest ``keep`` entries with those before
    it), and a view of at most ``keep`` entries before ``new`` followed by ``new``. ``past``
    is None (nothing before: a training window, a first chunk), the tensor of entries such a
    first call carried, or a tape; a first call carries a view, and the first one after it
    starts a tape, so training never fills a buffer it would not use."""
    if past is None:
        n = new.size(dim)
        return new.narrow(dim, max(0, n - keep), min(n, keep)), new
    tape = (Tape.start(past, dim, keep) if isinstance(past, torch.Tensor) else past).extend(new)
    seen = min(tape.length, keep + new.size(dim))
    return tape, tape.view().narrow(dim, tape.length - seen, seen)
