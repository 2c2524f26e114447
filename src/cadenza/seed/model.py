"""The seed notebook's network in PyTorch.

Keras original: LSTM(512, recurrent_dropout=0.3, return_sequences) -> LSTM(512, same) ->
LSTM(512) -> BatchNorm -> Dropout(0.3) -> Dense(256) -> ReLU -> BatchNorm -> Dropout(0.3)
-> Dense(vocab) -> softmax, input = token index / vocabulary size as one feature.

Two documented differences:
* Keras' ``recurrent_dropout`` (a dropout mask on the hidden-to-hidden path inside the
  cell) has no fused cuDNN/oneDNN kernel in PyTorch; we apply the same rate, 0.3, to the
  output of the first two LSTM layers instead (``nn.LSTM(dropout=0.3)``), which keeps the
  fast fused kernel and the same regularisation strength in spirit.
* PyTorch's LSTM keeps two bias vectors per layer (``b_ih`` and ``b_hh``) where Keras keeps
  one, so each layer has 4 x 512 more parameters (6,144 in all).
"""
from __future__ import annotations

import torch
from torch import nn

from ..models import DIM, DROPOUT, LAYERS
from ..models.lstm import lstm_rows

KERAS_RMSPROP = {"lr": 1e-3, "alpha": 0.9, "eps": 1e-7}


class SeedLSTM(nn.Module):
    trains_every_position = False  # one target per window, as the notebook trains
    OPTIONS = {"hidden": DIM, "layers": LAYERS, "dense": DIM, "dropout": DROPOUT}

    def __init__(self, vocab_size: int, hidden: int = 512, layers: int = 3, dense: int = 256,
                 dropout: float = 0.3):
        super().__init__()
        self.vocab_size = vocab_size
        self.lstm = nn.LSTM(1, hidden, num_layers=layers, dropout=dropout, batch_first=True)
        self.head = nn.Sequential(
            nn.BatchNorm1d(hidden), nn.Dropout(dropout),
            nn.Linear(hidden, dense), nn.ReLU(),
            nn.BatchNorm1d(dense), nn.Dropout(dropout),
            nn.Linear(dense, vocab_size),
        )

    def forward(self, ids: torch.Tensor, state=None, last_only: bool = False):
        x = (ids.float() / self.vocab_size).unsqueeze(-1)
        out, state = self.lstm(x, state)
        if last_only:
            out = out[:, -1:]
        b, t, h = out.shape
        logits = self.head(out.reshape(b * t, h)).reshape(b, t, -1)
        return logits, state

    select_rows = staticmethod(lstm_rows)

    @staticmethod
    def keras_parameter_count(vocab_size: int, hidden: int = 512, layers: int = 3,
                              dense: int = 256) -> int:
        """Trainable parameters of the notebook's Keras model (one LSTM bias per gate)."""
        lstm = sum(4 * (hidden * ((1 if k == 0 else hidden) + hidden) + hidden) for k in range(layers))
        return lstm + 2 * hidden + (hidden * dense + dense) + 2 * dense + (dense * vocab_size + vocab_size)
