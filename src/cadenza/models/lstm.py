"""cadenza's default model: token embedding, stacked LSTM, dropout, output tied to the
embedding. Trained on every position of a window (teacher forcing). With ``cache_window`` a
continuous cache (:mod:`cadenza.models.cache`, keyed by the LSTM's outputs, no weights) mixes in
the tokens that followed moments like the present one, so a piece's far past comes back; the
state is then ``(lstm_state, cache)``, else the LSTM's state alone."""
from __future__ import annotations

import torch
from torch import nn

from . import DIM, DROPOUT, LAYERS, SWITCH
from .cache import OPTIONS as CACHE_OPTIONS, make as make_cache


def lstm_rows(state, index: torch.Tensor):
    """An ``nn.LSTM``'s ``(h, c)`` (batch second) for the sequences ``index``."""
    return None if state is None else tuple(t.index_select(1, index) for t in state)


class LSTMModel(nn.Module):
    trains_every_position = True
    OPTIONS = {"dim": DIM, "layers": LAYERS, "dropout": DROPOUT, "tie_weights": SWITCH, **CACHE_OPTIONS}

    def __init__(self, vocab_size: int, dim: int = 512, layers: int = 3, dropout: float = 0.2,
                 tie_weights: bool = True, **cache_options):
        super().__init__()
        self.vocab_size = vocab_size
        self.cache = make_cache(**cache_options)
        if self.cache is not None:
            self.reach = self.cache.window  # tokens of a primer that generation feeds it
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
        lstm_state, votes = (state, None) if self.cache is None or state is None else state
        keys, lstm_state = self.lstm(self.drop(self.embed(ids)), lstm_state)
        out = keys[:, -1:] if last_only else keys
        logits = self.out(self.drop(self.norm(out)))
        if self.cache is None:
            return logits, lstm_state
        logits, votes = self.cache(torch.log_softmax(logits, dim=-1), keys, ids, votes)
        return logits, (lstm_state, votes)

    def select_rows(self, state, index: torch.Tensor):
        if self.cache is None:
            return lstm_rows(state, index)
        return lstm_rows(state[0], index), self.cache.select_rows(state[1], index)

