"""Corpus: which MIDI files a SOURCE names, and reading them in parallel into pieces.

SOURCE is a MIDI file, a folder searched recursively for ``.mid``/``.midi``, or the name of
a built-in corpus (``bach``). Files that cannot be used are skipped with a reason.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import CadenzaError
from .orphans import die_with_parent
from .performed import performance_signs
from .reader import SkipFile, merge_piano, piano_tracks, read_piano_score

BUILTIN = ("bach",)
MIDI_SUFFIXES = (".mid", ".midi")


def find_midi_files(source: str | os.PathLike) -> list[Path]:
    """The MIDI files SOURCE names, sorted; raises ``CadenzaError`` for a missing path."""
    text = os.fspath(source)
    path = Path(text)
    if text in BUILTIN and not path.exists():
        from .bach import bach_chorales

        return bach_chorales()
    if not path.exists() and not path.is_symlink():
        hint = f" (built-in corpora: {', '.join(BUILTIN)})" if os.sep not in text else ""
        raise CadenzaError(f"no such file or folder: {text}{hint}")
    if not path.is_dir():
        return [path]
    found = []
    # os.walk does not follow symlinked folders, so a symlink loop cannot trap it; a
    # looping symlink shows up as a file entry and is skipped with its reason later.
    for root, dirs, files in os.walk(path, onerror=None):
        dirs.sort()
        for name in files:
            if name.lower().endswith(MIDI_SUFFIXES):
                found.append(Path(root) / name)
    return sorted(found)


@dataclass(slots=True)  # one per file: small
class Piece:
    path: str
    notes: int
    pretokens: Any
    performed: bool = False  # looks played, not typeset (see .performed)
    pedals: int = 0


@dataclass
class CorpusSummary:
    files_read: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: int = 0
    tokens: int = 0
    val_files: int = 0
    note_on_split: str = ""
    performed: int = 0   # files that look played (see .performed)
    pedals: int = 0      # sustain-pedal events read
    suggestion: str = ""

    def lines(self, show: int = 30) -> list[str]:
        """The summary for the log: every skipped file with its reason up to ``show``,
        then the rest counted by reason, so no skip goes unexplained."""
        out = [f"corpus: {self.files_read} files read, {len(self.skipped)} skipped, "
               f"{self.notes:,} notes, {self.tokens:,} tokens"]
        for path, reason in self.skipped[:show]:
            out.append(f"  skipped {path}: {reason}")
        rest = self.skipped[show:]
        if rest:
            out.append(f"  ... and {len(rest)} more skipped files:")
            counts: dict[str, int] = {}
            for _, reason in rest:
                kind = reason.split(":")[0]
                counts[kind] = counts.get(kind, 0) + 1
            for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]):
                out.append(f"    {n} x {kind}")
        if self.note_on_split:
            out.append(self.note_on_split)
        if self.suggestion:
            out.append(self.suggestion)
        return out

    def to_dict(self) -> dict:
        return {"files_read": self.files_read, "skipped": [list(s) for s in self.skipped],
                "notes": self.notes, "tokens": self.tokens, "val_files": self.val_files,
                "note_on_split": self.note_on_split, "performed": self.performed, "pedals": self.pedals,
                "suggestion": self.suggestion}

    @classmethod
    def from_dict(cls, d: dict) -> "CorpusSummary":
        return cls(d["files_read"], [tuple(s) for s in d["skipped"]], d["notes"], d["tokens"],
                   d.get("val_files", 0), d.get("note_on_split", ""), d.get("performed", 0),
                   d.get("pedals", 0), d.get("suggestion", ""))


def _display(path: Path) -> str:
    return os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")


_worker_fn: Callable | None = None
_worker_merge = True


def _init_worker(fn: Callable, parent: int | None = None, merge: bool = True) -> None:
    global _worker_fn, _worker_merge
    _worker_fn, _worker_merge = fn, merge
    if parent is not None:
        die_with_parent(parent)


def _read_one(path: Path) -> tuple:
    """(path, pretokens, notes, skip reason or None, (looks performed, pedal events))."""
    try:
        score = read_piano_score(path, _worker_merge)
        notes = sum(len(t.notes) for t in score.tracks)
        return str(path), _worker_fn(score), notes, None, performance_signs(score)
    except SkipFile as exc:
        return str(path), None, 0, str(exc)
    except Exception as exc:  # a file that breaks the tokenizer is skipped, not fatal
        return str(path), None, 0, f"cannot tokenize: {type(exc).__name__}: {exc}".splitlines()[0]


def read_pieces(paths: Iterable[Path], pretokenize: Callable, workers: int | None = None,
                progress: Callable[[int], None] | None = None,
                merge: bool | None = None,
                store: Callable[[Any], Any] | None = None) -> tuple[list[Piece], CorpusSummary]:
    """Read and pretokenize files in parallel; bad files become (path, reason) skips.
    ``merge=False`` hands ``pretokenize`` the file's piano tracks instead of one merged part;
    None: as the representation whose method ``pretokenize`` is wants (``reads_tracks``).
    ``store``: what a piece keeps instead of its pretokens, given them as they arrive (where
    a :class:`~cadenza.spool.PretokenSpool` put them), so they need not stay in memory.

    A file that kills its worker process (a crash in the MIDI parser, memory) is skipped
    too: the files not yet read are read again one process at a time to find it."""
    paths = list(paths)
    if merge is None:
        merge = not getattr(getattr(pretokenize, "__self__", None), "reads_tracks", False)
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths) or 1))
    pieces, summary = [], CorpusSummary()
    done = 0

    def take(result) -> None:
        nonlocal done
        path, pretokens, notes, reason, *signs = result
        if reason is None and (pretokens is None or len(pretokens) == 0):
            reason = "no tokens after tokenization"
        if reason is None:
            performed, pedals = signs[0] if signs else (False, 0)
            pieces.append(Piece(path, notes, store(pretokens) if store else pretokens, performed, pedals))
            summary.files_read += 1
            summary.notes += notes
            summary.performed += performed
            summary.pedals += pedals
        else:
            summary.skipped.append((_display(Path(path)), reason))
        done += 1
        if progress:
            progress(done)

    if workers == 1 or len(paths) < 8:
        _init_worker(pretokenize, None, merge)
        for result in map(_read_one, paths):
            take(result)
        return pieces, summary
    chunksize = max(1, len(paths) // (workers * 8))
    while done < len(paths):
        rest = paths[done:]
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                   initargs=(pretokenize, os.getpid(), merge))
        try:
            for result in pool.map(_read_one, rest, chunksize=chunksize):
                take(result)
        except BrokenProcessPool:
            if workers == 1 and chunksize == 1:  # alone and in order: the next file is the culprit
                take((str(paths[done]), None, 0, "the MIDI reader crashed on this file (its process died)"))
            workers, chunksize = 1, 1
        finally:
            pool.shutdown(cancel_futures=True)
    return pieces, summary


__all__ = ["BUILTIN", "CorpusSummary", "Piece", "SkipFile", "find_midi_files", "merge_piano",
           "piano_tracks", "read_piano_score", "read_pieces"]
