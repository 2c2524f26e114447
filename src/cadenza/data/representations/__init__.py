"""Representation registry: a new representation is one module plus one line here.

Every representation declares the options its ``__init__`` takes beside itself (``OPTIONS``,
name -> :class:`~cadenza.spec.Spec`), which a run's config.json, its tokenizer files and a
new training are checked against (:func:`declared_options`).
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path

from typing import TYPE_CHECKING

from ...errors import CadenzaError

if TYPE_CHECKING:
    from ...spec import Spec
    from .base import Grammar, Representation

_REGISTRY = {
    "seed": "cadenza.seed.representation:SeedRepresentation",
    "remi": "cadenza.data.representations.remi:REMIRepresentation",
    "tsd": "cadenza.data.representations.tsd:TSDRepresentation",
    "midilike": "cadenza.data.representations.midilike:MIDILikeRepresentation",
    "structured": "cadenza.data.representations.structured:StructuredRepresentation",
    "performance": "cadenza.data.representations.performance:PerformanceRepresentation",
}
NAMES = tuple(_REGISTRY)
_META_FILE = "representation.json"


def _class_for(name: str) -> type[Representation]:
    if name not in _REGISTRY:
        raise CadenzaError(f"unknown representation {name!r}; choose one of {', '.join(NAMES)}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def declared_options(name: str) -> dict[str, Spec]:
    """The options the representation ``name`` declares (its class's ``OPTIONS``)."""
    return _class_for(name).OPTIONS


def create(name: str, **options) -> Representation:
    """A fresh (unfitted) representation; ``options`` are its configuration."""
    return _class_for(name)(**options)


def timed_in_seconds(name: str) -> bool:
    """Whether the representation ``name`` keeps time in seconds as played (no bars or tempo
    tokens: its "bars" are windows of seconds)."""
    return _class_for(name).seconds_per_bar is not None


def save(rep: Representation, directory: Path) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rep.save(directory)
    (directory / _META_FILE).write_text(json.dumps({"name": rep.name, "vocab_size": rep.vocab_size}))


def digest(rep: Representation) -> str:
    """A fingerprint of a fitted representation: its saved files (vocabulary, BPE merges)."""
    import hashlib
    import tempfile

    from ...files import hash_file

    h = hashlib.blake2b(digest_size=12)
    with tempfile.TemporaryDirectory() as tmp:
        save(rep, Path(tmp))
        for path in sorted(Path(tmp).rglob("*")):
            if path.is_file():
                h.update(f"{path.relative_to(tmp)}:{path.stat().st_size}:".encode())
                hash_file(path, h)
    return h.hexdigest()


def load(directory: Path) -> Representation:
    directory = Path(directory)
    meta_path = directory / _META_FILE
    from ...files import read_json

    meta = read_json(meta_path)
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        raise CadenzaError(f"{meta_path}: name must be a representation name")
    name = meta["name"]
    try:
        rep = _class_for(name).load(directory)
    except CadenzaError:
        raise
    except Exception as exc:  # a damaged tokenizer file in any of its forms
        raise CadenzaError(f"cannot load the {name} tokenizer from {directory}: {exc}") from None
    if rep.vocab_size != meta.get("vocab_size", rep.vocab_size):
        raise CadenzaError(
            f"tokenizer in {directory} has {rep.vocab_size} tokens but {meta_path.name} says "
            f"{meta['vocab_size']}")
    return rep


def __getattr__(name: str):
    """``Grammar`` and ``Representation`` on first use: the command's ``--help`` reads
    ``NAMES`` without importing symusic (see :mod:`cadenza.cli`)."""
    if name in ("Grammar", "Representation"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Grammar", "Representation", "NAMES", "declared_options", "create", "save", "load", "timed_in_seconds"]
