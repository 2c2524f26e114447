"""Writing files without losing any: atomic replacement, no overwrite unless asked, never
through a symlink.

Every output is first written to a temporary file beside its final name (created
exclusively, without following links), then renamed into place: a crash at any moment
leaves either the previous file or the new one, never a part. ``overwrite=False`` moves
it into place with ``link``, which fails instead of replacing a file that appeared
meanwhile. A final name that is a symlink is replaced by the file (the link's target is
never written).
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path

from .errors import CadenzaError

TEMP_NAME = re.compile(r"\.(.+)\.tmp\d+(\.\w+)?")  # group 1: the final name
# safetensors (Rust's tempfile crate) writes a file through ``.tmpXXXXXX`` beside it
LIBRARY_TEMP_NAME = re.compile(r"\.tmp[A-Za-z0-9]{6}")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
# a write that failed for want of room or rights: named by its file, never by a bare strerror
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def is_temp_of(name: str, finals) -> bool:
    """Whether ``name`` is a temporary file :func:`atomic_path` makes for one of ``finals``:
    a user's ``.notes.tmp1`` beside them is not (it names no file cadenza writes there)."""
    found = TEMP_NAME.fullmatch(name)
    return bool(found) and found.group(1) in finals


def is_library_leftover(entry: Path) -> bool:
    """Whether ``entry`` is a ``.tmpXXXXXX`` file safetensors left when killed mid-write:
    empty, or beginning as a safetensors file does (an 8-byte header length, then ``{``).
    A user's file that merely has such a name is not."""
    if not LIBRARY_TEMP_NAME.fullmatch(Path(entry).name):
        return False
    try:
        if not stat.S_ISREG(os.lstat(entry).st_mode):  # a link, FIFO or device: never opened
            return False
        fd = os.open(entry, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
    except OSError:
        return False
    try:
        head = os.read(fd, 9)
    finally:
        os.close(fd)
    return head == b"" or (len(head) == 9 and head[8:] == b"{")


def temp_path(path: Path, suffix: str = "") -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")


def remove_entry(path: Path) -> None:
    """Remove whatever ``path`` is, judged by ``lstat``: a link is removed, not its target."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.unlink(path)


def _create_exclusive(tmp: Path) -> None:
    for _ in range(2):
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW, 0o644))
            return
        except FileExistsError:
            remove_entry(tmp)  # a stale temporary file of ours (same pid) or something planted
    raise CadenzaError(f"cannot create the temporary file {tmp}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _place(tmp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path, follow_symlinks=False)  # fails, never replaces, if path exists
    except FileExistsError:
        raise CadenzaError(f"{path} already exists; pass --force to overwrite it") from None
    except OSError:  # a file system without hard links
        if os.path.lexists(path):
            raise CadenzaError(f"{path} already exists; pass --force to overwrite it") from None
        os.replace(tmp, path)


@contextmanager
def atomic_path(path: Path, suffix: str = "", overwrite: bool = True):
    """Yield a temporary path beside ``path``; on success it becomes ``path`` atomically.
    ``suffix`` ends the temporary name, for writers that pick the format from it."""
    path = Path(path)
    tmp = temp_path(path, suffix)
    _create_exclusive(tmp)
    try:
        yield tmp
        _fsync(tmp)
        _place(tmp, path, overwrite)
    except OSError as exc:
        raise named_error(exc, path) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    _remove_dead_temps(path)


def hash_file(path: Path, digest, block: int = 1 << 16):
    """``digest`` (a hashlib object) updated with the bytes of ``path``, read in blocks
    (small ones: a block read is a buffer of its size, and many files hashed are small)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        while chunk := os.read(fd, block):
            digest.update(chunk)
    finally:
        os.close(fd)
    return digest


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _remove_dead_temps(path: Path) -> None:
    """Temporary files for ``path`` left by killed processes (judged by lstat, never followed)."""
    prefix = f".{path.name}.tmp"
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid = re.match(r"\d+", name[len(prefix):])
        entry = path.parent / name
        if pid and TEMP_NAME.fullmatch(name) and not pid_alive(int(pid.group())) \
                and (os.path.islink(entry) or not entry.is_dir()):
            entry.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes, overwrite: bool = True) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def remove_stale_temp_files(folder: Path, finals) -> None:
    """Temporary files of atomic writes of ``finals`` (and safetensors' leftovers) cut short
    by a killed process, judged by lstat: a planted link is removed, never followed. Any
    other file is the user's, whatever its name. Call only while no one else writes here."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        entry = folder / name
        ours = is_temp_of(name, finals) and (os.path.islink(entry) or not entry.is_dir())
        if ours or is_library_leftover(entry):
            entry.unlink(missing_ok=True)


def check_regular(path: Path, limit: int) -> Path:
    """``path`` if it is a regular file of at most ``limit`` bytes, judged without following
    a link: a FIFO would block a reader forever, a link to /dev/zero would fill memory. For
    readers that take a path (safetensors, MidiTok); others use :func:`open_regular`."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise CadenzaError(f"missing {path}") from None
    except OSError as exc:
        raise CadenzaError(f"cannot read {path}: {exc.strerror}") from None
    _check_kind(path, info, limit)
    return Path(path)


