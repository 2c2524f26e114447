"""Loader for the benchmark's MATLAB piano-roll files (traindata / validdata / testdata)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cadenza.errors import CadenzaError
from .frames import N_PITCHES

DATASETS = {
    "jsb": "JSB_Chorales.mat",
    "nottingham": "Nottingham.mat",
    "piano": "Piano_midi.mat",
    "muse": "MuseData.mat",
}
SPLITS = {"train": "traindata", "valid": "validdata", "test": "testdata"}


def default_data_dir() -> Path:
    """``../shared/data/polyphonic`` relative to the project root (editable checkout)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data" / "polyphonic"


def load_mat(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Read one .mat file into {"train"|"valid"|"test": [uint8 (T, 88) rolls]}.

    Raises CadenzaError with a one-line message naming the file for anything that
    is not a readable .mat file holding the three splits of binary (T, 88) rolls.
    """
    path = Path(path)
    if not path.is_file():
        raise CadenzaError(f"{path}: no such data file")
    try:
        from scipy.io import loadmat

        mat = loadmat(str(path))
    except Exception as exc:  # scipy raises many different types for bad input
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CadenzaError(f"{path}: not a readable MATLAB .mat file ({reason})") from None
    missing = [key for key in SPLITS.values() if key not in mat]
    if missing:
        raise CadenzaError(f"{path}: missing key(s) {', '.join(missing)}; "
                           f"expected {', '.join(SPLITS.values())}")
    out: dict[str, list[np.ndarray]] = {}
    for split, key in SPLITS.items():
        items = mat[key]
        if not isinstance(items, np.ndarray) or items.dtype != object or items.size == 0:
            raise CadenzaError(f"{path}: '{key}' is not a non-empty cell array of piano rolls")
        rolls = []
        for i, roll in enumerate(items.ravel()):
            roll = np.asarray(roll)
            if roll.ndim != 2 or roll.shape[1] != N_PITCHES or roll.shape[0] == 0:
                raise CadenzaError(f"{path}: '{key}' item {i} has shape {roll.shape}, "
                                   f"expected (time_steps, {N_PITCHES})")
            if not np.isin(roll, (0, 1)).all():
                raise CadenzaError(f"{path}: '{key}' item {i} is not a binary piano roll")
            rolls.append(roll.astype(np.uint8))
        out[split] = rolls
    return out


def load_dataset(name: str, data_dir: str | Path | None = None) -> dict[str, list[np.ndarray]]:
    """Load one of DATASETS by short name from data_dir (default: the shared folder)."""
    if name not in DATASETS:
        raise CadenzaError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    return load_mat(Path(data_dir or default_data_dir()) / DATASETS[name])
