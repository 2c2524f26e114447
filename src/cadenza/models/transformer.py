"""Decoder-only transformer: pre-norm blocks, rotary position embeddings, causal attention
through ``scaled_dot_product_attention``, GELU MLP, output tied to the token embedding.

``state`` is the KV cache: ``None`` to start, otherwise a tuple with one ``(k, v)`` pair per
layer, each ``[batch, heads, cached_time, head_dim]``. New tokens are placed at the absolute
positions that follow the cache, so a sequence fed at once, token by token or in chunks gives
the same logits. Positions are limited to ``max_len``: a call that would take the cache past
it raises ``ValueError`` (the caller should crop the context and start a fresh cache).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import DIM, DROPOUT, HEADS, LAYERS, SWITCH, Spec


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding, "rotate half" form: pairs (x[i], x[i + half]) turn by pos * freq[i]."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, cos, sin, cache):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2)
                   for t in self.qkv(x).split(C, dim=2))           # each [B, H, T, hd]
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        past = 0
        if cache is not None:
            past = cache[0].size(2)
            k, v = torch.cat((cache[0], k), dim=2), torch.cat((cache[1], v), dim=2)
        mask, causal = None, False
        if T > 1 and past == 0:
            causal = True                  # plain prompt: ordinary causal mask
        elif T > 1:                        # chunk after a cache: query i sees keys <= past + i
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
        # (one new token after a cache sees every key: no mask)
        # no dropout on the attention weights: on the CPU it forces SDPA's unfused kernel,
        # which trained 2.3x slower (1,081 vs 2,534 tokens/s, 4 x 256, 1,024 tokens, 1 thread)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.drop(self.proj(y)), (k, v)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim, bias=False), nn.GELU(),
                                 nn.Linear(4 * dim, dim, bias=False), nn.Dropout(dropout))

    def forward(self, x, cos, sin, cache):
        a, cache = self.attn(self.norm1(x), cos, sin, cache)
        x = x + a
        return x + self.mlp(self.norm2(x)), cache


class TransformerModel(nn.Module):
    trains_every_position = True
    OPTIONS = {"dim": DIM, "layers": LAYERS, "heads": HEADS, "dropout": DROPOUT, "max_len": Spec(int, 1, 1 << 17),
               "tie_weights": SWITCH}

    def __init__(self, vocab_size: int, dim: int = 256, layers: int = 4, heads: int = 4,
                 dropout: float = 0.1, max_len: int = 4096, tie_weights: bool = True):
        super().__init__()
        if dim % heads or (dim // heads) % 2:
            raise ValueError(f"dim ({dim}) must split into {heads} heads of even size")
        self.vocab_size, self.max_len = vocab_size, max_len
        self.embed = nn.Embedding(vocab_size, dim)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab_size, bias=False)
        # rotary tables for every position, [max_len, head_dim]; not saved in checkpoints
        half = dim // heads // 2
        freq = 10000.0 ** (-torch.arange(half, dtype=torch.float32) / half)
        angle = torch.outer(torch.arange(max_len, dtype=torch.float32), freq).repeat(1, 2)
        self.register_buffer("cos", angle.cos(), persistent=False)
        self.register_buffer("sin", angle.sin(), persistent=False)
        for name, p in self.named_parameters():        # GPT-2 style initialisation
            if p.dim() > 1:
                std = 0.02 / (2 * layers) ** 0.5 if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, std=std)
        if tie_weights:
            self.out.weight = self.embed.weight

    def forward(self, ids: torch.Tensor, state=None, last_only: bool = False):
        T = ids.size(1)
        past = 0 if state is None else state[0][0].size(2)
        if past + T > self.max_len:
            raise ValueError(f"sequence of {past + T} tokens (cache {past} + input {T}) exceeds "
                             f"max_len {self.max_len}; crop the context and restart the cache")
        x = self.drop(self.embed(ids))
        cos = self.cos[past:past + T].to(x.dtype)
        sin = self.sin[past:past + T].to(x.dtype)
        caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, cos, sin, None if state is None else state[i])
            caches.append(cache)
        if last_only:
            x = x[:, -1:]
        return self.out(self.norm(x)), tuple(caches)

    @staticmethod
    def select_rows(state, index: torch.Tensor):
        return tuple((k.index_select(0, index), v.index_select(0, index)) for k, v in state)
