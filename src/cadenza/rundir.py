"""The run directory: one self-describing folder per training run.

    config.json        the Config the run was trained with
    tokenizer/         the fitted representation (vocabulary, BPE merges)
    best.safetensors   weights with the best validation loss (training loss without a split)
    state.pt           the last training state: model, optimizer, epoch, step, RNG
    primers.npy        a few training windows to start generation from
    token_stats.json   what generation may use of the training tokens (see data/token_stats.py)
    metrics.csv        one row per epoch; loss.png: the curves
    run.lock           held while a training process writes here

Every write is atomic (write a temporary file, then rename), so a crash at any moment
leaves the previous checkpoint loadable. Nothing here is unpickled: weights are
safetensors and the state is read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import pickle
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from . import models, validate
from .data import layouts, representations
from .config import Config
from .errors import CadenzaError
from .files import (atomic_path, check_regular, check_regular_tree, is_library_leftover, is_temp_of, open_regular,
                    read_json, read_regular, remove_stale_temp_files, write_bytes_atomic)
from .pretrained import resolve_run

CONFIG, TOKENIZER, BEST, STATE, PRIMERS = "config.json", "tokenizer", "best.safetensors", "state.pt", "primers.npy"
METRICS, LOSS_PLOT, LOCK = "metrics.csv", "loss.png", "run.lock"
TOKEN_STATS = "token_stats.json"
MAX_FILE_BYTES = 256 << 20  # a run file other than the weights (a FIFO or /dev/zero link is refused too)
MAX_WEIGHTS_BYTES = 64 << 30
MAX_LOCK_BYTES = 4096  # "host pid"
RUN_FILES = {CONFIG, TOKENIZER, TOKENIZER + ".tmp", BEST, STATE, PRIMERS, TOKEN_STATS, METRICS, LOSS_PLOT, LOCK}
METRIC_FIELDS = ["epoch", "step", "progress", "train_loss", "val_loss", "lr", "tokens_per_s", "elapsed_s", "best"]


def save_weights(model: torch.nn.Module, path: Path) -> None:
    with atomic_path(path) as tmp:
        try:
            save_model(model, str(tmp))
        except SafetensorError as exc:  # a full disk reaches us as "... (os error 28)"
            code = re.search(r"os error (\d+)", str(exc))
            if code is None:
                raise
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from None  # named by atomic_path


def save_state(state: dict, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_state(path: Path) -> dict:
    """The training state, loaded without executing anything stored in it."""
    if not os.path.lexists(path):
        raise CadenzaError(f"missing training state {path}")
    try:
        with open_regular(path, MAX_WEIGHTS_BYTES) as f:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except CadenzaError:
        raise
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
        what = f"; it references {found.group(1)}" if found else ""
        raise CadenzaError(f"refusing to load {path}: it holds objects other than tensors and "
                           f"plain values (possible code payload){what}") from None
    except Exception as exc:
        raise CadenzaError(f"cannot read the training state {path}: {exc}".splitlines()[0]) from None
    return validate.check_state(state, Path(path))


def save_token_stats(stats: dict, path: Path) -> None:
    write_bytes_atomic(Path(path), json.dumps(stats, indent=1).encode())


def load_token_stats(path: Path, vocab_size: int) -> dict | None:
    """The token statistics saved at training time; None for runs that predate them."""
    if not os.path.lexists(path):
        return None
    return validate.check_token_stats(read_json(Path(path), MAX_FILE_BYTES), vocab_size, Path(path))


def write_metrics(rows: list[dict], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(path, buffer.getvalue().encode())


def read_metrics(path: Path) -> list[dict]:
    """metrics.csv, every value checked; rows of older runs have no step/progress (one row
    per epoch then)."""
    if not os.path.lexists(path):
        return []
    try:
        with io.TextIOWrapper(open_regular(path, MAX_FILE_BYTES), newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (csv.Error, ValueError) as exc:  # NUL bytes, a huge field, not UTF-8
        raise CadenzaError(f"cannot read {path}: {str(exc).splitlines()[0][:200]}") from None
    out = []
    for line, row in enumerate(rows, 2):
        value = lambda name, default=None: validate.metrics_value(row, name, Path(path), line, default)  # noqa: E731
        epoch = value("epoch")
        out.append({"epoch": epoch, "step": value("step", 0), "progress": value("progress", float(epoch)),
                    "train_loss": value("train_loss"), "val_loss": value("val_loss"), "lr": value("lr"),
                    "tokens_per_s": value("tokens_per_s"), "elapsed_s": value("elapsed_s"),
                    "best": row.get("best") == "True"})
    return out


class RunLock:
    """An exclusive lock on a run directory; a lock left by a dead process is taken over."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.held = False

    def _owner_alive(self) -> tuple[bool, str]:
        if not os.path.lexists(self.path):
            return False, "?"  # released meanwhile
        try:  # a FIFO or a link to /dev/zero here is refused, never read
            host, pid = read_regular(self.path, MAX_LOCK_BYTES).decode("utf-8", "replace").split()[:2]
        except ValueError:
            return False, "?"
        if host != socket.gethostname():
            return True, f"{pid} on {host}"
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False, pid
        except (PermissionError, ValueError):
            return True, pid
        return True, pid

    def acquire(self) -> "RunLock":
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                alive, who = self._owner_alive()
                if alive:
                    raise CadenzaError(f"{self.path.parent} is in use by another training (process {who}); "
                                       f"wait for it or use another --run-dir") from None
                self.path.unlink(missing_ok=True)  # stale lock of a dead process
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{socket.gethostname()} {os.getpid()}\n")
            self.held = True
            remove_stale_temp_files(self.path.parent, RUN_FILES)  # no one else writes here while we hold the lock
            return self
        raise CadenzaError(f"cannot lock {self.path}")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def check_new_run_dir(run_dir: Path) -> None:
    """A new training writes into RUN_DIR only when it is new, empty, or holds nothing but
    the leftovers of a failed start of a cadenza run (a cadenza config.json first, no
    weights yet): a user's folder, or a trained run (even without state.pt, as copied for
    generation), is refused before anything in it is touched. Only cadenza's own
    temporary files count as nothing (see :func:`is_run_temp`)."""
    if os.path.lexists(run_dir) and not run_dir.is_dir():
        raise CadenzaError(f"--run-dir {run_dir} exists and is not a folder")
    if not run_dir.exists():
        return
    names = sorted(n for n in os.listdir(run_dir) if n != LOCK and not is_run_temp(run_dir, n))
    if not names:
        return
    advice = "nothing in it was touched; choose a new or empty --run-dir"
    foreign = [n for n in names if n not in RUN_FILES]
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise CadenzaError(f"{run_dir} is not empty and not a cadenza run (it holds {foreign[0]!r}{more}); {advice}")
    try:
        if not (run_dir / CONFIG).is_file() or (run_dir / CONFIG).is_symlink():
            raise CadenzaError("no config")
        Config.load(run_dir / CONFIG)
    except CadenzaError:
        raise CadenzaError(f"{run_dir} is not empty and not a cadenza run ({CONFIG} is missing or not "
                           f"a cadenza configuration); {advice}") from None
    if STATE in names:
        raise CadenzaError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --run-dir")
    if BEST in names:
        raise CadenzaError(f"{run_dir} holds a trained run ({BEST}, no {STATE} to resume); {advice}")


