"""The ``frame`` representation: a time step is its active pitches, ascending, then EOS.

Token ids: 0..n-1 are pitches (column k = MIDI pitch 21 + k for n = 88), n is
end-of-step (EOS). The model's input side uses the previous *frame* plus a start flag
rather than a BOS token (see model.py).
"""

from __future__ import annotations

import numpy as np
import torch

N_PITCHES = 88
EOS = N_PITCHES


def frame_to_tokens(frame: np.ndarray) -> np.ndarray:
    """Binary frame (n,) -> ascending active pitch ids followed by EOS (= n)."""
    frame = np.asarray(frame)
    return np.append(np.flatnonzero(frame), len(frame)).astype(np.int64)


def tokens_to_frame(tokens, n_pitches: int = N_PITCHES) -> np.ndarray:
    """Inverse of frame_to_tokens (tokens must end with EOS and ascend)."""
    tokens = list(tokens)
    if not tokens or tokens[-1] != n_pitches:
        raise ValueError("a frame's tokens must end with end-of-step")
    pitches = tokens[:-1]
    if any(b <= a for a, b in zip(pitches, pitches[1:])) or any(not 0 <= p < n_pitches for p in pitches):
        raise ValueError("pitch tokens must be strictly ascending and in range")
    frame = np.zeros(n_pitches, dtype=np.uint8)
    frame[pitches] = 1
    return frame


def roll_tokens(roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, n) roll -> (step index per token, target token) in serialised order."""
    t_idx, pitch = np.nonzero(roll)  # row-major: by step, then ascending pitch
    n_steps, n = roll.shape
    steps = np.concatenate([t_idx, np.arange(n_steps)])
    targets = np.concatenate([pitch, np.full(n_steps, n)])
    order = np.lexsort((targets, steps))  # EOS (= n) sorts last within its step
    return steps[order].astype(np.int64), targets[order].astype(np.int64)


def transpose_range(roll: np.ndarray, max_shift: int) -> tuple[int, int]:
    """Shifts (lo <= 0 <= hi, |shift| <= max_shift) keeping every note inside the keyboard."""
    cols = np.flatnonzero(roll.any(axis=0))
    if cols.size == 0:
        return 0, 0
    return -min(max_shift, int(cols[0])), min(max_shift, roll.shape[1] - 1 - int(cols[-1]))


def transpose(roll: np.ndarray, shift: int) -> np.ndarray:
    """Shift a roll by `shift` semitones (caller guarantees no note falls off)."""
    return np.roll(roll, shift, axis=1) if shift else roll


class Batch:
    """Pieces padded to (B, T, n) with their tokens sorted by time step."""

    def __init__(self, rolls: list[np.ndarray], shifts: list[int] | None = None):
        n = rolls[0].shape[1]
        self.shift = torch.tensor(shifts) if shifts is not None else None
        self.lengths = torch.tensor([len(r) for r in rolls])
        T = int(self.lengths.max())
        frames = np.zeros((len(rolls), T, n), dtype=np.float32)
        bs, ts, ys = [], [], []
        for b, roll in enumerate(rolls):
            frames[b, : len(roll)] = roll
            steps, targets = roll_tokens(roll)
            bs.append(np.full(len(steps), b))
            ts.append(steps)
            ys.append(targets)
        t = np.concatenate(ts)
        order = np.argsort(t, kind="stable")
        self.b = torch.from_numpy(np.concatenate(bs)[order])
        self.t = torch.from_numpy(t[order])
        self.y = torch.from_numpy(np.concatenate(ys)[order])
        self.frames = torch.from_numpy(frames)
        self.prev = torch.cat([torch.zeros_like(self.frames[:, :1]), self.frames[:, :-1]], dim=1)
        self.start = torch.zeros(len(rolls), T)
        self.start[:, 0] = 1
