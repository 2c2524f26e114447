"""Choosing the next token: grammar mask, temperature, top-k, top-p (nucleus)."""
from __future__ import annotations

import torch


def check_sampling_args(temperature: float, top_k: int, top_p: float) -> None:
    from .errors import CadenzaError

    if temperature < 0:
        raise CadenzaError(f"--temperature must be >= 0 (0 = argmax), got {temperature}")
    if top_k < 0:
        raise CadenzaError(f"--top-k must be >= 0 (0 = off), got {top_k}")
    if not 0 < top_p <= 1:
        raise CadenzaError(f"--top-p must be in (0, 1], got {top_p}")


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                allowed: torch.Tensor | None = None, generator: torch.Generator | None = None):
    """Next token per row of ``logits [B, V]``.

    Returns ``(ids [B], masked_mass [B])`` where ``masked_mass`` is the probability the
    model gave to tokens the grammar forbids (at temperature 1).
    """
    logits = logits.float()
    masked_mass = torch.zeros(logits.shape[0])
    if allowed is not None:
        probs = torch.softmax(logits, dim=-1)
        masked_mass = (probs * (~allowed)).sum(-1).cpu()
        logits = logits.masked_fill(~allowed, float("-inf"))
    if temperature == 0:
        return logits.argmax(-1), masked_mass
    logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop = cum - torch.softmax(sorted_logits, dim=-1) >= top_p  # keep the first token always
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1), masked_mass