def is_run_temp(run_dir: Path, name: str) -> bool:
    """Whether ``name`` in RUN_DIR is a temporary file of cadenza's own writes of a run
    file (or safetensors' leftover of the weights): what a killed training leaves."""
    return is_temp_of(name, RUN_FILES) or is_library_leftover(Path(run_dir) / name)


@dataclass
class Run:
    directory: Path
    config: Config
    representation: representations.Representation
    model: torch.nn.Module
    primers: np.ndarray | None
    token_stats: dict | None = None  # None: a run from before token_stats.json


def load_run(run_dir: Path, device: str = "cpu") -> Run:
    """A trained run from its directory alone (or a shipped model's name, such as ``base``);
    a damaged or foreign run is a clear error."""
    run_dir = resolve_run(run_dir)
    if not run_dir.is_dir():
        raise CadenzaError(f"no such run directory: {run_dir}")
    missing = [name for name in (CONFIG, TOKENIZER, BEST) if not (run_dir / name).exists()]
    if missing:
        raise CadenzaError(f"{run_dir} is not a complete cadenza run: missing {', '.join(missing)}")
    check_regular(run_dir / BEST, MAX_WEIGHTS_BYTES)
    check_regular_tree(run_dir / TOKENIZER, MAX_FILE_BYTES)
    config = Config.load(run_dir / CONFIG)
    rep = representations.load(run_dir / TOKENIZER)
    model = _load_model(run_dir, config, rep, device)
    primers = None
    if os.path.lexists(run_dir / PRIMERS):
        try:
            with open_regular(run_dir / PRIMERS, MAX_FILE_BYTES) as f:
                primers = np.load(f, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise CadenzaError(f"cannot read {run_dir / PRIMERS}: {exc}") from None
        validate.check_primers(primers, rep.vocab_size, run_dir / PRIMERS)
    stats = load_token_stats(run_dir / TOKEN_STATS, rep.vocab_size)
    # no generated note or pedal outlives the corpus's longest, no note is shorter than its shortest
    rep.limit_notes(*((stats or {}).get(k) for k in ("longest_note_beats", "longest_pedal_beats",
                                                     "shortest_note_beats")))
    return Run(run_dir, config, rep, model, primers, stats)


def parse_model_options(words: list[str], model: str | None = None) -> dict:
    """``NAME=VALUE`` words (``--model-option``, a benchmark's ``--option``) as model options,
    VALUE read as JSON (2048, 0.9, true; else as a string). With ``model`` each is checked
    against the spec that model declares; without, a training checks them against the model
    it settles on (:func:`cadenza.validate.check_config`)."""
    specs = models.declared_options(model) if model is not None else None
    options = {}
    for word in words:
        name, sep, text = word.partition("=")
        if not sep or not name or (specs is not None and name not in specs):
            known = f" with a {model} option ({', '.join(specs)})" if specs is not None else ""
            raise CadenzaError(f"model option {word!r} is not NAME=VALUE{known} (VALUE as JSON: 2048, true, 0.1)")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if specs is not None:
            specs[name].check(name, value)
        options[name] = value
    return options


def with_model_options(run: Run, **options) -> Run:
    """``run`` with model options changed that hold no weights (a memory model's cache:
    ``cache_window``, ``cache_sentinel``, ...), to try settings without training again."""
    if not options:
        return run
    config = run.config.replace(model_options={**run.config.model_options, **options})
    model = models.create(config.model, layouts.model_vocab(config, run.representation), config.model_options)
    model.load_state_dict(run.model.state_dict())
    device = next(run.model.parameters()).device
    return dataclasses.replace(run, config=config, model=model.to(device).eval())


def _load_model(run_dir: Path, config: Config, rep, device: str) -> torch.nn.Module:
    """The model the configuration describes, with the run's checked weights."""
    try:
        model = models.create(config.model, layouts.model_vocab(config, rep), config.model_options)
    except CadenzaError as exc:
        raise CadenzaError(f"{run_dir / CONFIG}: {exc}") from None
    validate.check_weights_file(run_dir / BEST)
    try:
        load_model(model, str(run_dir / BEST), strict=True, device=device)
    except Exception as exc:
        raise CadenzaError(f"weights {run_dir / BEST} do not match the {config.model} model with the "
                           f"{rep.vocab_size}-token vocabulary in {run_dir / TOKENIZER} and {run_dir / CONFIG}: "
                           f"{str(exc).splitlines()[0][:200]}") from None
    validate.check_finite(dict(model.named_parameters()), run_dir / BEST)
    return model.to(device).eval()
