"""An LSTM that remembers: the stacked LSTM of ``lstm.py``, then attention over its own past
outputs (rotary positions, a window of ``window`` tokens), so a position can look back to
the bar where a motif, a texture or a section began, and copy it with variation.

The LSTM carries the near past in its state; the attention block reads the far past from
its cache; with ``cache_window`` a continuous cache (:mod:`cadenza.models.cache`, keyed by
the LSTM's outputs) mixes in the tokens that followed moments like the present one. ``state``
is ``(lstm_state, (keys, values), position, cache)`` with the attention keys and values of at
most ``window - 1`` earlier tokens and the cache's of at most ``cache_window``. Rotary
positions make the scores depend only on the distance between two tokens, so the oldest
entries can be dropped at any time and a sequence fed at once, token by token or in chunks
gives the same logits, however long.

The attention block's output projections start at zero: a model grown from a trained
``lstm`` run (same ``dim``, ``layers``, vocabulary) computes that run's logits exactly until
training teaches the block what to look at (``grown_from``: ``cadenza train --from base
--model lstm_memory``); with ``frozen`` only the block learns (a fine-tune trains all).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import DIM, DROPOUT, HEADS, LAYERS, SWITCH, Spec
from .cache import OPTIONS as CACHE_OPTIONS, make as make_cache
from .lstm import lstm_rows
from .tape import remember, rows
from .transformer import rotate


class Memory(nn.Module):
    """Pre-norm causal self-attention over a window of past positions, then an MLP."""

    def __init__(self, dim: int, heads: int, window: int, dropout: float):
        super().__init__()
        if dim % heads or (dim // heads) % 2:
            raise ValueError(f"dim ({dim}) must split into {heads} heads of even size")
        self.heads, self.window = heads, window
        half = dim // heads // 2
        self.register_buffer("freq", 10000.0 ** (-torch.arange(half, dtype=torch.float32) / half), persistent=False)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim, bias=False), nn.GELU(), nn.Linear(2 * dim, dim, bias=False))
        self.drop = nn.Dropout(dropout)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.mlp[2].weight)

    def _mask(self, T: int, past: int, device) -> torch.Tensor:
        """Query i (absolute past + i) sees keys j with 0 <= (past + i) - j < window."""
        q = torch.arange(T, device=device)[:, None] + past
        k = torch.arange(past + T, device=device)[None, :]
        return (k <= q) & (k > q - self.window)

    def forward(self, x: torch.Tensor, cache, position: int):
        B, T, C = x.shape
        angle = torch.outer(torch.arange(position, position + T, device=x.device, dtype=torch.float32), self.freq)
        cos, sin = angle.cos().repeat(1, 2).to(x.dtype), angle.sin().repeat(1, 2).to(x.dtype)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2)
                   for t in self.qkv(self.norm1(x)).split(C, dim=2))
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        keys, k = remember(None if cache is None else cache[0], k, 2, self.window - 1)
        values, v = remember(None if cache is None else cache[1], v, 2, self.window - 1)
        past = k.size(2) - T
        if past == 0 and T <= self.window or T == 1:  # one step sees all it was given: no mask
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=self._mask(T, past, x.device))
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))
        x = x + self.drop(self.mlp(self.norm2(x)))
        return x, (keys, values)


class LSTMMemoryModel(nn.Module):
    trains_every_position = True
    grown_from = {"lstm": "memory."}  # an lstm run's weights fit all but the parameters under this prefix
    OPTIONS = {"dim": DIM, "layers": LAYERS, "dropout": DROPOUT, "heads": HEADS, "window": Spec(int, 2, 1 << 17),
               "tie_weights": SWITCH, "frozen": SWITCH, **CACHE_OPTIONS}

    def __init__(self, vocab_size: int, dim: int = 512, layers: int = 3, dropout: float = 0.2,
                 heads: int = 8, window: int = 2048, tie_weights: bool = True, frozen: bool = False, **cache_options):
        super().__init__()
        if window < 2:
            raise ValueError(f"window must be at least 2 tokens, got {window}")
        # keys: the LSTM's outputs (closer to the music than the memory's: lower NLL on validation pieces)
        self.cache = make_cache(**cache_options)
        self.vocab_size, self.window = vocab_size, window
        self.reach = max(window, self.cache.window if self.cache else 0)  # tokens of a primer generation feeds it
        self.embed = nn.Embedding(vocab_size, dim)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(dim, dim, num_layers=layers, dropout=dropout if layers > 1 else 0.0, batch_first=True)
        self.memory = Memory(dim, heads, window, dropout)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab_size)
        if tie_weights:
            self.out.weight = self.embed.weight
        nn.init.normal_(self.embed.weight, std=dim ** -0.5)
        if frozen:  # only the memory learns: a grown run keeps its LSTM, and trains without its backward pass
            for name, p in self.named_parameters():
                p.requires_grad_(name.startswith("memory."))

    def forward(self, ids: torch.Tensor, state=None, last_only: bool = False):
        lstm_state, cache, position, votes = (None, None, 0, None) if state is None else state
        keys, lstm_state = self.lstm(self.drop(self.embed(ids)), lstm_state)
        h, cache = self.memory(keys, cache, position)
        if last_only:
            h = h[:, -1:]
        logits = self.out(self.drop(self.norm(h)))
        if self.cache is not None:
            logits, votes = self.cache(torch.log_softmax(logits, dim=-1), keys, ids, votes)
        return logits, (lstm_state, cache, position + ids.size(1), votes)

    def select_rows(self, state, index: torch.Tensor):
        lstm_state, (keys, values), position, votes = state
        votes = self.cache.select_rows(votes, index) if self.cache is not None else None
        return lstm_rows(lstm_state, index), (rows(keys, index), rows(values, index)), position, votes
