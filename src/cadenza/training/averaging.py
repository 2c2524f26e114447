"""A moving average of the weights (Polyak averaging, exponential): on a small folder the
validation loss of the averaged weights is lower and less noisy than that of the weights the
optimizer steps, so a fine-tune evaluates and keeps the average. PyTorch's ``AveragedModel``
does the averaging; this module only builds it (the trainer saves it in the state and
restores it with the model and optimizer)."""
from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def weight_average(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """The average of ``model``'s parameters with ``decay`` per step (None when 0); a resumed
    run loads its saved one (``state["average"]``) with the model and optimizer."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


def scored(model: torch.nn.Module, average: AveragedModel | None) -> torch.nn.Module:
    """The weights that are evaluated and kept: the average once it has one step, else the model."""
    if average is None or int(average.n_averaged) == 0:
        return model
    return average.module
