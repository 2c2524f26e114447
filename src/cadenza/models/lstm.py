"""cadenza's default model: token embedding, stacked LSTM, dropout, output tied to the
embedding. Trained on every position of a window (teacher forcing)."""
from __future__ import annotations

import torch
from torch import nn

from . import DIM, DROPOUT, LAYERS, SWITCH


class LSTMModel(nn.Module):
    trains_every_position = True
    OPTIONS = {"dim": DIM, "layers": LAYERS, "dropout": DROPOUT, "tie_weights": SWITCH}

    def __init__(self, vocab_size: int, dim: int = 512, layers: int = 3, dropout: float = 0.2,
                 tie_weights: bool = True):
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, dim)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(dim, dim, num_layers=layers, dropout=dropout if layers > 1 else 0.0,
                            batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab_size)
        if tie_weights:
            self.out.weight = self.embed.weight
        nn.init.normal_(self.embed.weight, std=dim ** -0.5)

    def forward(self, ids: torch.Tensor, state=None, last_only: bool = False):
        out, state = self.lstm(self.drop(self.embed(ids)), state)
        if last_only:
            out = out[:, -1:]
        return self.out(self.drop(self.norm(out))), state

