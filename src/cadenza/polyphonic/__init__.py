"""Polyphonic-music benchmark (Boulanger-Lewandowski et al. 2012 piano rolls).

Frames are serialised as their active pitches in ascending order followed by an
end-of-step token; the model's next-token distribution is masked so that it is
normalised over exactly the valid binary frames, which makes the sum of a step's
token log-probabilities the exact log-probability of that frame.
"""

from cadenza.polyphonic.data import DATASETS, load_dataset, load_mat
from cadenza.polyphonic.frames import EOS, N_PITCHES, frame_to_tokens, tokens_to_frame
from cadenza.polyphonic.model import FrameModel, ModelConfig

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
