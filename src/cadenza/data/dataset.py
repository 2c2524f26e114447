"""Prepare a corpus once into flat token files, then read training windows from disk.

A prepared data set is a folder in the cache, keyed by the corpus content and the
representation's configuration:

    meta.json            sizes, dtype, the corpus summary, the split
    representation/      the fitted tokenizer (vocabulary, BPE merges)
    train.bin, val.bin   every piece's token ids back to back (uint16, or uint32)
    train.idx.npy, ...   where each piece starts, and its note count

Training windows are read through ``np.memmap``: memory stays flat as the corpus grows.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import stat
import sys
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NoReturn

import numpy as np
import torch

from . import cache_check, representations
from .. import files
from .corpus import CorpusSummary, midi_file_names, read_files
from .corpus.cache import cache_root
from .corpus.performed import suggestion
from .corpus.reader import MAX_FILE_BYTES
from ..errors import CadenzaError
from .spool import PretokenSpool

# Part of the cache key: raise it whenever prepared data would come out different, so an
# older cache entry is prepared again, not read (each version: docs/guide.md, "Data").
FORMAT_VERSION = 6
SPLITS = ("train", "val")
TOKEN_FILES = ("train.bin", "train.idx.npy", "val.bin", "val.idx.npy")
SPOOL = "pretokens.spool"  # while preparing only


def _corpus_digest(paths: list, records: np.ndarray | None = None) -> str:
    """The files' names and contents (``records``, one row per path, read here if not
    given), each field length-prefixed or of fixed size, so two different folders never
    give the same byte stream."""
    records = _content_records(paths) if records is None else records
    h = hashlib.blake2b(digest_size=16)
    h.update(len(paths).to_bytes(8, "little"))
    for path, record in zip(paths, records):
        name = os.fsencode(os.path.basename(path))
        h.update(len(name).to_bytes(8, "little") + name)
        h.update(record)
    return h.hexdigest()


RECORD_BYTES = 17


def _content_records(paths: list) -> np.ndarray:
    """``[len(paths), 17]`` bytes: each file's :func:`_content_record`."""
    records = np.empty((len(paths), RECORD_BYTES), dtype=np.uint8)
    for row, path in zip(records, paths):
        row[:] = np.frombuffer(_content_record(path), dtype=np.uint8)
    return records


def _content_record(path) -> bytes:
    """17 bytes: a kind (file, file too large to read, not a regular file, error) and a
    digest of what was read. A file larger than the reader takes is skipped unread, so it
    is not read here either (a 20 GB file named .mid took minutes): its size stands in."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # opening a FIFO would block forever
            return b"N" + digest.digest()
        if info.st_size > MAX_FILE_BYTES:
            digest.update(info.st_size.to_bytes(8, "little"))
            return b"L" + digest.digest()
        return b"F" + files.hash_file(path, digest).digest()
    except OSError as exc:  # unreadable files are skipped later; hash the reason
        digest.update(str(exc.errno).encode())
        return b"E" + digest.digest()


def split_files(paths: list[str], val_fraction: float, seed: int,
                contents: dict[str, bytes] | None = None) -> tuple[list[str], list[str], str]:
    """Hold out ``val_fraction`` of the files (seeded); none when there are too few. Files with
    the same ``contents`` (copies of one piece) all go where the first of them drawn goes, so
    validation never scores a piece that is also trained on."""
    keys = [contents[p] for p in paths] if contents else paths
    ids: dict = {}
    held, note = _held_out(val_fraction, seed, np.fromiter((ids.setdefault(k, len(ids)) for k in keys),
                                                           np.int64, len(paths)))
    if held is None:
        return list(paths), [], note
    return [p for p, h in zip(paths, held) if not h], sorted(p for p, h in zip(paths, held) if h), ""


def _held_out(val_fraction: float, seed: int, copies: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Which files validation holds out (a mask), each file's ``copies`` number naming the
    files of one content: see :func:`split_files`. None, and why, when it holds out none."""
    n = len(copies)
    n_val = int(n * val_fraction)
    if val_fraction <= 0:
        return None, "no validation split (--val-fraction 0): best weights chosen by training loss"
    if n_val < 1 or n - n_val < 1:
        return None, (f"no validation split: {n} usable file(s) is too few for "
                      f"{val_fraction:.0%}; best weights chosen by training loss")
    rank = np.empty(n, dtype=np.int64)
    rank[np.random.default_rng(seed).permutation(n)] = np.arange(n)  # when each file is drawn
    first = np.full(int(copies.max()) + 1, n, dtype=np.int64)
    np.minimum.at(first, copies, rank)  # when the first copy of each content is drawn
    held = first[copies] < n_val
    if held.all():
        return None, ("no validation split: the held-out files' copies would leave nothing to train on; "
                      "best weights chosen by training loss")
    return held, ""