def _check_kind(path: Path, info: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise CadenzaError(f"refusing to read {path}: it is {kind}")
    if info.st_size > limit:
        raise CadenzaError(f"refusing to read {path}: {info.st_size:,} bytes, more than the {limit:,} it may hold")


def open_regular(path: Path, limit: int):
    """``path`` opened for reading (binary) if it is a regular file of at most ``limit``
    bytes, else one line why not. Judged on the opened file itself (``fstat``), so nothing
    can be swapped in between the check and the read; the open follows no link and never
    waits (a FIFO opened without O_NONBLOCK blocks until a writer comes)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
    except FileNotFoundError:
        raise CadenzaError(f"missing {path}") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise CadenzaError(f"refusing to read {path}: it is a symlink") from None
        raise CadenzaError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        _check_kind(path, os.fstat(fd), limit)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, read through :func:`open_regular` (at most ``limit``, even
    if the file grows while it is read)."""
    with open_regular(path, limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise CadenzaError(f"refusing to read {path}: more than the {limit:,} bytes it may hold")
    return data


def check_regular_tree(folder: Path, limit: int) -> None:
    """Every entry under ``folder`` a regular file (or a real folder) within ``limit``."""
    info = os.lstat(folder) if os.path.lexists(folder) else None
    if info is None or not stat.S_ISDIR(info.st_mode):
        return  # missing or not a folder: the reader says so
    stack = [os.fspath(folder)]  # not os.walk: Python 3.11's recurses, and fails 1,000 folders deep
    while stack:
        root = stack.pop()
        try:
            names = os.listdir(root)
        except OSError:
            continue  # as os.walk: the reader says what it cannot read
        for name in names:
            path = os.path.join(root, name)
            if not os.path.isdir(path):
                check_regular(Path(path), limit)
            elif os.path.islink(path):
                raise CadenzaError(f"refusing to read {path}: it is a symlink")
            else:
                stack.append(path)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(paths: list[Path], force: bool, inputs: list[Path] = (), make_folders: bool = False) -> None:
    """Refuse before any work: an output that is one of the inputs (even with ``force``),
    a folder, or any existing entry (a symlink included) unless ``force``; and a folder
    that takes no files (``make_folders``: the writer creates missing ones; see
    :func:`check_creatable`)."""
    for path in paths:
        for source in inputs:
            if source is not None and _same_file(path, source):
                raise CadenzaError(f"the output {path} is the input {source}; choose another output name")
        if os.path.isdir(path) and not os.path.islink(path):
            raise CadenzaError(f"the output {path} is a folder; name a file")
        if os.path.lexists(path) and not force:
            raise CadenzaError(f"{path} already exists; pass --force to overwrite it")
    for folder in dict.fromkeys(Path(p).parent for p in paths):
        (check_creatable if make_folders else check_writable)(folder)


def check_creatable(folder: Path) -> None:
    """Refuse before any work a folder that cadenza will create (with its parents) where
    its nearest existing ancestor takes no files, or is a file."""
    folder = Path(folder)
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise CadenzaError(f"{folder} exists and is not a folder; choose another output folder")
    check_writable(folder)


def check_writable(folder: Path) -> None:
    """Refuse before any work a folder where no file can be created (a read-only file
    system, /proc, /sys, no permission): found by creating a temporary file there (the
    only test root cannot fool), removed at once, the folder's times put back."""
    probe = temp_path(Path(folder) / "cadenza", ".probe")
    try:
        times = os.stat(folder)
        _create_exclusive(probe)
    except OSError as exc:
        raise CadenzaError(f"cannot create files in {folder} ({exc.strerror or exc}); "
                           f"choose another output folder") from None
    os.unlink(probe)
    try:
        os.utime(folder, ns=(times.st_atime_ns, times.st_mtime_ns))
    except OSError:
        pass


def named_error(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` when it is a failed write that names no file (a full disk
    reports ENOSPC on a file descriptor), else ``exc`` itself."""
    if exc.filename is not None or exc.errno not in WRITE_ERRNOS:
        return exc
    return OSError(exc.errno, exc.strerror, str(path))  # PermissionError for EACCES, as the original


def os_error_line(exc: OSError, where: Path | None = None) -> str:
    """One line for a failed file operation, naming the final file rather than its
    temporary; ``where`` (a folder) when the error names no file."""
    name = re.sub(r"(^|/)\.([^/]+)\.tmp\d+(\.\w+)?$", r"\1\2", os.fsdecode(exc.filename or where or ""))
    return f"{exc.strerror or exc}{': ' + name if name else ''}"


MAX_JSON_BYTES = 64 << 20


def read_json(path: Path, limit: int = MAX_JSON_BYTES):
    """The JSON in ``path`` (a regular file within ``limit`` bytes), or one line why not:
    broken, not UTF-8, or nested too deep to parse."""
    try:
        return json.loads(read_regular(Path(path), limit))
    except CadenzaError:
        raise
    except RecursionError:
        raise CadenzaError(f"cannot read {path}: nested too deeply") from None
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise CadenzaError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}") from None
