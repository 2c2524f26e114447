"""Model registry: a new model is one module plus one line here.

Every model maps token ids to next-token logits and can run one step at a time:

    logits, state = model(ids, state=None, last_only=False)

``ids`` is a LongTensor ``[batch, time]``; ``logits`` is ``[batch, time, vocab]`` (or
``[batch, 1, vocab]`` with ``last_only``); ``state`` is what the model needs to continue
(LSTM hidden state, transformer KV cache). Feeding a sequence in one call or token by token
with the returned state gives the same logits.
"""
from __future__ import annotations

import importlib

import torch

from ..errors import CadenzaError

_REGISTRY = {
    "seed_lstm": "cadenza.models.seed_lstm:SeedLSTM",
    "lstm": "cadenza.models.lstm:LSTMModel",
    "transformer": "cadenza.models.transformer:TransformerModel",
}
NAMES = tuple(_REGISTRY)


def model_class(name: str) -> type[torch.nn.Module]:
    if name not in _REGISTRY:
        raise CadenzaError(f"unknown model {name!r}; choose one of {', '.join(NAMES)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def create(name: str, vocab_size: int, options: dict | None = None) -> torch.nn.Module:
    cls = model_class(name)
    try:
        return cls(vocab_size=vocab_size, **(options or {}))
    except TypeError as exc:
        raise CadenzaError(f"bad options for model {name!r}: {exc}") from None


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
