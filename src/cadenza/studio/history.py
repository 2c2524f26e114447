"""What the studio did, kept so that a reload of the page or a restart of the studio shows it
again: every round of candidates (newest last) and the stack of kept pieces (the last one is
the piece so far; undoing a Keep pops it). One JSON file, ``history.json`` in the studio's work
folder, replaced atomically on every change; the pieces it names live in ``pieces/``."""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from ..errors import CadenzaError
from ..files import read_regular, write_bytes_atomic

NAME = "history.json"
MAX_BYTES = 16 * 1024 * 1024
MAX_ROUNDS = 500  # the oldest rounds leave the list (their pieces stay in pieces/)


class History:
    def __init__(self, work: Path) -> None:
        self.path = Path(work) / NAME
        self._lock = threading.Lock()
        self._data = self._load()

    def _load(self) -> dict:
        """The stored history; a damaged file is set aside (never deleted) and a new one begun."""
        if not self.path.exists():
            return {"rounds": [], "kept": []}
        try:
            data = json.loads(read_regular(self.path, MAX_BYTES))
            if isinstance(data.get("rounds"), list) and isinstance(data.get("kept"), list):
                return {"rounds": data["rounds"], "kept": data["kept"]}
        except (CadenzaError, ValueError, AttributeError):
            pass
        aside = self.path.with_name(f"{NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        self.path.rename(aside)
        print(f"cadenza studio: {self.path} could not be read; kept it as {aside.name} and began a new history",
              file=sys.stderr)
        return {"rounds": [], "kept": []}

    def _save(self) -> None:
        write_bytes_atomic(self.path, json.dumps(self._data).encode())

    def add_round(self, model: str, candidates: list[str], prompt: str | None, prompt_name: str | None,
                  made: str | None = None) -> dict:
        """``prompt``: the piece the candidates continue (or regenerate bars of); ``made``: what
        the round did when it did not generate ("accompanying melody.mid", "bars 3-4 regenerated")."""
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": model, "candidates": candidates,
                 "prompt": prompt, "prompt_name": prompt_name, "made": made}
        with self._lock:
            self._data["rounds"] = (self._data["rounds"] + [entry])[-MAX_ROUNDS:]
            self._save()
        return entry

    def keep(self, piece_id: str) -> None:
        with self._lock:
            if not self._data["kept"] or self._data["kept"][-1] != piece_id:
                self._data["kept"].append(piece_id)
                self._save()

    def undo_keep(self) -> None:
        with self._lock:
            if not self._data["kept"]:
                raise CadenzaError("nothing kept to undo")
            self._data["kept"].pop()
            self._save()

    def view(self) -> dict:
        """``rounds`` (oldest first) and ``kept`` (piece ids; the last is the piece so far)."""
        with self._lock:
            return json.loads(json.dumps(self._data))
