"""Frame model: an LSTM over time steps plus a masked within-step token distribution.

For step t the LSTM reads the previous frame (and a start flag at t = 0) and gives
h_t, a summary of frames < t. The step's tokens (ascending pitches, then EOS) are
predicted one after another from h_t and the frame-so-far: since pitches ascend,
the partial frame fully determines the within-step state, so every token of a
piece can be scored in parallel under teacher forcing. Pitches at or below the
last one emitted in the step are masked to -inf before the softmax, so the
distribution is normalised over exactly the valid frames. A `descending` model reads
the pitch axis reversed, so it serialises each step from the top pitch down: the same
frames, factorised in the other order (members of both kinds make a diverse ensemble).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .frames import N_PITCHES, roll_tokens


@dataclass
class ModelConfig:
    n_pitches: int = N_PITCHES
    input_dim: int = 128  # embedding of the previous frame
    hidden: int = 256  # LSTM units
    layers: int = 1
    mlp: int = 256  # width of the within-step network
    conv_radius: int = 24  # semitones seen by the pitch-relative (convolutional) logit terms
    rel_channels: int = 0  # extra pitch-relative feature maps, mixed per token by learned gates
    periods: tuple = ()  # step-index periods given to the LSTM as sin/cos phase features
    key_range: int = 0  # >0: the LSTM is told each piece's transposition (|shift| <= key_range)
    dropout: float = 0.3
    input_dropout: float = 0.0  # training only: drop notes of the previous frame the LSTM reads
    descending: bool = False  # serialise each step's pitches from the top down instead

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items() if k != "n_pitches")


class FrameModel(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        n, m = cfg.n_pitches, cfg.mlp
        self.inp = nn.Linear(n + 1 + 2 * len(cfg.periods), cfg.input_dim)  # prev frame, start, phases
        self.lstm = nn.LSTM(cfg.input_dim, cfg.hidden, cfg.layers, batch_first=True,
                            dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.from_h = nn.Linear(cfg.hidden, m)
        self.from_partial = nn.Linear(n, m, bias=False)
        self.from_last = nn.Embedding(n + 1, m)  # index n: nothing emitted yet in this step
        self.hid = nn.Linear(m, m)
        self.out = nn.Linear(m, n + 1)
        r = cfg.conv_radius
        self.conv = nn.Conv1d(2, 1 + cfg.rel_channels, 2 * r + 1, padding=r, bias=False)  # (prev, partial)
        self.key = nn.Embedding(2 * cfg.key_range + 1, cfg.input_dim) if cfg.key_range else None
        self.gate = nn.Linear(m, cfg.rel_channels) if cfg.rel_channels else None
        self.drop = nn.Dropout(cfg.dropout)
        # the convolution as one matrix product: kernel tap of (input pitch q, output pitch p)
        tap = torch.arange(n)[:, None] - torch.arange(n)[None, :] + r
        self.register_buffer("tap", tap.clamp(0, 2 * r), persistent=False)
        self.register_buffer("in_reach", (tap >= 0) & (tap <= 2 * r), persistent=False)

    def relative_logits(self, prev: torch.Tensor, partial: torch.Tensor) -> torch.Tensor:
        """self.conv over (prev, partial) as (N, 2n) @ (2n, C n): the same cross-correlation
        with zero padding, much faster than a 2-channel convolution on the CPU -> (N, C, n)."""
        n = self.cfg.n_pitches
        w = self.conv.weight[:, :, self.tap] * self.in_reach  # (C, 2, q, p)
        matrix = w.permute(1, 2, 0, 3).reshape(2 * n, -1)
        return (torch.cat([prev, partial], dim=1) @ matrix).view(len(prev), -1, n)

    def orient(self, rolls: list[np.ndarray]) -> list[np.ndarray]:
        """The rolls as this model reads them: pitch axis reversed for a descending model,
        so that "ascending" in its serialisation is top-down on the keyboard."""
        if not self.cfg.descending:
            return rolls
        return [np.ascontiguousarray(r[:, ::-1]) for r in rolls]

    def run_steps(self, prev: torch.Tensor, start: torch.Tensor, state=None, t0: int = 0,
                  shift: torch.Tensor | None = None):
        """prev (B, T, n) previous frames, start (B, T) flags, t0 index of the first step,
        shift (B,) transposition applied to each piece (None: untransposed data)
        -> (B, T, mlp) step features, LSTM state."""
        if self.training and self.cfg.input_dropout:
            prev = prev * (torch.rand_like(prev) >= self.cfg.input_dropout)
        feats = [prev, start.unsqueeze(-1)]
        if self.cfg.periods:
            t = torch.arange(t0, t0 + prev.shape[1], dtype=torch.float32, device=prev.device)
            ang = 2 * torch.pi * t[:, None] / torch.tensor(self.cfg.periods, dtype=torch.float32)
            feats.append(torch.cat([ang.sin(), ang.cos()], -1).expand(prev.shape[0], -1, -1))
        x = self.inp(torch.cat(feats, dim=-1))
        if self.key is not None:
            if shift is None:
                shift = torch.zeros(prev.shape[0], dtype=torch.long, device=prev.device)
            x = x + self.key(shift + self.cfg.key_range).unsqueeze(1)
        h, state = self.lstm(self.drop(torch.tanh(x)), state)
        return self.from_h(self.drop(h)), state

    def token_log_probs(self, hfeat: torch.Tensor, frame: torch.Tensor, prev: torch.Tensor,
                        targets: torch.Tensor) -> torch.Tensor:
        """log p(target | history, frame so far) for N tokens.

        hfeat (N, mlp): run_steps features of each token's step; frame (N, n): that
        step's full frame; prev (N, n): the previous frame; targets (N,) token ids.
        The frame-so-far is `frame` restricted to pitches below the target (all of it
        for EOS), which is exactly what precedes the target in the serialisation.
        """
        n = self.cfg.n_pitches
        pitch = torch.arange(n, device=frame.device)
        partial = frame * (pitch < targets.unsqueeze(1))
        # last pitch emitted in this step, -1 if none
        last = ((partial > 0) * (pitch + 1)).amax(dim=1) - 1
        z = F.relu(hfeat + self.from_partial(partial) + self.from_last(torch.where(last < 0, n, last)))
        z = z + F.relu(self.hid(self.drop(z)))
        logits = self.out(self.drop(z))
        rel = self.relative_logits(prev, partial)  # (N, 1 + rel_channels, n)
        if self.gate is None:
            rel = rel[:, 0]
        else:
            rel = rel[:, 0] + torch.einsum("nk,nkp->np", self.gate(z), rel[:, 1:])
        logits = logits + F.pad(rel, (0, 1))
        invalid = pitch.unsqueeze(0) <= last.unsqueeze(1)  # only pitches above the last may follow
        logits = torch.cat([logits[:, :n].masked_fill(invalid, float("-inf")), logits[:, n:]], dim=1)
        return F.log_softmax(logits, dim=1).gather(1, targets.unsqueeze(1)).squeeze(1)

    @torch.no_grad()
    def frame_log_probs(self, roll) -> torch.Tensor:
        """(T, n) binary roll -> (T,) exact log p(frame_t | frames_<t) (in eval mode)."""
        was_training = self.training
        self.eval()
        roll = torch.as_tensor(self.orient([np.asarray(roll)])[0], dtype=torch.float32)
        steps, targets = (torch.from_numpy(a) for a in roll_tokens(roll.numpy()))
        prev = torch.cat([torch.zeros_like(roll[:1]), roll[:-1]])
        start = torch.zeros(len(roll))
        start[0] = 1
        hfeat, _ = self.run_steps(prev[None], start[None])
        logp = self.token_log_probs(hfeat[0, steps], roll[steps], prev[steps], targets)
        self.train(was_training)
        return torch.zeros(len(roll)).index_add_(0, steps, logp)
