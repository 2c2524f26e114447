"""Training that never loses work: atomic checkpoints, exact resume, Ctrl-C saves.

``train(source, run_dir, config)`` prepares the data (cached), then trains epoch by epoch.
An epoch's window order is a pure function of (seed, epoch, rank), and the state records
the step reached inside the epoch, so resuming from any checkpoint replays exactly what an
uninterrupted run would have done.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import files, models, rundir, validate
from ..data import fim, layouts, representations
from .averaging import scored, weight_average
from ..config import Config, preset
from ..data.dataset import PreparedData, TokenWindows, prepare, tempo_tables, transposition
from ..data.dataset import tokens_digest as dataset_tokens_digest
from .distributed import Dist
from ..errors import CadenzaError, printable
from .finetune import check_start_model, finetune_config, load_start, start_tokenizer
from .plots import plot_loss
from ..data.recorded_source import recorded_source
from . import stopping
from .stopping import stoppable
from .schedule import FIRST_ESTIMATE_STEP, Budget, Schedule, budget_clock
from ..data.token_stats import token_stats

N_PRIMERS = 64
MAX_EVAL_TOKENS = 65536  # one validation pass: the same windows every time


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    best_loss: float
    best_epoch: int
    stopped: str  # "done" | "early-stopping" | "time-limit" | "interrupted"
    metrics: list[dict]


def make_optimizer(model: torch.nn.Module, config: Config) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":  # Keras' RMSprop defaults, as the notebook used
        return torch.optim.RMSprop(model.parameters(), lr=config.lr, alpha=0.9, eps=1e-7)
    if config.optimizer == "adamw":
        decay = [p for p in model.parameters() if p.dim() >= 2]
        rest = [p for p in model.parameters() if p.dim() < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                  {"params": rest, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98))
    raise CadenzaError(f"unknown optimizer {config.optimizer!r}; choose adamw or rmsprop")


def sequence_loss(model, x, y, every_position: bool) -> torch.Tensor:
    logits, _ = model(x, last_only=not every_position)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))


@torch.no_grad()
def evaluate_loss(model, windows: TokenWindows, batch_size: int, device, autocast) -> float | None:
    """Mean cross-entropy per target token on deterministic held-out windows."""
    starts = windows.eval_starts(max(8, MAX_EVAL_TOKENS // windows.seq_len))
    if len(starts) == 0:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for k in range(0, len(starts), batch_size):
        x, y = windows.batch(starts[k:k + batch_size])
        x, y = x.to(device), y.to(device)
        with autocast():
            loss = sequence_loss(model, x, y, windows.every_position)
        total += loss.item() * y.numel()
        count += y.numel()
    model.train(was_training)
    return total / count


def _with_overrides(config: Config, overrides: dict) -> Config:
    """``config`` with ``overrides`` applied; ``dropout`` is the model's option of that name,
    ``model_option`` a dict of model options over the config's."""
    overrides = dict(overrides)
    dropout = overrides.pop("dropout", None)
    options = overrides.pop("model_option", {})
    config = config.replace(**overrides)
    if options:
        config = config.replace(model_options={**config.model_options, **options})
    if dropout is not None:
        models.DROPOUT.check("dropout", dropout)  # named as itself, not as model_options.dropout
        config = config.replace(model_options={**config.model_options, "dropout": dropout})
    return config


def _check_config(config: Config) -> None:
    """A new training's options, by the declarations that check a run's config.json when it is
    loaded (:func:`validate.check_config`): no training writes a run that ``load_run`` or
    ``--resume`` would then refuse. An error names the option, which the command line says as
    its flag (``--threads must be ...``)."""
    validate.check_config(json.loads(config.to_json()), None)
    layouts.check_config(config)
    if config.tempo_stretch and representations.timed_in_seconds(config.representation):
        raise CadenzaError(f"--tempo-stretch moves tempo tokens, and the {config.representation} representation "
                           "has none (its time is in seconds as played): leave it at 0")


