"""A moving average of the weights (Polyak averaging, exponential): on a small folder the
validation loss of the averaged weights is lower and less noisy than that of the weights the
optimizer steps, so a fine-tune evaluates and keeps the average. PyTorch's ``AveragedModel``
does the averaging; this module only builds it and carries it through a checkpoint."""
from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .errors import CadenzaError


def weight_average(model: torch.nn.Module, decay: float, state: dict | None = None) -> AveragedModel | None:
    """The average of ``model``'s parameters with ``decay`` per step (None when 0), restored
    from a checkpoint's ``state`` when it holds one."""
    if not decay:
        return None
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)
    if state is not None:
        if "average" not in state:
            raise CadenzaError("the saved state has no weight average (the run was trained without --ema); "
                               "resume it with --ema 0")
        try:
            average.load_state_dict(state["average"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise CadenzaError(f"the saved weight average does not match this run's model: {str(exc)[:200]}") from None
    return average


def scored(model: torch.nn.Module, average: AveragedModel | None) -> torch.nn.Module:
    """The weights that are evaluated and kept: the average once it has one step, else the model."""
    if average is None or int(average.n_averaged) == 0:
        return model
    return average.module