def tokens_digest(directory: Path) -> str | None:
    """The token files' content, however the cadenza that wrote them keyed the entry: what a
    resumed run checks it trains on (None when a file is missing)."""
    h = hashlib.blake2b(digest_size=16)
    for name in TOKEN_FILES:
        if not (directory / name).is_file():
            return None
        files.hash_file(directory / name, h)
    return h.hexdigest()


@dataclass
class PreparedData:
    directory: Path
    meta: dict

    @functools.cached_property
    def tokens_digest(self) -> str | None:
        return tokens_digest(self.directory)

    @property
    def key(self) -> str:
        return self.meta["key"]

    @property
    def summary(self) -> CorpusSummary:
        return CorpusSummary.from_dict(self.meta["summary"])

    def tokens(self, split: str) -> np.ndarray:
        n = self.meta["splits"][split]["tokens"]
        if n == 0:
            return np.zeros(0, dtype=self.meta["dtype"])
        return np.memmap(self.directory / f"{split}.bin", dtype=self.meta["dtype"], mode="r", shape=(n,))

    def index(self, split: str) -> np.ndarray:
        """``[n_pieces, 2]``: start offset and note count of each piece."""
        return np.load(self.directory / f"{split}.idx.npy")

    def representation(self) -> representations.Representation:
        return representations.load(self.directory / "representation")

    def split_files(self, split: str, source: str | os.PathLike) -> list[Path]:
        """The files of ``split`` in the corpus ``source``. An entry is keyed by content, so
        a copy of a folder shares the entry of the folder that prepared it first, which
        listed its own paths: they are found again relative to ``source``."""
        files = [Path(p) for p in self.meta["splits"][split]["files"]]
        first, here = self.meta.get("source"), Path(source)
        if first is None or not here.is_dir() or os.fspath(source) == first:
            return files
        return [here / os.path.relpath(p, first) for p in files]


def _write_split(directory: Path, split: str, ids_list: Iterable[np.ndarray], notes: np.ndarray,
                 bos: int | None, dtype: str) -> int:
    offset, index = 0, np.empty((len(notes), 2), dtype=np.int64)
    index[:, 1] = notes
    with open(directory / f"{split}.bin", "wb") as f:
        for row, ids in zip(index, ids_list):
            seq = ids if bos is None else np.concatenate([[bos], ids])
            f.write(np.asarray(seq, dtype=dtype).tobytes())
            row[0] = offset
            offset += len(seq)
    np.save(directory / f"{split}.idx.npy", index)
    return offset


def prepare(source: str, rep_name: str, rep_options: dict | None = None, val_fraction: float = 0.1,
            seed: int = 0, workers: int | None = None, cache_dir: Path | None = None,
            log=print, progress_bar: bool = True,
            fitted: representations.Representation | None = None) -> PreparedData:
    """Tokenise SOURCE once (in parallel) and return the cached prepared data; with
    ``fitted`` (a fine-tune's starting tokenizer) that one encodes it, unchanged."""
    rep_options = dict(rep_options or {})
    rep = fitted or representations.create(rep_name, **rep_options)
    corpus = _Corpus(source)
    key_src = json.dumps({"v": FORMAT_VERSION, "corpus": _corpus_digest(corpus.paths, corpus.records),
                          "rep": rep.config_dict(), "val": val_fraction, "seed": seed,
                          **({"fitted": representations.digest(fitted)} if fitted else {})},
                         sort_keys=True, default=str)
    key = hashlib.blake2b(key_src.encode(), digest_size=12).hexdigest()
    prepared = Path(cache_dir or cache_root() / "prepared")
    directory = prepared / f"{rep_name}-{key}"
    cached = _cached(directory, key, log)
    if cached is not None:
        return cached
    cache_check.remove_dead_builds(prepared)
    (log or (lambda msg: None))(f"preparing {len(corpus.paths)} files with the {rep_name} representation ...")
    _build(directory, corpus, rep, fitted is None, progress_bar, workers,
           {"key": key, "source": str(source), "representation": rep_name, "rep_options": rep_options,
            "val_fraction": val_fraction, "seed": seed})
    del corpus  # its paths go before meta.json, which lists them again, is read back
    return PreparedData(directory, json.loads((directory / "meta.json").read_text()))


