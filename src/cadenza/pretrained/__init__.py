"""Models that ship inside the package, addressed by name (``base``) wherever a run folder is
taken. A folder of that name in the working directory still wins: names only stand in for
paths that do not exist."""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIPPED = ("base",)
WEIGHTS_SHA256_FILE = "weights.sha256"


def shipped_dir(name: str) -> Path | None:
    """The folder of the shipped model ``name``, or None if there is none by that name."""
    directory = HERE / name
    return directory if name in SHIPPED and (directory / "config.json").exists() else None


def is_shipped(directory: Path) -> bool:
    """Whether ``directory`` is one of the models shipped inside the package."""
    return Path(directory).resolve().parent == HERE


def resolve_run(run: str | Path) -> Path:
    """A run folder: ``run`` itself where it exists, else the shipped model it names."""
    path = Path(run)
    if path.exists() or len(path.parts) != 1:
        return path
    return shipped_dir(path.name) or path
