"""Polyphonic-music benchmark (Boulanger-Lewandowski et al. 2012 piano rolls).

Frames are serialised as their active pitches in ascending order followed by an
end-of-step token; the model's next-token distribution is masked so that it is
normalised over exactly the valid binary frames, which makes the sum of a step's
token log-probabilities the exact log-probability of that frame.

A second training stack (its own loop, weight average, early stopping, ensembles and
dynamic evaluation), used only by ``benchmarks/polyphonic.py`` and its test: it lives beside
the benchmark, outside the ``cadenza`` package, and reaches cadenza only for its errors and
file helpers. ``python benchmarks/polyphonic.py`` finds it beside itself; the tests find it
through pytest's ``pythonpath`` (pyproject.toml).
"""

from .data import DATASETS, load_dataset, load_mat
from .frames import EOS, N_PITCHES, frame_to_tokens, tokens_to_frame
from .model import FrameModel, ModelConfig

__all__ = [
    "DATASETS",
    "EOS",
    "N_PITCHES",
    "FrameModel",
    "ModelConfig",
    "frame_to_tokens",
    "load_dataset",
    "load_mat",
    "tokens_to_frame",
]