def _build(directory: Path, corpus: "_Corpus", rep, fit: bool, progress_bar: bool, workers: int | None,
           meta: dict) -> None:
    """The entry built in a temporary folder beside ``directory``, then moved there."""
    prepared = directory.parent
    tmp = directory.with_name(directory.name + f".tmp{os.getpid()}")
    try:
        files.remove_entry(tmp)
        tmp.mkdir(parents=True)
        _build_entry(tmp, corpus, rep, fit, progress_bar, meta, workers)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk must not stay full
        if isinstance(exc, OSError):
            raise CadenzaError(f"cannot write the prepared data in {prepared}: {exc.strerror or exc}; free space "
                               f"there or set CADENZA_CACHE to another folder") from None
        raise
    try:
        os.replace(tmp, directory)
    except OSError as exc:  # another process prepared the same data meanwhile: use theirs if it verifies
        shutil.rmtree(tmp, ignore_errors=True)
        why = cache_check.problem(directory, meta["key"])
        if why is not None:
            _refuse_damaged(directory, why, exc)


class _Corpus:
    """A corpus while it is prepared, a few bytes a file: the paths, each file's content
    record, and the pieces read so far (the file each comes from and its note count; its
    pretokens are the spool's piece of the same number)."""

    def __init__(self, source: str):
        self.paths = midi_file_names(source)
        if not self.paths:
            raise CadenzaError(f"no .mid or .midi files found in {source}")
        self.records = _content_records(self.paths)
        self.files, self.notes = array("q"), array("q")

    def add(self, file: int, notes: int) -> None:
        self.files.append(file)
        self.notes.append(notes)

    def piece_paths(self, pieces: np.ndarray) -> list[str]:
        return [self.paths[k] for k in np.asarray(self.files)[pieces].tolist()]

    def held_out(self, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
        """The pieces for training and for validation (sorted by path), see :func:`split_files`."""
        rows = self.records[np.asarray(self.files)]
        copies = np.unique(rows.view(f"V{RECORD_BYTES}").ravel(), return_inverse=True)[1].ravel()
        held, note = _held_out(val_fraction, seed, copies)
        if held is None:
            return np.arange(len(self.files)), np.zeros(0, dtype=np.int64), note
        val = sorted(np.flatnonzero(held).tolist(), key=lambda k: self.paths[self.files[k]])
        return np.flatnonzero(~held), np.asarray(val, dtype=np.int64), ""


def _build_entry(tmp: Path, corpus: _Corpus, rep, fit: bool, progress_bar: bool, meta: dict,
                 workers: int | None) -> None:
    """Read the corpus into a spool in ``tmp`` (pretokens on disk as they come), fit the
    representation on the training pieces read back from it, write the entry."""
    spool = PretokenSpool(tmp / SPOOL)
    progress = _progress_bar(len(corpus.paths), progress_bar)
    summary = CorpusSummary()
    try:
        for file, pretokens, notes, _, _ in read_files(corpus.paths, rep.pretokenize, summary, workers,
                                                       progress.update if progress else None):
            spool.add(pretokens)
            corpus.add(file, notes)
    finally:
        spool.close()
        if progress:
            progress.close()
    if not summary.files_read:
        reasons = "; ".join(f"{p}: {r}" for p, r in summary.skipped[:3])
        raise CadenzaError(f"no readable notes in {meta['source']} ({len(summary.skipped)} files skipped: {reasons})")
    train, val, note = corpus.held_out(meta["val_fraction"], meta["seed"])
    if fit:
        rep.fit(spool.pieces(train))
    meta = {**meta, "vocab_size": rep.vocab_size,
            "dtype": "uint16" if rep.vocab_size <= np.iinfo(np.uint16).max else "uint32"}
    summary.val_files, summary.note_on_split = len(val), note
    summary.suggestion = suggestion(summary.performed, summary.files_read, summary.pedals, rep.name)
    _write_entry(tmp, rep, spool, corpus, {"train": train, "val": val}, meta, summary)


def _cached(directory: Path, key: str, log) -> PreparedData | None:
    """The cache entry if it verifies; a damaged one is removed (and said so) to be rebuilt, or
    is a one-line error where it cannot be moved away (an immutable folder)."""
    if not os.path.lexists(directory):
        return None
    why = cache_check.problem(directory, key)
    if why is None:
        return PreparedData(directory, cache_check.read_meta(directory))
    aside = directory.with_name(directory.name + f".bad.tmp{os.getpid()}")
    try:
        os.replace(directory, aside)
    except FileNotFoundError:
        pass  # another process moved it away meanwhile
    except OSError as exc:
        _refuse_damaged(directory, why, exc)
    files.remove_entry(aside)
    if log:
        log(f"the prepared data in {directory} does not verify ({why}); preparing it again")
    return None


def _refuse_damaged(directory: Path, why: str, exc: OSError) -> NoReturn:
    """A damaged entry that cannot be moved away is never used: its tokens would be trained on."""
    raise CadenzaError(f"the prepared data in {directory} does not verify ({why}) and cannot be replaced "
                       f"({exc.strerror or exc}); remove that folder (if immutable, chattr -i it first) or "
                       f"set CADENZA_CACHE to another folder")


def _write_entry(tmp: Path, rep, spool: PretokenSpool, corpus: _Corpus, groups: dict, meta: dict,
                 summary: CorpusSummary) -> None:
    """The token files, indexes and tokenizer, then meta.json with their checksums last
    (the spool removed first: it is no part of the entry)."""
    representations.save(rep, tmp / "representation")
    splits = {}
    notes = np.asarray(corpus.notes)
    for name, pieces in groups.items():
        ids = (rep.to_ids(spool[k]) for k in pieces.tolist())
        n = _write_split(tmp, name, ids, notes[pieces], rep.bos_id, meta["dtype"])
        splits[name] = {"tokens": n, "pieces": len(pieces), "notes": int(notes[pieces].sum()),
                        "files": corpus.piece_paths(pieces)}
    spool.remove()
    summary.tokens = splits["train"]["tokens"] + splits["val"]["tokens"]
    meta = {**meta, "splits": splits, "summary": summary.to_dict(), "files": cache_check.checksums(tmp)}
    meta[cache_check.META_DIGEST] = cache_check.meta_digest(meta)
    with open(tmp / "meta.json", "w") as f:  # written as it is encoded: no copy of every path at once
        json.dump(meta, f, indent=1, default=str)


def _progress_bar(total: int, enabled: bool):
    if not enabled or total < 50 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="reading", leave=False)


