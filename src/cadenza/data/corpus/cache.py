"""Where cadenza keeps what it can rebuild: the built-in corpus and prepared token data."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$CADENZA_CACHE``, else ``$XDG_CACHE_HOME/cadenza``, else ``~/.cache/cadenza``."""
    if os.environ.get("CADENZA_CACHE"):
        return Path(os.environ["CADENZA_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cadenza"
