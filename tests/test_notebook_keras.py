"""benchmarks/notebook_keras.py: the seed notebook's own Keras code (optional extra `bench`).

Skipped when Keras 3 is absent: `make test` never needs it."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if not keras.__version__.startswith("3.") or keras.backend.backend() != "torch":
    pytest.skip("needs Keras 3 on the torch backend", allow_module_level=True)

import notebook_keras as nk  # noqa: E402  (after the backend is set; benchmarks/ is on pytest's pythonpath)

from cadenza.seed.model import SeedLSTM  # noqa: E402


def test_keras_network_is_the_notebooks_and_matches_cadenzas_parameter_count():
    notes = [f"C{k % 7}" if k % 3 else f"{k % 12}.{(k + 4) % 12}" for k in range(260)]
    vocab = sorted(set(notes))
    x, y = nk.prepare_sequences(notes, len(vocab))
    assert x.shape == (len(notes) - 100, 100, 1) and y.shape == (len(notes) - 100, len(vocab))
    assert 0 <= x.min() and x.max() < 1  # index / vocabulary size, as the notebook feeds it
    # the window after position i is the note at i + 100
    assert [vocab[i] for i in y.argmax(1)[:5]] == notes[100:105]
    network = nk.create_network(x, len(vocab))
    keras_params = sum(int(np.prod(w.shape)) for w in network.trainable_weights)
    assert keras_params == SeedLSTM.keras_parameter_count(len(vocab))


def test_notebook_trains_and_generates_from_its_own_vocabulary():
    rng = np.random.default_rng(0)
    vocab = ["C4", "E4", "G4", "0.4.7", "2.7"]
    notes = [vocab[i] for i in rng.integers(0, len(vocab), 400)]
    nb = nk.Notebook(notes, seed=0)
    loss = nb.train_steps(1, batch_size=16)
    assert np.isfinite(loss) and loss > 0
    out = nb.generate(3)
    assert len(out) == 3 and set(out) <= set(vocab)
