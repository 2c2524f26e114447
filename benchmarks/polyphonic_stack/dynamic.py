"""Dynamic evaluation (Krause et al., 2018): adapt the weights to a piece while scoring it.

A piece is scored in segments of `segment` time steps. Each segment's frames are
scored with the current weights first; only then does one SGD step on that segment's
loss move the weights (and an optional decay pulls them back towards the trained
weights). So the probability of every frame depends only on the training data and the
frames before it in the same piece: it is still an exact, causal
log p(frame_t | frames_<t), normalised over the valid frames. The weights are reset
to the trained ones at the start of every piece, and no piece sees another.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .frames import Batch
from .model import FrameModel


@dataclass
class DynamicConfig:
    segment: int = 1  # time steps per adaptation step
    lrs: tuple = (0.0,)  # SGD learning rates to choose from on valid (0: static evaluation)
    decay: float = 0.0  # per segment, fraction of the way back to the trained weights
    tune_steps: int = 0  # choose the learning rate on the first valid pieces covering this many steps (0: all)

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items())


def dynamic_log_probs(model: FrameModel, rolls: list[np.ndarray], lr: float, segment: int = 1,
                      decay: float = 0.0) -> torch.Tensor:
    """log p(frame_t | frames_<t) of every step of every piece (pieces concatenated in
    order), adapting the weights within each piece; the model is left as it was."""
    was_training = model.training
    model.eval()  # no dropout while adapting
    params = [p for p in model.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in params]
    out = []
    try:
        for roll in model.orient(rolls):
            with torch.no_grad():
                for p, p0 in zip(params, trained):
                    p.copy_(p0)
            batch = Batch([roll])
            T = len(roll)
            per_step = torch.zeros(T, dtype=torch.float64)
            bounds = torch.searchsorted(batch.t, torch.arange(0, T + segment, segment).clamp(max=T))
            state = None
            for i, c0 in enumerate(range(0, T, segment)):
                c1 = min(T, c0 + segment)
                adapt = lr > 0 and c1 < T  # the last segment's update would never be used
                with torch.set_grad_enabled(adapt):
                    hfeat, state = model.run_steps(batch.prev[:, c0:c1], batch.start[:, c0:c1], state, c0)
                    lo, hi = int(bounds[i]), int(bounds[i + 1])
                    t, y = batch.t[lo:hi], batch.y[lo:hi]
                    logp = model.token_log_probs(hfeat[0, t - c0], batch.frames[0, t], batch.prev[0, t], y)
                per_step.index_add_(0, t, logp.detach().double())
                if adapt:
                    grads = torch.autograd.grad(-logp.sum() / (c1 - c0), params, allow_unused=True)
                    with torch.no_grad():
                        for p, p0, g in zip(params, trained, grads):
                            if g is not None:
                                p.add_(g, alpha=-lr)
                            if decay:
                                p.lerp_(p0, decay)
                    state = tuple(s.detach() for s in state)
            out.append(per_step)
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, trained):
                p.copy_(p0)
        model.train(was_training)
    return torch.cat(out)
