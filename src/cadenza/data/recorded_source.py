"""The corpus a run records in its config.json, checked before ``train --resume`` or
``evaluate`` searches it: a run folder is untrusted input (edited by hand, copied from
another machine), and its ``source`` names a folder that is walked recursively and whose
MIDI files are read. A source typed on the command line is the user's own choice and is
not judged here.

A folder no one trains on is refused: the root, the home folder or one above it, and the
top-level system folders (a ``source`` of ``/`` walked the whole file system, other
users' files included). Anything else is a folder the user may well have trained on."""
from __future__ import annotations

import os
from pathlib import Path

from .corpus import BUILTIN
from ..errors import CadenzaError

SYSTEM_FOLDERS = frozenset({"/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
                            "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/snap", "/srv", "/sys",
                            "/tmp", "/usr", "/var"})


def recorded_source(source: str | None, config_path: Path, advice: str) -> str:
    """``source`` as recorded in ``config_path`` (None: the built-in ``bach``), or one line
    why it is not searched, ending with ``advice`` (how to name the data instead)."""
    source = source or "bach"
    if source in BUILTIN and not os.path.lexists(source):
        return source
    why = _absurd(os.path.realpath(source))
    if why:
        raise CadenzaError(f"{config_path} records the training data as {source}, {why}, not a folder of "
                           f"MIDI files to search; {advice}")
    return source


def _absurd(real: str) -> str | None:
    home = os.path.realpath(os.path.expanduser("~"))
    if real == os.sep:
        return "the root of the file system"
    if real == home:
        return "the home folder"
    if home.startswith(real.rstrip(os.sep) + os.sep):
        return "a folder above the home folder"
    if real in SYSTEM_FOLDERS:
        return "a system folder"
    return None
