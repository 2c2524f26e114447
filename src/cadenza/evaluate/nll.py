"""Likelihood of held-out pieces under a model: the NLL of each token (state carried over
chunks or not), of tokens read from a fresh window, and per token and per note over pieces."""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

MAX_WINDOW_TARGETS = 2000  # the seed network needs one 100-token window per predicted token


@torch.no_grad()
def piece_nll(model, ids: np.ndarray, seq_len: int, every_position: bool) -> tuple[float, int]:
    """Summed NLL (nats) of a piece's tokens after the first, and how many were scored.

    Every-position models read the piece in chunks of ``seq_len`` carrying their state
    (LSTM) or restarting it (transformer: context up to one chunk). The seed network is
    scored as it was trained: each target after a full window of ``seq_len`` tokens
    (evenly spaced targets when there are more than ``MAX_WINDOW_TARGETS``).
    """
    x = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    if len(x) < 2:
        return 0.0, 0
    if not every_position:
        targets = np.arange(seq_len, len(x))
        if len(targets) == 0:
            return 0.0, 0
        if len(targets) > MAX_WINDOW_TARGETS:
            targets = targets[np.linspace(0, len(targets) - 1, MAX_WINDOW_TARGETS).astype(int)]
        return window_nll(model, x, targets, seq_len), len(targets)
    return token_nlls(model, x, seq_len, carry=not hasattr(model, "max_len")).sum().item(), len(x) - 1


@torch.no_grad()
def token_nlls(model, x: torch.Tensor, seq_len: int, carry: bool) -> torch.Tensor:
    """NLL (nats) of each token of ``x`` after the first, ``x`` read in chunks of ``seq_len``;
    ``carry``: each chunk continues from the state the one before left (else starts fresh)."""
    state, out = None, []
    for start in range(0, len(x) - 1, seq_len):
        chunk = x[start:start + seq_len + 1]
        logits, new_state = model(chunk[None, :-1], state=state)
        out.append(torch.nn.functional.cross_entropy(logits[0].float(), chunk[1:], reduction="none"))
        state = new_state if carry else None
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def window_nll(model, x: torch.Tensor, targets: np.ndarray, window: int, batch: int = 256) -> float:
    """Summed NLL (nats) of the tokens ``x[t]`` for ``t`` in ``targets`` (each >= ``window``),
    each predicted from a fresh state fed only the ``window`` tokens before it, in batches."""
    total = 0.0
    for k in range(0, len(targets), batch):
        t = torch.as_tensor(targets[k:k + batch])
        windows = x[t[:, None] - window + torch.arange(window)]
        logits, _ = model(windows, last_only=True)
        total += torch.nn.functional.cross_entropy(logits[:, -1].float(), x[t], reduction="sum").item()
    return total


def heldout_nll(run, pieces: Iterable[tuple[np.ndarray, int]]) -> dict:
    """NLL per token, perplexity and NLL per note over (token ids, note count) pieces."""
    every = getattr(run.model, "trains_every_position", True)
    total, scored, tokens, notes = 0.0, 0, 0, 0
    for ids, n_notes in pieces:
        nll, n = piece_nll(run.model, ids, run.config.seq_len, every)
        total, scored = total + nll, scored + n
        tokens, notes = tokens + max(0, len(ids) - 1), notes + n_notes
    if scored == 0:
        return {"nll_per_token": None, "perplexity": None, "nll_per_note": None, "tokens": 0, "notes": notes}
    per_token = total / scored
    # scale to every token of the held-out pieces when only a sample of positions was scored
    return {"nll_per_token": per_token, "perplexity": math.exp(per_token),
            "nll_per_note": per_token * tokens / max(1, notes), "tokens": tokens, "notes": notes}
