"""Fill-in-the-middle (FIM): how a model learns to regenerate a span of bars given the music
before and after it, as MMM and code models do.

A run trained with ``infill`` above 0 (:class:`~cadenza.config.Config`; the share of training
windows turned into FIM examples) has three marker tokens after its tokenizer's vocabulary:
``SUF``, ``MID`` and ``END`` are ids ``V``, ``V + 1`` and ``V + 2`` of a ``V``-token
tokenizer, so no existing token id moves. A FIM example is a training window cut at bar
tokens into prefix, middle and suffix and laid out as::

    prefix SUF suffix MID middle END

the same length as the window (the suffix gives up its last three tokens). The targets SUF and
MID are not scored: where a span starts and where a window's suffix stops are drawn at random,
so no model could predict them. Validation windows stay plain, so the validation loss of a run
with infill compares with one without.

A fine-tune that teaches infill to a run without the markers grows its embedding and output
rows (:func:`grow_vocab`): the old rows are kept exactly, the new ones start at the mean row.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..errors import CadenzaError
from .token_stats import TokenKinds

MARKERS = 3            # SUF, MID, END
MAX_SPAN_BARS = 4      # a training span: 1 to this many bars (the spans a user asks for: a phrase)
IGNORED = -100         # F.cross_entropy's ignore_index: a target not scored


class Markers(NamedTuple):
    suf: int
    mid: int
    end: int


def markers(rep) -> Markers:
    """The marker ids of a run whose tokenizer is ``rep``: right after its vocabulary."""
    v = rep.vocab_size
    return Markers(v, v + 1, v + 2)


def has_markers(config) -> bool:
    return config.infill > 0


def check_infill_run(run) -> Markers:
    """The run's markers; a run trained without infill is a one-line error."""
    if not has_markers(run.config):
        raise CadenzaError(f"{run.directory} was not trained for infill (its config.json has infill 0); fine-tune "
                           f"it with infill: cadenza train FOLDER --from {run.directory} --infill 0.5 --run-dir NEW")
    return markers(run.representation)


# -- training examples -------------------------------------------------------------------------
def fim_window(window: np.ndarray, starts_bar: np.ndarray, bos: int | None, marks: Markers,
               rng: np.random.Generator) -> np.ndarray | None:
    """``window`` (token ids) laid out as prefix SUF suffix MID middle END, the middle 1 to
    ``MAX_SPAN_BARS`` whole bars from one bar token to a later one (``starts_bar[id]``: the
    token starts a bar), the length kept; None where the window holds fewer than two bar
    tokens with a suffix after them, or a piece boundary (BOS) past its first token."""
    n = len(window)
    if bos is not None and (window[1:] == bos).any():
        return None
    bars = np.flatnonzero(starts_bar[window[: n - MARKERS]])
    if len(bars) < 2:
        return None
    span = int(rng.integers(1, min(MAX_SPAN_BARS, len(bars) - 1) + 1))
    first = int(rng.integers(0, len(bars) - span))
    a, b = int(bars[first]), int(bars[first + span])
    return np.concatenate([window[:a], [marks.suf], window[b:n - MARKERS], [marks.mid], window[a:b], [marks.end]])


def bar_starts(rep) -> np.ndarray:
    """Per token id (markers included), whether it starts a bar: where FIM cuts a window. A
    representation without bar tokens cannot train infill (a one-line error)."""
    kinds = TokenKinds(rep)
    if kinds.bars is None:
        raise CadenzaError(f"--infill cuts windows at bar tokens, and the {rep.name} representation has none; "
                           "use REMI")
    return np.append(kinds.bars > 0, np.zeros(MARKERS, dtype=bool))


class InfillLayout:
    """A share ``rate`` of the training windows laid out as FIM examples (:class:`LaidWindows`)."""

    def __init__(self, rep, rate: float, extra: int = 0) -> None:
        self.starts_bar = np.append(bar_starts(rep), np.zeros(extra, dtype=bool))  # extra: ids after the markers
        self.rate, self.marks, self.bos = rate, markers(rep), rep.bos_id

    def __call__(self, windows: np.ndarray, rng: np.random.Generator) -> None:
        for k in np.flatnonzero(rng.random(len(windows)) < self.rate):
            laid = fim_window(windows[k], self.starts_bar, self.bos, self.marks, rng)
            if laid is not None:
                windows[k] = laid

    def unscored(self) -> list[int]:
        return [self.marks.suf, self.marks.mid]


# -- growing a model for the markers ----------------------------------------------------------
@torch.no_grad()
def grow_vocab(small: torch.nn.Module, big: torch.nn.Module) -> None:
    """``small``'s parameters into ``big``, whose vocabulary is larger: a tensor with a row per
    token keeps its rows and its new rows start at the mean of the old (the mean embedding:
    a marker starts as an average token, neither rare nor certain). Tied weights stay tied."""
    old, new = small.state_dict(), big.state_dict()
    grown = {}
    for name, value in old.items():
        target = new[name]
        if target.shape == value.shape:
            grown[name] = value
        elif target.dim() == value.dim() and target.shape[1:] == value.shape[1:] and target.shape[0] > value.shape[0]:
            extra = value.float().mean(0, keepdim=True).expand(target.shape[0] - value.shape[0], *value.shape[1:])
            grown[name] = torch.cat([value, extra.to(value.dtype)])
        else:
            raise CadenzaError(f"cannot grow {name} from {tuple(value.shape)} to {tuple(target.shape)}")
    big.load_state_dict(grown)

