"""Model registry: a new model is one module plus one line here.

Every model declares the options it takes beside its ``__init__`` (``OPTIONS``, name ->
:class:`~cadenza.spec.Spec`; the shared ones below), which a run's config.json and a new
training are checked against (:func:`declared_options`). Every model maps token ids to
next-token logits and can run one step at a time:

    logits, state = model(ids, state=None, last_only=False)

``ids`` is a LongTensor ``[batch, time]``; ``logits`` is ``[batch, time, vocab]`` (or
``[batch, 1, vocab]`` with ``last_only``); ``state`` is what the model needs to continue
(LSTM hidden state, transformer KV cache). Feeding a sequence in one call or token by token
with the returned state gives the same logits.

and picks rows of its state, so generation can drop the pieces that are done (a step costs
less with fewer: 8 pieces 5.7 ms, one 1.7 ms with the shipped base) or repeat the ones it keeps:

    state = model.select_rows(state, index)   # index: LongTensor of batch rows, may repeat
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import CadenzaError
from ..spec import Spec

if TYPE_CHECKING:  # torch is imported where a model is made: the command's --help reads NAMES only
    import torch

_REGISTRY = {
    "seed_lstm": "cadenza.seed.model:SeedLSTM",
    "lstm": "cadenza.models.lstm:LSTMModel",
    "lstm_memory": "cadenza.models.lstm_memory:LSTMMemoryModel",
    "transformer": "cadenza.models.transformer:TransformerModel",
}
NAMES = tuple(_REGISTRY)

# options several models share, so the same name means the same range in each
DIM = Spec(int, 1, 1 << 16)
LAYERS = Spec(int, 1, 256)
HEADS = Spec(int, 1, 1024)
DROPOUT = Spec(float, 0, 1, hi_open=True)
SWITCH = Spec(bool)


def model_class(name: str) -> type[torch.nn.Module]:
    if name not in _REGISTRY:
        raise CadenzaError(f"unknown model {name!r}; choose one of {', '.join(NAMES)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def declared_options(name: str) -> dict[str, Spec]:
    """The options the model ``name`` declares (its class's ``OPTIONS``)."""
    return model_class(name).OPTIONS


MAX_PARAMETERS = 2**31  # 8 GB of float32 weights: a larger model is a damaged or hostile configuration


def check_options(name: str, options: dict) -> None:
    """What the model's constructor itself refuses beyond each option's spec (a ``dim`` that
    does not split into ``heads`` heads of even size), found by building it on the meta device
    (no memory): the rule stays in the constructor, and a config meets it before any work."""
    import torch

    with torch.device("meta"):
        _built(name, 2, options)


def create(name: str, vocab_size: int, options: dict | None = None) -> torch.nn.Module:
    """A model of ``name``; its size is counted on the meta device (no memory) first."""
    import torch

    with torch.device("meta"):
        size = count_parameters(_built(name, vocab_size, options))
    if size > MAX_PARAMETERS:
        raise CadenzaError(f"model_options {options} make a {name} model of {size:,} parameters, "
                           f"more than the {MAX_PARAMETERS:,} cadenza builds")
    return _built(name, vocab_size, options)


def _built(name: str, vocab_size: int, options: dict | None) -> torch.nn.Module:
    """The model, what its constructor refuses said as one line."""
    cls = model_class(name)
    try:
        return cls(vocab_size=vocab_size, **(options or {}))
    except (TypeError, ValueError) as exc:
        raise CadenzaError(f"bad options for model {name!r}: {str(exc).splitlines()[0][:200]}") from None


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