class TokenWindows:
    """Windows of a flat token array, as training batches.

    ``every_position``: the input is ``seq_len`` tokens and the target is the same window
    shifted by one (teacher forcing on every position). Otherwise the target is only the
    token after the window, as the seed notebook trains.
    """

    def __init__(self, tokens: np.ndarray, seq_len: int, every_position: bool,
                 transpose_tables: np.ndarray | None = None, tempo_tables: np.ndarray | None = None,
                 retokenize: "BPETransposition | None" = None):
        self.tokens, self.seq_len, self.every_position = tokens, seq_len, every_position
        self.tables = transpose_tables  # [n_shifts, vocab]; row 0 is the identity
        self.tempo_tables = tempo_tables  # [n_stretches, vocab]; row 0 is the identity
        self.retokenize = retokenize  # transposition of BPE tokens (no table can do it)
        self.n_starts = max(0, len(tokens) - seq_len)

    def windows_per_epoch(self, all_windows: bool) -> int:
        """Every window (the notebook's epoch), or ``len/seq_len`` of them."""
        return self.n_starts if all_windows else max(1, len(self.tokens) // self.seq_len)

    def epoch_starts(self, rng: np.random.Generator, all_windows: bool) -> np.ndarray:
        """All window starts shuffled (the notebook's epoch), or ``len/seq_len`` random ones."""
        if all_windows:
            return rng.permutation(self.n_starts)
        return rng.integers(0, self.n_starts, size=self.windows_per_epoch(False))

    def batch(self, starts: np.ndarray, rng: np.random.Generator | None = None):
        span = np.arange(self.seq_len + 1)
        windows = np.asarray(self.tokens[starts[:, None] + span], dtype=np.int64)
        if self.tables is not None and rng is not None and len(self.tables) > 1:
            shifts = rng.integers(0, len(self.tables), size=len(starts))
            moved = np.take_along_axis(self.tables[shifts], windows, axis=1)
            ok = (moved >= 0).all(axis=1)  # only where every pitch stays in range
            windows[ok] = moved[ok]
        if self.retokenize is not None and rng is not None:
            self.retokenize(self.tokens, starts, windows, rng)
        if self.tempo_tables is not None and rng is not None and len(self.tempo_tables) > 1:
            stretch = rng.integers(0, len(self.tempo_tables), size=len(starts))
            windows = np.take_along_axis(self.tempo_tables[stretch], windows, axis=1)
        x = torch.from_numpy(windows[:, :-1])
        y = torch.from_numpy(windows[:, 1:] if self.every_position else windows[:, -1:])
        return x, y

    def eval_starts(self, max_windows: int) -> np.ndarray:
        """Deterministic evaluation windows: non-overlapping for every-position models,
        evenly spaced single-target windows otherwise."""
        if self.n_starts <= 0:
            return np.zeros(0, dtype=np.int64)
        step = self.seq_len if self.every_position else max(1, self.n_starts // max_windows)
        return np.arange(0, self.n_starts, step)[:max_windows]


def _shift_tables(make, vocab_size: int, max_shift: int) -> np.ndarray | None:
    """Identity first, then ``make(s)`` for s in -max_shift..max_shift (s != 0)."""
    if max_shift <= 0:
        return None
    rows = [np.arange(vocab_size)]
    for s in range(-max_shift, max_shift + 1):
        if s == 0:
            continue
        table = make(s)
        if table is None:
            return None
        rows.append(table)
    return np.stack(rows)


def transpose_tables(rep: representations.Representation, max_shift: int) -> np.ndarray | None:
    """Random transposition within +-max_shift semitones (-1 marks out-of-range pitches)."""
    return _shift_tables(rep.transposition_table, rep.vocab_size, max_shift)


class BPETransposition:
    """Random transposition of BPE windows: a longer stretch of tokens is expanded to base
    tokens, transposed and merged again, then cut to the window length. A window whose
    pitches would leave the range, or that merges to too few tokens, stays as it was."""

    MARGIN = 1.5  # read this many times the window: a transposed stretch may merge shorter

    def __init__(self, rep: representations.Representation, max_shift: int):
        self.rep, self.max_shift = rep, max_shift

    def __call__(self, tokens: np.ndarray, starts: np.ndarray, windows: np.ndarray,
                 rng: np.random.Generator) -> None:
        width = windows.shape[1]
        shifts = rng.integers(-self.max_shift, self.max_shift + 1, size=len(starts))
        for k, (start, shift) in enumerate(zip(starts, shifts)):
            if shift == 0:
                continue
            stretch = np.asarray(tokens[start:start + int(width * self.MARGIN)], dtype=np.int64)
            moved = self.rep.transpose_ids(stretch, int(shift))
            if moved is not None and len(moved) >= width:
                windows[k] = moved[:width]


def transposition(rep: representations.Representation, max_shift: int):
    """(tables, None) for token-by-token transposition, (None, BPETransposition) where
    tokens must be merged again (BPE), (None, None) when off or impossible."""
    tables = transpose_tables(rep, max_shift)
    if tables is None and max_shift > 0 and hasattr(rep, "transpose_ids") and rep.is_trained:
        return None, BPETransposition(rep, max_shift)
    return tables, None


def tempo_tables(rep: representations.Representation, max_bins: int) -> np.ndarray | None:
    """Random tempo stretch within +-max_bins tempo bins."""
    return _shift_tables(rep.tempo_table, rep.vocab_size, max_bins)
