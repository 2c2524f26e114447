"""A continuous cache (Grave, Joulin and Usunier, 2017): the model's next-token distribution
mixed with one over the tokens that followed earlier positions whose states resemble the
present one, so material the piece has already played can come back.

    logp, cache = ContinuousCache(window, scale, sentinel, gap, most)(logp, keys, ids, cache)

``keys`` ``[batch, time, dim]`` are the model's states at the positions of ``ids``; earlier
position ``i`` votes for the token that followed it, ``ids[i + 1]``, with weight
``exp(scale * cos(key_i, key_now))``. The model itself is one more voter, the sentinel, with
weight ``exp(scale * sentinel)`` (Merity et al.'s pointer sentinel, with a fixed score): the
cache takes over where the present closely resembles some past moment and stays out of the
way where nothing does. Only positions at least ``gap`` tokens back vote: the near past is
the model's own, and a cache that echoed the last few tokens would turn a sampled stutter
into a loop. The cache's share of the mixture is at most ``most``: where it would take over,
the model keeps the rest of its say, so what comes back comes back varied instead of copied
block by block. ``cache`` carries the normalised keys and the ids of the latest ``window``
positions (on tapes, :mod:`cadenza.models.tape`), so a piece read at once, token by token or
in chunks gives the same distribution, however long.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..spec import Spec
from .tape import remember, rows

# The cache's options, for every model that carries one: ``cache_window`` tokens (0: none).
OPTIONS = {"cache_window": Spec(int, 0, 1 << 17), "cache_scale": Spec(float, 0, 1000),
           "cache_sentinel": Spec(float, -1, 2), "cache_gap": Spec(int, 1, 1 << 17), "cache_most": Spec(float, 0, 1)}


def make(cache_window: int = 0, cache_scale: float = 40.0, cache_sentinel: float = 0.9, cache_gap: int = 128,
         cache_most: float = 0.7) -> "ContinuousCache | None":
    """The cache a model's options ask for, or None. The defaults were chosen on POP909 and
    piano-midi.de validation pieces with the shipped base, by NLL and by what 8 x 32 sampled bars
    bring back: with every vote counted in full the sentinel was a switch, not a dial (0.95
    copied whole blocks, 1.05 brought nothing back, 1.0 only loops of one bar over and over);
    votes from 128 tokens back at least (a bar or more) and the model keeping 30% of every step
    (most 0.7) bring bars back similar, not copied (docs/benchmarks.md, "Context use")."""
    if cache_window < 0:
        raise ValueError(f"cache_window must be 0 (no cache) or a number of tokens, got {cache_window}")
    return ContinuousCache(cache_window, cache_scale, cache_sentinel, cache_gap, cache_most) if cache_window else None


class ContinuousCache:
    def __init__(self, window: int, scale: float, sentinel: float, gap: int = 1, most: float = 1.0):
        self.window, self.scale, self.sentinel, self.gap, self.most = window, scale, sentinel, gap, most

    @staticmethod
    def select_rows(cache, index: torch.Tensor):
        return None if cache is None else (rows(cache[0], index), rows(cache[1], index))

    def __call__(self, logp: torch.Tensor, keys: torch.Tensor, ids: torch.Tensor, cache=None):
        """Mixed log-probabilities for each position of ``logp`` ``[B, T, V]`` (the last
        ``logp.size(1)`` positions of ``ids``), and the cache to continue from."""
        T = logp.size(1)  # the last T of the positions given are scored; all are remembered
        carried_keys, keys = remember(None if cache is None else cache[0], F.normalize(keys.float(), dim=-1), 1,
                                      self.window)
        carried_ids, ids = remember(None if cache is None else cache[1], ids, 1, self.window)
        total = ids.size(1)
        now = torch.arange(total - T, total, device=ids.device)
        # earlier key i (its next token ids[i + 1] is known) between gap and window tokens back
        earlier = torch.arange(total - 1, device=ids.device)[None, :]
        visible = (earlier <= now[:, None] - self.gap) & (earlier >= now[:, None] - self.window)
        # [B, T, total - 1], as earlier keys x present ones: a step reads the memory row by row
        # (the transposed product took twice as long at 2,048 tokens)
        scores = self.scale * (keys[:, :-1] @ keys[:, -T:].transpose(1, 2)).transpose(1, 2)
        scores = scores.masked_fill(~visible, float("-inf"))
        sentinel = scores.new_full((*scores.shape[:2], 1), self.scale * self.sentinel)
        weights = torch.softmax(torch.cat((scores, sentinel), dim=2), dim=2)
        share = 1 - weights[..., -1:]  # the cache's share, then at most ``most``
        weights = weights[..., :-1] * (share.clamp(max=self.most) / share.clamp_min(1e-12))
        model = 1 - share.clamp(max=self.most)
        votes = torch.zeros_like(logp, dtype=weights.dtype)
        votes.scatter_add_(2, ids[:, None, 1:].expand(-1, T, -1), weights)
        mixed = model * logp.float().exp() + votes
        return mixed.clamp_min(1e-30).log().to(logp.dtype), (carried_keys, carried_ids)
