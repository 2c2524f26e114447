"""Training that never loses work: atomic checkpoints, exact resume, Ctrl-C saves.

``train(source, run_dir, config)`` prepares the data (cached), then trains epoch by epoch.
An epoch's window order is a pure function of (seed, epoch, rank), and the state records
the step reached inside the epoch, so resuming from any checkpoint replays exactly what an
uninterrupted run would have done.
"""
from __future__ import annotations

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

from . import models, representations, rundir
from .config import Config, preset
from .dataset import PreparedData, TokenWindows, prepare, tempo_tables, transpose_tables
from .distributed import Dist
from .errors import CadenzaError
from .plots import plot_loss

N_PRIMERS = 64
MAX_EVAL_WINDOWS = 512


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


def lr_factor(step: int, total: int, config: Config) -> float:
    """Linear warmup, then cosine decay to 10% (or constant)."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant" or total <= config.warmup_steps:
        return 1.0
    progress = min(1.0, (step - config.warmup_steps) / max(1, total - config.warmup_steps))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def sequence_loss(model, x, y, every_position: bool) -> torch.Tensor:
    logits, _ = model(x, last_only=not every_position)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))


@torch.no_grad()
def evaluate_loss(model, windows: TokenWindows, batch_size: int, device, autocast) -> float | None:
    """Mean cross-entropy per target token on deterministic held-out windows."""
    starts = windows.eval_starts(MAX_EVAL_WINDOWS)
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


def _check_config(config: Config) -> None:
    if config.seq_len < 2 or config.batch_size < 1 or config.epochs < 1:
        raise CadenzaError("seq-len must be >= 2, batch-size >= 1 and epochs >= 1")
    if not 0 <= config.val_fraction < 1:
        raise CadenzaError("val-fraction must be in [0, 1)")
    if not 0 < config.lr < math.inf:
        raise CadenzaError(f"the learning rate must be a positive number, got {config.lr}")
    if not 0 <= config.seed < 2**63:
        raise CadenzaError(f"--seed must be in [0, 2**63), got {config.seed}")
    for name in ("transpose", "tempo_stretch", "patience", "steps_per_epoch", "threads"):
        if (getattr(config, name) or 0) < 0:
            raise CadenzaError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(config, name)}")
    if config.max_minutes is not None and not 0 < config.max_minutes <= math.inf:
        raise CadenzaError(f"--max-minutes must be positive, got {config.max_minutes}")
    if not 0 <= config.checkpoint_minutes <= math.inf:
        raise CadenzaError(f"--checkpoint-minutes must be >= 0, got {config.checkpoint_minutes}")


def _save_primers(data: PreparedData, seq_len: int, path: Path, seed: int) -> None:
    tokens = data.tokens("train")
    n = max(0, len(tokens) - seq_len)
    if n == 0:
        primers = np.asarray(tokens, dtype=np.int64)[None, :]
    else:
        starts = np.random.default_rng(seed).integers(0, n, size=N_PRIMERS)
        primers = np.asarray(tokens[starts[:, None] + np.arange(seq_len)], dtype=np.int64)
    with rundir.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, primers)


def train(source: str | None, run_dir: str | Path, config: Config | None = None, resume: bool = False,
          overrides: dict | None = None, quiet: bool = False, workers: int | None = None,
          device: str | None = None, log=None) -> TrainResult:
    """Train a composer on SOURCE into RUN_DIR (see the module docstring).

    A new run uses ``config`` (default: the ``base`` preset). ``resume`` continues the run
    saved in RUN_DIR with its own configuration; ``overrides`` (e.g. ``epochs``,
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
    dist = Dist.from_env(device)
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    say = log if dist.is_main else (lambda msg: None)
    run_dir = Path(run_dir)
    lock = rundir.RunLock(run_dir)
    created, finished = False, False
    if dist.is_main:
        if resume:
            if not (run_dir / rundir.STATE).exists():
                raise CadenzaError(f"nothing to resume in {run_dir}: no {rundir.STATE}")
            config = Config.load(run_dir / rundir.CONFIG)
        elif (run_dir / rundir.STATE).exists():
            raise CadenzaError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --run-dir")
        else:
            config = config or preset("base")
        config = config.replace(**(overrides or {}))
        source = source or config.source or "bach"
        config = config.replace(source=str(source))
        created = not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    try:
        config, source = dist.broadcast_object((config, source))
        _check_config(config)
        result = _train_locked(source, run_dir, config, resume, quiet, workers, dist, say)
        finished = True
        return result
    except MemoryError:
        raise CadenzaError("out of memory: lower --batch-size or --seq-len, or use a smaller --preset") from None
    except OSError as exc:  # disk full, permissions ...: every write is atomic, so say so
        name = re.sub(r"(^|/)\.([^/]+)\.tmp\d+$", r"\1\2", str(exc.filename or ""))
        raise CadenzaError(f"training stopped: {exc.strerror or exc}{': ' + name if name else ''}; the last "
                           f"checkpoint in {run_dir} is intact: fix this, then continue with --resume") from None
    finally:
        lock.release()
        dist.close()
        if created and not finished and not (run_dir / rundir.STATE).exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # a failed start leaves nothing behind


def _train_locked(source, run_dir: Path, config: Config, resume: bool, quiet: bool, workers, dist, say) -> TrainResult:
    torch.manual_seed(config.seed)
    if config.threads:
        # one thread per process avoids OpenMP spin-waiting when the cores are shared
        torch.set_num_threads(config.threads)
    data = None
    if dist.is_main:
        data = prepare(source, config.representation, config.representation_options, config.val_fraction,
                       config.seed, workers, log=say, progress_bar=not quiet)
        for line in data.summary.lines():
            say(line)
    dist.barrier()
    if data is None:  # other ranks: the cache is ready now
        data = prepare(source, config.representation, config.representation_options, config.val_fraction,
                       config.seed, workers, log=None)
    rep = data.representation()
    model = models.create(config.model, rep.vocab_size, config.model_options).to(dist.device)
    every_position = getattr(model, "trains_every_position", True)
    optimizer = make_optimizer(model, config)
    state = rundir.load_state(run_dir / rundir.STATE) if resume else None
    if state is not None:
        if state.get("data_key") != data.key:
            raise CadenzaError(f"the data changed since {run_dir} was trained (prepared-data key "
                               f"{state.get('data_key')} vs {data.key}); train a new run instead of resuming")
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CadenzaError(f"{run_dir / rundir.STATE} does not match this run's model: {str(exc)[:200]}") from None
    if dist.is_main and not resume:
        (run_dir / rundir.CONFIG).write_text(config.to_json())
        tok_tmp = run_dir / (rundir.TOKENIZER + ".tmp")
        shutil.rmtree(tok_tmp, ignore_errors=True)
        representations.save(rep, tok_tmp)
        shutil.rmtree(run_dir / rundir.TOKENIZER, ignore_errors=True)
        os.replace(tok_tmp, run_dir / rundir.TOKENIZER)
        _save_primers(data, config.seq_len, run_dir / rundir.PRIMERS, config.seed)

    train_w = TokenWindows(data.tokens("train"), config.seq_len, every_position,
                           transpose_tables(rep, config.transpose), tempo_tables(rep, config.tempo_stretch))
    if dist.is_main and config.tempo_stretch and train_w.tempo_tables is None:
        say(f"tempo stretch is off: the {config.representation} tokens have no tempo tokens to move")
    val_w = TokenWindows(data.tokens("val"), config.seq_len, every_position)
    if train_w.n_starts <= 0:
        raise CadenzaError(f"the training split has {len(train_w.tokens)} tokens, fewer than one window of "
                           f"{config.seq_len + 1}; use a smaller --seq-len or more music")
    has_val = val_w.n_starts > 0
    if dist.is_main and not has_val and data.meta["splits"]["val"]["pieces"]:
        say(f"validation split too short for one window of {config.seq_len + 1} tokens: best weights by training loss")

    steps_per_epoch = config.steps_per_epoch or math.ceil(
        train_w.windows_per_epoch(not every_position) / (config.batch_size * dist.world))
    total_steps = steps_per_epoch * config.epochs
    device_type = dist.device.type
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device_type == "cuda" else \
        (lambda: torch.autocast("cpu", enabled=False))
    train_model = dist.wrap(torch.compile(model) if config.compile else model)

    st = state or {}
    epoch, step_in_epoch = st.get("epoch", 1), st.get("step", 0)
    best_loss, best_epoch = st.get("best_loss", math.inf), st.get("best_epoch", 0)
    bad_epochs, elapsed_before = st.get("bad_epochs", 0), st.get("elapsed", 0.0)
    loss_sum, loss_count, tokens_seen = st.get("loss_sum", 0.0), st.get("loss_count", 0), st.get("tokens", 0)
    if "torch_rng" in st:
        torch.set_rng_state(st["torch_rng"])
    metrics = rundir.read_metrics(run_dir / rundir.METRICS) if resume else []
    metrics = [m for m in metrics if m["epoch"] < epoch]

    def snapshot(step: int) -> dict:
        return {"format": 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": epoch, "step": step, "best_loss": best_loss, "best_epoch": best_epoch,
                "bad_epochs": bad_epochs, "elapsed": elapsed_before + (time.time() - t0),
                "loss_sum": loss_sum, "loss_count": loss_count, "tokens": tokens_seen,
                "torch_rng": torch.get_rng_state(), "data_key": data.key}

    t0 = time.time()
    last_checkpoint = time.time()
    stopped = "done"
    progress = None
    next_step = step_in_epoch
    try:
        while epoch <= config.epochs:
            rng = np.random.default_rng([config.seed, epoch, dist.rank])
            starts = train_w.epoch_starts(rng, all_windows=not every_position)
            per_rank = steps_per_epoch * config.batch_size
            starts = np.resize(starts, per_rank) if len(starts) < per_rank else starts[:per_rank]
            model.train()
            if dist.is_main and not quiet:
                progress = _progress(steps_per_epoch, step_in_epoch, epoch, config.epochs)
            epoch_t0, epoch_tokens = time.time(), 0
            for step in range(step_in_epoch, steps_per_epoch):
                batch_rng = np.random.default_rng([config.seed, epoch, dist.rank, step])
                x, y = train_w.batch(starts[step * config.batch_size:(step + 1) * config.batch_size], batch_rng)
                x, y = x.to(dist.device), y.to(dist.device)
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * lr_factor((epoch - 1) * steps_per_epoch + step, total_steps, config)
                with autocast():
                    loss = sequence_loss(train_model, x, y, every_position)
                if not torch.isfinite(loss):
                    raise CadenzaError(f"the training loss became {loss.item()} at epoch {epoch}, step {step}; "
                                       f"lower --lr (now {config.lr})")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                loss_sum += loss.item()
                loss_count += 1
                next_step = step + 1
                epoch_tokens += y.numel() * dist.world
                tokens_seen += y.numel() * dist.world
                if progress is not None:
                    rate = epoch_tokens / max(1e-9, time.time() - epoch_t0)
                    progress.set_postfix(loss=f"{loss_sum / loss_count:.3f}", tok_s=f"{rate:,.0f}", refresh=False)
                    progress.update(1)
                if dist.is_main and time.time() - last_checkpoint > config.checkpoint_minutes * 60:
                    rundir.save_state(snapshot(step + 1), run_dir / rundir.STATE)
                    last_checkpoint = time.time()
                if config.max_minutes and dist.agree(elapsed_before + time.time() - t0 > config.max_minutes * 60):
                    stopped = "time-limit"
                    break
            if progress is not None:
                progress.close()
                progress = None
            if stopped == "time-limit" and next_step < steps_per_epoch:
                say(f"time limit of {config.max_minutes} minutes reached in epoch {epoch}")
                if dist.is_main:
                    rundir.save_state(snapshot(next_step), run_dir / rundir.STATE)
                break

            train_seconds = time.time() - epoch_t0
            train_loss = dist.mean(loss_sum / max(1, loss_count))
            val_loss = evaluate_loss(model, val_w, config.batch_size, dist.device, autocast) if has_val else None
            score = val_loss if val_loss is not None else train_loss
            improved = score < best_loss
            if improved:
                best_loss, best_epoch, bad_epochs = score, epoch, 0
                if dist.is_main:
                    rundir.save_weights(model, run_dir / rundir.BEST)
            else:
                bad_epochs += 1
            metrics.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                            "lr": optimizer.param_groups[0]["lr"], "tokens_per_s": epoch_tokens / max(1e-9, train_seconds),
                            "elapsed_s": elapsed_before + time.time() - t0, "best": improved})
            loss_sum, loss_count, step_in_epoch, next_step = 0.0, 0, 0, 0
            epoch += 1
            if dist.is_main:  # the state last: a crash before it replays this epoch, rows included
                rundir.write_metrics(metrics, run_dir / rundir.METRICS)
                with rundir.atomic_path(run_dir / rundir.LOSS_PLOT, suffix=".png") as tmp:
                    plot_loss(metrics, tmp)
                rundir.save_state(snapshot(0), run_dir / rundir.STATE)
                last_checkpoint = time.time()
                vl = "-" if val_loss is None else f"{val_loss:.4f}"
                say(f"epoch {epoch - 1}/{config.epochs}: train {train_loss:.4f}  val {vl}  "
                    f"{metrics[-1]['tokens_per_s']:,.0f} tok/s{'  (best)' if improved else ''}")
            if config.patience and bad_epochs >= config.patience and has_val:
                stopped = "early-stopping"
                say(f"early stopping: no validation improvement for {config.patience} epochs")
                break
            if stopped == "time-limit":
                say(f"time limit of {config.max_minutes} minutes reached")
                break
    except KeyboardInterrupt:
        if progress is not None:
            progress.close()
        stopped = "interrupted"
        if dist.is_main:
            rundir.save_state(snapshot(next_step), run_dir / rundir.STATE)
            say(f"interrupted: state saved in {run_dir / rundir.STATE}; continue with --resume")
    if dist.is_main and not (run_dir / rundir.BEST).exists():
        rundir.save_weights(model, run_dir / rundir.BEST)  # stopped before the first epoch ended
    return TrainResult(run_dir, epoch - 1, best_loss, best_epoch, stopped, metrics)


def _progress(total: int, initial: int, epoch: int, epochs: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"epoch {epoch}/{epochs}", unit="step",
                leave=False, dynamic_ncols=True, file=sys.stderr)
