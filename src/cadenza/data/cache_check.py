"""A prepared-data cache entry is checked before use, never trusted.

Preparation records in ``meta.json`` the size and a checksum of every other file of the
entry (token files, piece indexes, the tokenizer), and a checksum of meta.json's own
content (its file lists decide what validation holds out). :func:`problem` compares them,
and checks that every token id lies in the vocabulary;
a entry that fails is rebuilt by the caller. :func:`remove_dead_builds` removes the
temporary folders (``NAME.tmpPID``) of preparations whose process is gone.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from pathlib import Path

import numpy as np

from ..errors import CadenzaError
from ..files import hash_file, pid_alive, read_regular

DTYPES = ("uint16", "uint32")
META_DIGEST = "meta_digest"
MAX_META_BYTES = 1 << 30  # meta.json lists every file of the corpus
BLOCK = 1 << 18  # token ids read at a time


def _file_digest(path: Path) -> str:
    return hash_file(path, hashlib.blake2b(digest_size=16)).hexdigest()


def _entry_files(directory: Path) -> list[str]:
    """Every file of the entry but meta.json, as sorted relative paths."""
    out = []
    for root, _, names in os.walk(directory):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), directory)
            if rel != "meta.json":
                out.append(rel)
    return sorted(out)


def checksums(directory: Path) -> dict:
    """``{relative path: [bytes, checksum]}`` for meta.json."""
    return {rel: [os.path.getsize(directory / rel), _file_digest(directory / rel)] for rel in _entry_files(directory)}


def meta_digest(meta: dict) -> str:
    """A checksum of everything in ``meta`` but itself, over a canonical encoding streamed
    to the hash (as meta.json is written: no copy of every path at once)."""
    h = hashlib.blake2b(digest_size=16)
    encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
    for chunk in encoder.iterencode({k: v for k, v in meta.items() if k != META_DIGEST}):
        h.update(chunk.encode())
    return h.hexdigest()


def read_meta(directory: Path) -> dict | str:
    """meta.json as a dict, or why it cannot be used."""
    path = directory / "meta.json"
    try:
        meta = json.loads(read_regular(path, MAX_META_BYTES))
    except CadenzaError as exc:
        return str(exc).replace(f"{path}", "meta.json")
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        return f"meta.json unreadable ({type(exc).__name__})"
    if not isinstance(meta, dict):
        return "meta.json is not an object"
    return meta


def _meta_problem(meta: dict, key: str) -> str | None:
    if meta.get("key") != key:
        return "meta.json names another key"
    if meta.get("dtype") not in DTYPES:
        return f"meta.json has dtype {meta.get('dtype')!r}"
    if not isinstance(meta.get("vocab_size"), int) or meta["vocab_size"] < 1:
        return "meta.json has no valid vocab_size"
    if not isinstance(meta.get("files"), dict):
        return "meta.json has no checksums (an older or damaged entry)"
    for split in ("train", "val"):
        tokens = (meta.get("splits") or {}).get(split, {}).get("tokens")
        if not isinstance(tokens, int) or tokens < 0:
            return f"meta.json has no valid token count for {split}"
    return None


def _files_problem(directory: Path, meta: dict) -> str | None:
    recorded = meta["files"]
    present = _entry_files(directory)
    if sorted(recorded) != present:
        return f"files {sorted(set(recorded) ^ set(present))} missing or unexpected"
    for rel, (size, digest) in recorded.items():
        if not stat.S_ISREG(os.lstat(directory / rel).st_mode):  # a FIFO would block the checksum
            return f"{rel} is not a regular file"
        actual = os.path.getsize(directory / rel)
        if actual != size:
            return f"{rel} has {actual} bytes, meta.json says {size}"
    for split in ("train", "val"):
        want = meta["splits"][split]["tokens"] * np.dtype(meta["dtype"]).itemsize
        if recorded.get(f"{split}.bin", [None])[0] != want:
            return f"{split}.bin does not hold {meta['splits'][split]['tokens']} {meta['dtype']} tokens"
    for rel, (size, digest) in recorded.items():
        if _file_digest(directory / rel) != digest:
            return f"{rel} does not match its checksum"
    return None


def _digest_problem(meta: dict) -> str | None:
    if meta.get(META_DIGEST) != meta_digest(meta):
        return "meta.json does not match its checksum: its file lists or settings were changed"
    return None


def _ids_problem(directory: Path, meta: dict) -> str | None:
    for split in ("train", "val"):
        n = meta["splits"][split]["tokens"]
        if n == 0:
            continue
        top = _top_id(directory / f"{split}.bin", meta["dtype"], n)
        if top >= meta["vocab_size"]:
            return f"{split}.bin holds token id {top}, outside the vocabulary of {meta['vocab_size']}"
        index = np.load(directory / f"{split}.idx.npy", allow_pickle=False)
        if index.ndim != 2 or index.shape[1] != 2 or (len(index) and not 0 <= index[:, 0].min() <= index[:, 0].max() < n):
            return f"{split}.idx.npy does not index {split}.bin"
    return None


def _top_id(path: Path, dtype: str, n: int) -> int:
    """The largest of the first ``n`` ids, read in blocks (not mapped: pages of a mapping,
    once read, count in the process's resident memory)."""
    top = 0
    with open(path, "rb") as f:
        for start in range(0, n, BLOCK):
            block = np.fromfile(f, dtype=dtype, count=min(BLOCK, n - start))
            if len(block) < min(BLOCK, n - start):
                raise ValueError(f"{path.name} ends early")
            top = max(top, int(block.max()))
    return top


def problem(directory: Path, key: str) -> str | None:
    """Why the cache entry in ``directory`` cannot be used, or None when it verifies."""
    meta = read_meta(directory)
    if isinstance(meta, str):
        return meta
    try:
        return (_meta_problem(meta, key) or _files_problem(directory, meta) or _ids_problem(directory, meta)
                or _digest_problem(meta))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


def remove_dead_builds(prepared: Path) -> None:
    """Temporary folders of preparations whose process died (killed, disk full ...)."""
    try:
        names = os.listdir(prepared)
    except OSError:
        return
    for name in names:
        found = re.search(r"\.tmp(\d+)$", name)
        if found and not pid_alive(int(found.group(1))) and not os.path.islink(prepared / name):
            shutil.rmtree(prepared / name, ignore_errors=True)