def _save_primers(data: PreparedData, seq_len: int, path: Path, seed: int) -> None:
    tokens = data.tokens("train")
    n = max(0, len(tokens) - seq_len)
    if n == 0:
        primers = np.asarray(tokens, dtype=np.int64)[None, :]
    else:
        starts = np.random.default_rng(seed).integers(0, n, size=N_PRIMERS)
        primers = np.asarray(tokens[starts[:, None] + np.arange(seq_len)], dtype=np.int64)
    buffer = io.BytesIO()
    np.save(buffer, primers)
    rundir.write_bytes_atomic(path, buffer.getvalue())


def train(source: str | None, run_dir: str | Path, config: Config | None = None, resume: bool = False,
          overrides: dict | None = None, quiet: bool = False, workers: int | None = None,
          device: str | None = None, log=None, start_from: str | Path | None = None) -> TrainResult:
    """Train a composer on SOURCE into RUN_DIR (see the module docstring).

    A new run uses ``config`` (default: the ``base`` preset), or with ``start_from`` (the
    shipped ``base`` or a run folder) fine-tunes that run (:mod:`cadenza.training.finetune`).
    ``resume`` continues the run saved in RUN_DIR with its own configuration; ``overrides`` (e.g. ``epochs``,
    ``max_minutes``, ``patience``) change it in either case. SOURCE defaults to the one
    the run was trained on, then to the built-in ``bach`` corpus.
    """
    if device is not None:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise CadenzaError(f"unknown --device {device!r}; use cpu, cuda or cuda:N") from None
        if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
            raise CadenzaError(f"--device {device}: no such CUDA device on this machine")
    started = budget_clock()  # --max-minutes counts from here: data preparation is part of it
    dist = Dist.from_env(device)
    log = log or (lambda msg: print(printable(msg), file=sys.stderr, flush=True))  # paths escaped
    say = log if dist.is_main else (lambda msg: None)
    run_dir = Path(run_dir)
    lock = rundir.RunLock(run_dir)
    created, finished = False, False
    if dist.is_main:
        if os.path.lexists(run_dir) and not run_dir.is_dir():
            raise CadenzaError(f"--run-dir {run_dir} exists and is not a folder")
        if resume:
            if not (run_dir / rundir.STATE).exists():
                raise CadenzaError(f"nothing to resume in {run_dir}: no {rundir.STATE}")
            config = Config.load(run_dir / rundir.CONFIG)
        elif start_from is not None:
            config = finetune_config(start_from)
        else:
            config = config or preset("base")
        config = _with_overrides(config, overrides or {})
        if start_from is not None:
            check_start_model(config)
        if resume and not source:
            source = recorded_source(config.source, run_dir / rundir.CONFIG, "name the folder it was trained on: "
                                     f"cadenza train FOLDER --resume --run-dir {run_dir}")
        source = source or config.source or "bach"
        if os.path.lexists(source):  # as an absolute path: evaluate and --resume work from any folder
            source = os.path.abspath(source)
        config = config.replace(source=str(source))
        if not resume:
            rundir.check_new_run_dir(run_dir)
        created = _make_dir(run_dir)
        _acquire(lock, created)
    try:
        config, source = dist.broadcast_object((config, source))
        _check_config(config)
        budget = Budget(started, None if config.max_minutes is None else started + config.max_minutes * 60)
        with stoppable():
            result = _train_locked(source, run_dir, config, resume, quiet, workers, dist, say, budget)
        finished = True
        return result
    except MemoryError:
        raise CadenzaError("out of memory: lower --batch-size or --seq-len, or use a smaller --preset") from None
    except OSError as exc:  # disk full, permissions ...: every write is atomic, so say so
        raise CadenzaError(_stopped_by(exc, run_dir)) from None
    finally:
        # a failed start leaves nothing behind; only the lock holder may remove what it created
        if created and lock.held and not finished and not (run_dir / rundir.STATE).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        lock.release()
        dist.close()


