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
from typing import Any, Callable, Iterable, Iterator

from ...errors import CadenzaError, printable
from .orphans import die_with_parent
from .performed import performance_signs
from .reader import SkipFile, _read_file, merge_piano, piano_tracks, read_piano_score

BUILTIN = ("bach",)
MIDI_SUFFIXES = (".mid", ".midi")


def find_midi_files(source: str | os.PathLike) -> list[Path]:
    """The MIDI files SOURCE names, sorted; raises ``CadenzaError`` for a missing path."""
    return [Path(name) for name in midi_file_names(source)]


def midi_file_names(source: str | os.PathLike) -> list[str]:
    """:func:`find_midi_files` as strings (``str`` of each path, in its order), without
    holding a ``Path`` object per file."""
    text = os.fspath(source)
    path = Path(text)
    if text in BUILTIN and not path.exists():
        from .bach import bach_chorales

        return [str(p) for p in bach_chorales()]
    if not path.exists() and not path.is_symlink():
        hint = f" (built-in corpora: {', '.join(BUILTIN)})" if os.sep not in text else ""
        raise CadenzaError(f"no such file or folder: {text}{hint}")
    if not path.is_dir():
        return [str(path)]
    found: list[str] = []
    top = str(path)  # normalised as a Path writes it; "./" is left out of the names, as Path does
    _walk(top, found, 2 if top == "." else 0)
    return found


def _walk(top: str, found: list[str], cut: int) -> None:
    """Append the MIDI files under ``top`` in the order of their ``Path`` objects: a
    folder's entries by name, a subfolder's files at its name. As ``os.walk`` it does
    not enter a symlinked folder (a symlink loop cannot trap it; a looping symlink
    shows up as a file entry and is skipped with its reason later) and passes over a
    folder it cannot list. Walked with a stack, not recursion: folders nested a
    thousand deep are walked too."""
    stack = [iter(_entries(top))]
    while stack:
        for path, is_folder in stack[-1]:
            if not is_folder:
                found.append(path[cut:])
            elif not os.path.islink(path):
                stack.append(iter(_entries(path)))  # its entries come before the rest of this folder's
                break
        else:
            stack.pop()


def _entries(folder: str) -> list[tuple[str, bool]]:
    """(path, is a folder) of the MIDI files and folders in ``folder``, by name; none when
    it cannot be listed."""
    midis, folders = [], set()
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if _is_dir(entry):
                    folders.add(entry.name)
                elif entry.name.lower().endswith(MIDI_SUFFIXES):
                    midis.append(entry.name)
    except OSError:
        return []
    return [(os.path.join(folder, name), name in folders) for name in sorted(midis + list(folders))]


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


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


_worker_fn: Callable | None = None
_worker_merge = True
_worker_reads_file = False  # the representation also reads the file's bytes (``midi=``)


def _init_worker(fn: Callable, parent: int | None = None, merge: bool = True) -> None:
    global _worker_fn, _worker_merge, _worker_reads_file
    _worker_fn, _worker_merge = fn, merge
    _worker_reads_file = getattr(getattr(fn, "__self__", None), "reads_file", False)
    if parent is not None:
        die_with_parent(parent)


def _read_one(path: Path) -> tuple:
    """(path, pretokens, notes, skip reason or None, (looks performed, pedal events))."""
    try:
        score = read_piano_score(path, _worker_merge)
        notes = sum(len(t.notes) for t in score.tracks)
        pretokens = _worker_fn(score, midi=_read_file(path)) if _worker_reads_file else _worker_fn(score)
        return str(path), pretokens, notes, None, performance_signs(score)
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
    a :class:`~cadenza.data.spool.PretokenSpool` put them), so they need not stay in memory.

    A file that kills its worker process (a crash in the MIDI parser, memory) is skipped
    too: the files not yet read are read again one process at a time to find it."""
    paths = list(paths)
    pieces, summary = [], CorpusSummary()
    for k, pretokens, notes, performed, pedals in read_files(paths, pretokenize, summary, workers, progress, merge):
        pieces.append(Piece(str(paths[k]), notes, store(pretokens) if store else pretokens, performed, pedals))
    return pieces, summary


def read_files(paths: list, pretokenize: Callable, summary: CorpusSummary, workers: int | None = None,
               progress: Callable[[int], None] | None = None,
               merge: bool | None = None) -> Iterator[tuple[int, Any, int, bool, int]]:
    """:func:`read_pieces` one file at a time: (its number in ``paths``, pretokens, notes,
    looks performed, pedal events) of each usable file, in order; ``summary`` counts them
    and the skips."""
    if merge is None:
        merge = not getattr(getattr(pretokenize, "__self__", None), "reads_tracks", False)
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths) or 1))
    done = 0
    for result in _results(paths, pretokenize, workers, merge):
        path, pretokens, notes, reason, *signs = result
        if reason is None and (pretokens is None or len(pretokens) == 0):
            reason = "no tokens after tokenization"
        if reason is None:
            performed, pedals = signs[0] if signs else (False, 0)
            summary.files_read += 1
            summary.notes += notes
            summary.performed += performed
            summary.pedals += pedals
            yield done, pretokens, notes, performed, pedals
        else:
            summary.skipped.append((printable(path), reason))
        done += 1
        if progress:
            progress(done)


def _results(paths: list, pretokenize: Callable, workers: int, merge: bool) -> Iterator[tuple]:
    """:func:`_read_one` of every path, in order, in ``workers`` processes; when one dies,
    the rest again one process at a time, and the file that kills that one is skipped."""
    if workers == 1 or len(paths) < 8:
        _init_worker(pretokenize, None, merge)
        yield from map(_read_one, paths)
        return
    chunksize = max(1, len(paths) // (workers * 8))
    done = 0
    while done < len(paths):
        rest = paths[done:]
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                   initargs=(pretokenize, os.getpid(), merge))
        try:
            for result in pool.map(_read_one, rest, chunksize=chunksize):
                done += 1
                yield result
        except BrokenProcessPool:
            if workers == 1 and chunksize == 1:  # alone and in order: the next file is the culprit
                done += 1
                yield str(paths[done - 1]), None, 0, "the MIDI reader crashed on this file (its process died)"
            workers, chunksize = 1, 1
        finally:
            pool.shutdown(cancel_futures=True)


__all__ = ["BUILTIN", "CorpusSummary", "Piece", "SkipFile", "find_midi_files", "merge_piano",
           "midi_file_names", "piano_tracks", "read_files", "read_piano_score", "read_pieces"]
