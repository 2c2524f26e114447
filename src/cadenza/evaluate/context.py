"""Context use: how much a model gains from the whole piece over only its last few tokens.

    context_use(model, pieces, seq_len) -> {"full", "short", "none", "gain", ...}

Scored: the tokens at positions ``SPAN`` (1,024 up to 2,048) of each piece, or in a piece
shorter than 2,048 tokens its second half (L/2 up to L): ``TARGETS`` evenly spaced ones
where the span has more. Pieces shorter than two windows are skipped (so that every target
has a whole window before it) and counted, and at
most ``MAX_PIECES`` pieces are scored. Each target is scored three ways, as NLL per token (nats):

- ``full``: the piece read from its start, the state carried (a transformer up to its
  ``max_len``, beyond which tokens are not scored);
- ``short``: from a fresh state fed only the ``window`` (``WINDOW``: 32) tokens before the target;
- ``none``: the span read from a fresh state started at the one token before it.

``gain`` is ``(short - full) / short``: the share of the short-context loss that the rest
of the piece removes; about 0 for a model that forgets. ``copy_share`` gives, for scale,
how much of a span an exact copy of earlier material could predict.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from .nll import token_nlls, window_nll

SPAN = (1024, 2048)
WINDOW = 32
MAX_PIECES = 32
TARGETS = 256  # a piece's short windows cost as much as its full pass: 32 x 256 keeps it to seconds
COPY_CONTEXT = 8


def span(length: int, max_len: int | None = None, window: int = WINDOW) -> tuple[int, int] | None:
    """The targets ``[start, end)`` scored in a piece of ``length`` tokens (None: too short)."""
    end = min(length, SPAN[1], max_len or length)
    if end < 2 * window:
        return None
    return (SPAN[0], end) if end == SPAN[1] else (end // 2, end)


@torch.no_grad()
def piece_context(model, ids: np.ndarray, seq_len: int, window: int = WINDOW) -> dict | None:
    """Summed NLL of one piece's span under each context, and its targets (None: too short)."""
    x = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    where = span(len(x), getattr(model, "max_len", None), window)
    if where is None:
        return None
    start, end = where
    targets = np.arange(start, end)
    if len(targets) > TARGETS:
        targets = targets[np.linspace(0, len(targets) - 1, TARGETS).astype(int)]
    full = token_nlls(model, x[:end], seq_len, carry=True)[targets - 1]
    none = token_nlls(model, x[start - 1:end], seq_len, carry=True)[targets - start]
    return {"full": full.sum().item(), "short": window_nll(model, x, targets, window),
            "none": none.sum().item(), "positions": len(targets), "whole_span": start == SPAN[0]}


def context_use(model, pieces: Iterable[np.ndarray], seq_len: int, max_pieces: int = MAX_PIECES,
                window: int = WINDOW) -> dict | None:
    """NLL per token of the spans of up to ``max_pieces`` pieces (token ids) with the whole
    piece, ``window`` tokens and no context before them, and the gain; None for a model
    that reads fixed windows (the seed network) or when no piece is long enough."""
    if not getattr(model, "trains_every_position", True):
        return None
    sums, positions, scored, skipped, halves = {"full": 0.0, "short": 0.0, "none": 0.0}, 0, 0, 0, 0
    for ids in pieces:
        if scored == max_pieces:
            break
        one = piece_context(model, ids, seq_len, window)
        if one is None:
            skipped += 1
            continue
        for key in sums:
            sums[key] += one[key]
        positions, scored, halves = positions + one["positions"], scored + 1, halves + (not one["whole_span"])
    if positions == 0:
        return None
    out = {key: total / positions for key, total in sums.items()}
    return out | {"gain": (out["short"] - out["full"]) / out["short"], "window": window, "span": list(SPAN),
                  "positions": positions, "targets_per_piece": TARGETS, "pieces": scored, "second_half_pieces": halves,
                  "skipped_short": skipped, "max_pieces": max_pieces, "min_tokens": 2 * window}


def copy_share(ids: np.ndarray, start: int, end: int, context: int = COPY_CONTEXT) -> float:
    """Share of targets ``t`` in ``[start, end)`` whose ``context`` tokens before them occur
    earlier in the piece followed by the same token as ``t`` (an exact copy predicts it)."""
    seen, hits = set(), 0
    grams = [tuple(ids[t - context:t + 1]) for t in range(context, end)]
    for t, gram in zip(range(context, end), grams):
        hits += t >= start and gram in seen
        seen.add(gram)
    return hits / max(1, end - start)