def _make_dir(run_dir: Path) -> bool:
    """Create RUN_DIR; True when this process created it (decided by mkdir itself, so of
    two trainings started on one new folder only one thinks it created it)."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_dir.mkdir()
    except FileExistsError:
        if not run_dir.is_dir():
            raise CadenzaError(f"--run-dir {run_dir} exists and is not a folder") from None
        return False
    return True


def _acquire(lock: rundir.RunLock, created: bool) -> None:
    """Take the run's lock. A disk too full to write the lock file is one line naming the
    folder; the lock file goes, and the folder too when this process created it and
    nothing else is in it (os.rmdir: never a file of another training's)."""
    try:
        lock.acquire()
    except OSError as exc:
        if exc.filename is None:  # writing the lock file it had just created exclusively
            try:
                lock.path.unlink(missing_ok=True)
                if created:
                    os.rmdir(lock.path.parent)
            except OSError:
                pass
        raise CadenzaError(_stopped_by(exc, lock.path.parent)) from None


def _stopped_by(exc: OSError, run_dir: Path) -> str:
    where = files.os_error_line(exc, run_dir)
    if (run_dir / rundir.STATE).exists():
        return f"training stopped: {where}; the last checkpoint in {run_dir} is intact: fix this, then continue with --resume"
    return f"training stopped: {where}; no training state was saved yet: fix this, then start the training again"


@dataclass
class _Setup:
    """Everything a training needs, built once: data, model, optimizer, windows."""
    data: PreparedData
    model: torch.nn.Module
    train_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    train_w: TokenWindows
    val_w: TokenWindows
    steps_per_epoch: int
    autocast: object
    average: torch.nn.Module | None = None  # the moving average of the weights (--ema), evaluated and kept


def prepare_data(source: str, config: Config, fitted=None, workers: int | None = None, log=print,
                 progress_bar: bool = True) -> PreparedData:
    """The prepared data (cached) a training with ``config`` reads from SOURCE; ``fitted``: a
    fine-tune's or resumed run's tokenizer (:func:`cadenza.training.finetune.start_tokenizer`)."""
    return prepare(source, config.representation, config.representation_options, config.val_fraction,
                   config.seed, workers, log=log, progress_bar=progress_bar, fitted=fitted)


def _prepare_data(source, config: Config, workers, dist, say, quiet, fitted) -> PreparedData:
    data = None
    if dist.is_main:
        data = prepare_data(source, config, fitted, workers, log=say, progress_bar=not quiet)
        for line in data.summary.lines():
            say(line)
    dist.barrier()
    if data is None:  # other ranks: the cache is ready now
        data = prepare_data(source, config, fitted, workers, log=None)
    return data


def _write_run_files(run_dir: Path, config: Config, rep, data: PreparedData, tables) -> None:
    rundir.write_bytes_atomic(run_dir / rundir.CONFIG, config.to_json().encode())  # first: marks a cadenza run
    tok_tmp = run_dir / (rundir.TOKENIZER + ".tmp")
    files.remove_entry(tok_tmp)
    representations.save(rep, tok_tmp)
    files.remove_entry(run_dir / rundir.TOKENIZER)
    os.replace(tok_tmp, run_dir / rundir.TOKENIZER)
    _save_primers(data, config.seq_len, run_dir / rundir.PRIMERS, config.seed)
    _save_token_stats(data, rep, tables, run_dir)


def _save_token_stats(data: PreparedData, rep, tables, run_dir: Path) -> None:
    """What generation may use: the tokens seen in training (augmentation included) and
    how the corpus treats tempo (see :mod:`cadenza.data.token_stats`)."""
    tokens = data.tokens("train")
    starts = [int(i) for i in data.index("train")[:, 0]] + [len(tokens)]
    pieces = [np.asarray(tokens[a:b]) for a, b in zip(starts[:-1], starts[1:])]
    rundir.save_token_stats(token_stats(pieces, rep, None if tables is None else list(tables)),
                            run_dir / rundir.TOKEN_STATS)


def _setup(source, run_dir: Path, config: Config, resume: bool, workers, dist, say, quiet):
    data = _prepare_data(source, config, workers, dist, say, quiet, start_tokenizer(config, run_dir, resume))
    rep = data.representation()
    model = models.create(config.model, layouts.model_vocab(config, rep), config.model_options)
    if config.init_from and not resume:
        load_start(model, config, rep)
    model = model.to(dist.device)
    every_position = getattr(model, "trains_every_position", True)
    optimizer = make_optimizer(model, config)
    average = weight_average(model, config.ema)
    state = rundir.load_state(run_dir / rundir.STATE) if resume else None
    if state is not None:
        _restore(state, data, model, optimizer, average, run_dir)
    tables, retokenize = transposition(rep, config.transpose)
    if dist.is_main and not resume:
        _write_run_files(run_dir, config, rep, data, tables)
    train_w = layouts.training_windows(TokenWindows(data.tokens("train"), config.seq_len, every_position, tables,
                                                tempo_tables(rep, config.tempo_stretch), retokenize), rep, config)
    if dist.is_main and config.tempo_stretch and train_w.tempo_tables is None:
        say(f"tempo stretch is off: the {config.representation} tokens have no tempo tokens to move")
    val_w = TokenWindows(data.tokens("val"), config.seq_len, every_position)
    if train_w.n_starts <= 0:
        raise CadenzaError(f"the training split has {len(train_w.tokens)} tokens, fewer than one window of "
                           f"{config.seq_len + 1}; use a smaller --seq-len or more music")
    if dist.is_main and val_w.n_starts <= 0 and data.meta["splits"]["val"]["pieces"]:
        say(f"validation split too short for one window of {config.seq_len + 1} tokens: best weights by training loss")
    steps_per_epoch = config.steps_per_epoch or math.ceil(
        train_w.windows_per_epoch(not every_position) / (config.batch_size * dist.world))
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if dist.device.type == "cuda" else \
        (lambda: torch.autocast("cpu", enabled=False))
    train_model = dist.wrap(torch.compile(model) if config.compile else model)
    return _Setup(data, model, train_model, optimizer, train_w, val_w, steps_per_epoch, autocast, average), state


def _same_tokens(state: dict, data: PreparedData) -> bool:
    """Whether ``data`` holds the tokens the run trained on. States record the token files'
    digest; older ones only the cache key, whose entry is compared when the key changed
    (a newer cadenza keys the same tokens differently)."""
    if "data_tokens" in state:
        return state["data_tokens"] == data.tokens_digest
    old_key = state.get("data_key")
    if old_key == data.key:
        return True
    if not isinstance(old_key, str) or not re.fullmatch(r"[0-9a-f]{8,64}", old_key):
        return False
    old = data.directory.with_name(f"{data.meta['representation']}-{old_key}")
    return old.is_dir() and dataset_tokens_digest(old) == data.tokens_digest


def _restore(state: dict, data: PreparedData, model, optimizer, average, run_dir: Path) -> None:
    if not _same_tokens(state, data):
        raise CadenzaError(f"the data changed since {run_dir} was trained (its tokens differ from those "
                           f"prepared now from {data.meta['source']}); train a new run instead of resuming")
    if average is not None and "average" not in state:
        raise CadenzaError("the saved state has no weight average (the run was trained without --ema); "
                           "resume it with --ema 0")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if average is not None:
            average.load_state_dict(state["average"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CadenzaError(f"{run_dir / rundir.STATE} does not match this run's model: {str(exc)[:200]}") from None


def _train_locked(source, run_dir: Path, config: Config, resume: bool, quiet: bool, workers, dist, say,
                  budget: Budget) -> TrainResult:
    torch.manual_seed(config.seed)
    if config.threads:
        # one thread per process avoids OpenMP spin-waiting when the cores are shared
        torch.set_num_threads(config.threads)
    setup, state = _setup(source, run_dir, config, resume, workers, dist, say, quiet)
    return _Trainer(setup, config, run_dir, dist, say, quiet, budget, state).run()


class _Trainer:
    """The loop: batches, optimizer steps, evaluations on the schedule, checkpoints."""

    def __init__(self, s: _Setup, config: Config, run_dir: Path, dist, say, quiet: bool, budget: Budget,
                 state: dict | None):
        self.s, self.config, self.run_dir, self.dist, self.say, self.quiet = s, config, run_dir, dist, say, quiet
        st = state or {}
        if "torch_rng" in st:
            torch.set_rng_state(st["torch_rng"])
        planned = s.steps_per_epoch * config.epochs
        self.schedule = Schedule(config, planned, budget, eval_every=st.get("eval_every"))
        self.epoch, self.step = st.get("epoch", 1), st.get("step", 0)
        if state is not None:  # the learning rate the saved optimizer last stepped with
            lr = s.optimizer.param_groups[0]["lr"]
            self.schedule.resume_at(self.global_step, lr / config.lr, st.get("warmup"))
        self.best_loss, self.best_epoch = st.get("best_loss", math.inf), st.get("best_epoch", 0)
        self.bad_evals = st.get("bad_evals", st.get("bad_epochs", 0))  # bad_epochs: states saved before 2026-12
        self.loss_sum, self.loss_count = st.get("loss_sum", 0.0), st.get("loss_count", 0)
        self.tokens_seen, self.elapsed_before = st.get("tokens", 0), st.get("elapsed", 0.0)
        rows = rundir.read_metrics(run_dir / rundir.METRICS) if state is not None else []
        self.metrics = rows[:st.get("rows", len(rows))]  # rows written after the state are replayed
        self.t0 = self.last_checkpoint = self.last_eval_t = time.time()
        self.clock0 = budget_clock()
        self.steps_run, self.eval_tokens, self.progress = 0, 0, None

    @property
    def global_step(self) -> int:
        return (self.epoch - 1) * self.s.steps_per_epoch + self.step

    @property
    def has_val(self) -> bool:
        return self.s.val_w.n_starts > 0

    def snapshot(self) -> dict:
        return {"format": 1, "model": self.s.model.state_dict(), "optimizer": self.s.optimizer.state_dict(),
                "epoch": self.epoch, "step": self.step, "best_loss": self.best_loss,
                "best_epoch": self.best_epoch, "bad_evals": self.bad_evals,
                "elapsed": self.elapsed_before + (time.time() - self.t0), "loss_sum": self.loss_sum,
                "loss_count": self.loss_count, "tokens": self.tokens_seen, "torch_rng": torch.get_rng_state(),
                "data_key": self.s.data.key, "data_tokens": self.s.data.tokens_digest, "eval_every": self.schedule.eval_every,
                "warmup": self.schedule.warmup, "rows": len(self.metrics),
                **({"average": self.s.average.state_dict()} if self.s.average is not None else {})}

    def run(self) -> TrainResult:
        stopped = "done"
        try:
            while self.epoch <= self.config.epochs and stopped == "done":
                stopped = self._epoch()
        except KeyboardInterrupt:
            self._close_progress()
            stopped = "interrupted"
            if self.dist.is_main:
                rundir.save_state(self.snapshot(), self.run_dir / rundir.STATE)
                self.say(f"interrupted: state saved in {self.run_dir / rundir.STATE}; continue with --resume")
        if stopped == "done" and self.dist.is_main:
            self._say_why_done()
        if self.dist.is_main and not (self.run_dir / rundir.BEST).exists():
            rundir.save_weights(scored(self.s.model, self.s.average), self.run_dir / rundir.BEST)  # interrupted before any evaluation
        return TrainResult(self.run_dir, self.epoch - 1, self.best_loss, self.best_epoch, stopped, self.metrics)

    def _epoch(self) -> str:
        """Train the rest of this epoch; returns "done" to go on, or why training stops."""
        s, cfg = self.s, self.config
        rng = np.random.default_rng([cfg.seed, self.epoch, self.dist.rank])
        starts = s.train_w.epoch_starts(rng, all_windows=not s.train_w.every_position)
        per_rank = s.steps_per_epoch * cfg.batch_size
        starts = np.resize(starts, per_rank) if len(starts) < per_rank else starts[:per_rank]
        s.model.train()
        if self.dist.is_main and not self.quiet:
            self.progress = _progress(s.steps_per_epoch, self.step, self.epoch, cfg.epochs)
        while self.step < s.steps_per_epoch:
            if stopping.requested():  # its KeyboardInterrupt was swallowed (raised inside a finalizer)
                raise KeyboardInterrupt
            if self.steps_run and self.dist.agree(not self.schedule.time_for_another_step()):
                self._close_progress()
                self.say(f"time limit of {cfg.max_minutes} minutes reached in epoch {self.epoch}")
                return self._evaluate(final=True) or "time-limit"
            self._train_step(starts[self.step * cfg.batch_size:(self.step + 1) * cfg.batch_size])
            every = self.schedule.eval_every
            if self.step < s.steps_per_epoch and every and self.global_step % every == 0:
                self._close_progress()
                if stop := self._evaluate():
                    return stop
                if self.dist.is_main and not self.quiet:
                    self.progress = _progress(s.steps_per_epoch, self.step, self.epoch, cfg.epochs)
            elif self.dist.is_main and time.time() - self.last_checkpoint > cfg.checkpoint_minutes * 60:
                self._save_state()
        self._close_progress()
        self.epoch, self.step = self.epoch + 1, 0
        return self._evaluate(epoch_end=True) or "done"

    def _train_step(self, starts: np.ndarray) -> None:
        s, cfg = self.s, self.config
        batch_rng = np.random.default_rng([cfg.seed, self.epoch, self.dist.rank, self.step])
        x, y = s.train_w.batch(starts, batch_rng)
        x, y = x.to(self.dist.device), y.to(self.dist.device)
        for group in s.optimizer.param_groups:
            group["lr"] = self.schedule.lr(self.global_step)
        with s.autocast():
            loss = sequence_loss(s.train_model, x, y, s.train_w.every_position)
        if not torch.isfinite(loss):
            raise CadenzaError(f"the training loss became {loss.item()} at epoch {self.epoch}, step {self.step}; "
                               f"lower --lr (now {cfg.lr})")
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(s.model.parameters(), cfg.grad_clip)
        s.optimizer.step()
        if s.average is not None:
            s.average.update_parameters(s.model)
        self.loss_sum, self.loss_count = self.loss_sum + loss.item(), self.loss_count + 1
        self.step, self.steps_run = self.step + 1, self.steps_run + 1
        self.tokens_seen += y.numel() * self.dist.world
        self.eval_tokens += y.numel() * self.dist.world
        self._measure()
        if self.progress is not None:
            rate = self.eval_tokens / max(1e-9, time.time() - self.last_eval_t)
            self.progress.set_postfix(loss=f"{self.loss_sum / self.loss_count:.3f}", tok_s=f"{rate:,.0f}",
                                      refresh=False)
            self.progress.update(1)

    def _measure(self) -> None:
        if self.dist.world > 1 and self.steps_run % 10 and self.steps_run != FIRST_ESTIMATE_STEP:
            return
        sch = self.schedule
        sch.measure(self.global_step, self.steps_run, budget_clock() - self.clock0, self.s.steps_per_epoch)
        sch.total, sch.eval_every = self.dist.broadcast_object((sch.total, sch.eval_every))

    def _say_why_done(self) -> None:
        """The epoch cap ended a budgeted training well inside its budget: say so, and how to
        let the budget decide."""
        budget, cfg = self.schedule.budget, self.config
        left = budget.left()
        if budget.deadline is not None and left > 0.1 * cfg.max_minutes * 60:
            self.say(f"--epochs {cfg.epochs} reached with {left / 60:.1f} of the {cfg.max_minutes:g} minutes left: "
                     "the epoch cap ended the training, not --max-minutes; raise --epochs to train longer")

    def _evaluate(self, epoch_end: bool = False, final: bool = False) -> str | None:
        """Validation loss, best weights, a metrics row, the plot and the state; returns
        "early-stopping" when patience has run out."""
        s, t = self.s, budget_clock()
        if final and self.loss_count == 0:  # nothing trained since the last evaluation
            self._save_state()
            return None
        train_loss = self.dist.mean(self.loss_sum / max(1, self.loss_count))
        kept = scored(s.model, s.average)
        val_loss = evaluate_loss(kept, s.val_w, self.config.batch_size, self.dist.device, s.autocast) \
            if self.has_val else None
        self.schedule.evaluation_took(budget_clock() - t)
        score = val_loss if val_loss is not None else train_loss
        improved = self.loss_count > 0 and score < self.best_loss
        epoch = self.epoch - 1 if epoch_end else self.epoch
        if improved:
            self.best_loss, self.best_epoch, self.bad_evals = score, epoch, 0
            if self.dist.is_main:
                rundir.save_weights(kept, self.run_dir / rundir.BEST)
        else:
            self.bad_evals += 1
        seconds = max(1e-9, time.time() - self.last_eval_t)
        self.metrics.append({"epoch": epoch, "step": self.global_step,
                             "progress": self.global_step / s.steps_per_epoch, "train_loss": train_loss,
                             "val_loss": val_loss, "lr": s.optimizer.param_groups[0]["lr"],
                             "tokens_per_s": self.eval_tokens / seconds,
                             "elapsed_s": self.elapsed_before + time.time() - self.t0, "best": improved})
        self.loss_sum, self.loss_count, self.eval_tokens, self.last_eval_t = 0.0, 0, 0, time.time()
        if self.dist.is_main:  # the state last: a crash before it replays these steps, rows included
            rundir.write_metrics(self.metrics, self.run_dir / rundir.METRICS)
            with rundir.atomic_path(self.run_dir / rundir.LOSS_PLOT, suffix=".png") as tmp:
                plot_loss(self.metrics, tmp)
            self._save_state()
            self._report(epoch_end, train_loss, val_loss, improved)
        s.model.train()
        return self._early_stop() if not final else None

    def _report(self, epoch_end: bool, train_loss: float, val_loss, improved: bool) -> None:
        where = f"epoch {self.epoch - 1}/{self.config.epochs}" if epoch_end else \
            f"epoch {self.epoch}, step {self.step}/{self.s.steps_per_epoch}"
        vl = "-" if val_loss is None else f"{val_loss:.4f}"
        self.say(f"{where}: train {train_loss:.4f}  val {vl}  {self.metrics[-1]['tokens_per_s']:,.0f} tok/s"
                 f"{'  (best)' if improved else ''}")

    def _early_stop(self) -> str | None:
        if self.config.patience and self.bad_evals >= self.config.patience and self.has_val:
            self.say(f"early stopping: no validation improvement in {self.config.patience} evaluations")
            return "early-stopping"
        return None

    def _save_state(self) -> None:
        rundir.save_state(self.snapshot(), self.run_dir / rundir.STATE)
        self.last_checkpoint = time.time()

    def _close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None


def _progress(total: int, initial: int, epoch: int, epochs: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"epoch {epoch}/{epochs}", unit="step",
                leave=False, dynamic_ncols=True, file=sys.stderr)
