"""The models the studio offers: every run folder under ``--runs``, addressed by id.

A request names a model by its id only; the id is looked up in this listing, never joined
to a path. The shipped models (``base``, where the package holds its weights) come first;
another source of models is one more provider in :data:`PROVIDERS`: a function returning
``{id: run directory}``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from safetensors import safe_open

from .. import rundir
from ..config import Config
from ..errors import CadenzaError
from ..files import check_regular
from ..pretrained import SHIPPED, shipped_dir

ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
Provider = Callable[[Path], dict[str, Path]]


def _complete(d: Path) -> bool:
    return all((d / n).exists() for n in (rundir.CONFIG, rundir.TOKENIZER, rundir.BEST))


def shipped(runs: Path) -> dict[str, Path]:
    """The models inside the package that hold weights, by name."""
    return {name: d for name in SHIPPED if (d := shipped_dir(name)) is not None and _complete(d)}


def run_folders(runs: Path) -> dict[str, Path]:
    """Complete run folders directly under ``runs``, by folder name."""
    if not runs.is_dir():
        return {}
    return {d.name: d for d in sorted(runs.iterdir()) if ID.fullmatch(d.name) and d.is_dir() and _complete(d)}


#: where models come from, in listing order (an id taken by an earlier one hides a later one)
PROVIDERS: list[Provider] = [shipped, run_folders]


def model_dirs(runs: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for provider in PROVIDERS:
        for key, path in provider(runs).items():
            found.setdefault(key, path)
    return found


def resolve(runs: Path, model_id) -> Path:
    """The run directory of a listed model; an unknown id is a CadenzaError."""
    if not isinstance(model_id, str) or not ID.fullmatch(model_id):
        raise CadenzaError("model must be the id of a listed model")
    found = model_dirs(runs).get(model_id)
    if found is None:
        raise CadenzaError(f"no model {model_id!r}: see GET /api/models")
    return found


def parameters(weights: Path) -> int:
    """Parameter count from the safetensors header (no tensor is read)."""
    with safe_open(str(weights), framework="pt") as f:
        total = 0
        for name in f.keys():
            count = 1
            for dim in f.get_slice(name).get_shape():
                count *= dim
            total += count
        return total


def describe(model_id: str, path: Path) -> dict:
    """What the page shows of a model: corpus, size, best validation loss, loss curve."""
    try:
        config = Config.load(path / rundir.CONFIG)
        rows = rundir.read_metrics(path / rundir.METRICS)
        params = parameters(check_regular(path / rundir.BEST, rundir.MAX_WEIGHTS_BYTES))  # a FIFO would hang
    except Exception as exc:  # noqa: BLE001 - one damaged run is listed as damaged, alone
        return {"id": model_id, "error": f"damaged run: {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}"}
    vals = [r["val_loss"] for r in rows if r["val_loss"] is not None]
    return {"id": model_id, "corpus": config.source, "preset": config.preset, "model": config.model,
            "representation": config.representation, "parameters": params,
            "best_val_loss": min(vals) if vals else None,
            "curve": [[r["progress"], r["train_loss"], r["val_loss"]] for r in rows],
            "defaults": {"temperature": config.gen_temperature, "top_p": config.gen_top_p,
                         "min_p": config.gen_min_p or 0, "form": config.gen_form or "none"}}


def list_models(runs: Path) -> list[dict]:
    return [describe(k, p) for k, p in model_dirs(runs).items()]
