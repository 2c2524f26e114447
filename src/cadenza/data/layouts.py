"""The ids a run's model has after its tokenizer's, and the training windows laid out with
them: density controls (:mod:`.controls`), melody lookahead (:mod:`.lookahead`), then
fill-in-the-middle (:mod:`.fim`).

    [tokenizer's V ids] [SUF MID END] [LEVELS density ids] [TOP PLAY]

The ids before a run's last kind come with it, used or not, so an id is the same in every run
that has it; a run with none of the three has the tokenizer's ids only.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import CadenzaError
from .controls import LEVELS, ControlLayout, has_controls
from .fim import IGNORED, MARKERS, InfillLayout, has_markers
from .lookahead import MARKERS as LOOKAHEAD_MARKERS, LookaheadLayout, has_lookahead


def extra_ids(config) -> int:
    """How many ids a run's model has after its tokenizer's: the infill markers, the density
    tokens and the lookahead markers, each kind also kept by a run with a later one only."""
    kinds = (MARKERS, has_markers(config)), (LEVELS, has_controls(config)), \
        (LOOKAHEAD_MARKERS, has_lookahead(config))
    last = max((n for n, (_, has) in enumerate(kinds) if has), default=-1)
    return sum(size for size, _ in kinds[:last + 1])


def lookahead_id(rep) -> int:
    """The id of a run's ``TOP`` marker (``PLAY`` follows it)."""
    return rep.vocab_size + MARKERS + LEVELS


def check_config(config) -> None:
    """Before any work: a training with infill, controls or lookahead has the tokens to lay
    them out by."""
    if has_markers(config) or has_controls(config) or has_lookahead(config):
        from . import representations

        _layouts(representations.create(config.representation, **config.representation_options), config)


def model_vocab(config, rep) -> int:
    """The model's vocabulary: the tokenizer's and the run's extra ids."""
    return rep.vocab_size + extra_ids(config)


class LaidWindows:
    """Training windows (a :class:`~cadenza.data.dataset.TokenWindows`) laid out anew by each of
    ``layouts`` in turn (density controls, lookahead, then FIM), the targets they mark unscored; everything
    else (epochs, evaluation windows: plain) is the inner windows'. Drawn from the batch's own
    random generator after its augmentation, so a resumed training replays the same examples."""

    def __init__(self, inner, layouts: list) -> None:
        if not inner.every_position:
            raise CadenzaError("--infill, --controls and --lookahead need a model trained on every position "
                               "(not the seed notebook's)")
        self.inner, self.layouts = inner, layouts
        self.unscored = np.array(sorted({i for lay in layouts for i in lay.unscored()}), dtype=np.int64)

    def __getattr__(self, name):  # seq_len, n_starts, epoch_starts, eval_starts ...: the inner windows'
        return getattr(self.inner, name)

    def batch(self, starts: np.ndarray, rng: np.random.Generator | None = None):
        x, y = self.inner.batch(starts, rng)
        if rng is None:
            return x, y
        windows = torch.cat([x, y[:, -1:]], dim=1).numpy()
        for lay in self.layouts:
            lay(windows, rng)
        x, y = torch.from_numpy(windows[:, :-1].copy()), torch.from_numpy(windows[:, 1:].copy())
        y[torch.from_numpy(np.isin(y.numpy(), self.unscored))] = IGNORED
        return x, y


def training_windows(windows, rep, config):
    """``windows`` as they are without infill, controls or lookahead, else :class:`LaidWindows`
    over them."""
    layouts = _layouts(rep, config)
    return LaidWindows(windows, layouts) if layouts else windows


def _layouts(rep, config) -> list:
    return ([ControlLayout(rep, config.controls)] if has_controls(config) else []) + \
        ([LookaheadLayout(rep, config.lookahead, lookahead_id(rep))] if has_lookahead(config) else []) + \
        ([InfillLayout(rep, config.infill, extra_ids(config) - MARKERS)] if has_markers(config) else [])
