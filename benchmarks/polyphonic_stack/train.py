"""Training (TBPTT over whole pieces, state carried across chunks) and exact evaluation."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .dynamic import DynamicConfig, dynamic_log_probs
from .frames import Batch, transpose, transpose_range
from .model import FrameModel


@dataclass
class TrainConfig:
    batch_size: int = 16  # pieces per batch (grouped by length)
    chunk: int = 100  # time steps per truncated-BPTT chunk; LSTM state carried across chunks
    lr: float = 2e-3
    weight_decay: float = 0.01
    max_shift: int = 0  # transposition augmentation: random shift in [-max_shift, max_shift]
    patience: int = 6  # validations without improvement before stopping
    lr_patience: int = 1  # validations without improvement before halving the learning rate
    ema: float = 0.0  # >0: validate/keep this exponential moving average (per step) of the weights
    eval_interval_s: float = 120.0  # validate at least this often (and after every epoch)
    clip: float = 1.0
    max_epochs: int = 0  # >0: stop each member after this many epochs
    member_s: float = 0.0  # >0: train each member for at most this many CPU seconds
    members: int = 1  # ensemble: train up to this many seeds while the budget allows (fit_ensemble)

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items())


def run_batch(model: FrameModel, batch: Batch, chunk: int, opt=None, clip: float = 1.0,
              after_step=None, per_step: torch.Tensor | None = None) -> float:
    """Sum of -log p over the batch's tokens; one optimiser step per chunk if opt is given.

    per_step (B, T), if given, accumulates each step's log p(frame_t | frames_<t).
    """
    T = batch.frames.shape[1]
    state, total = None, 0.0
    bounds = torch.searchsorted(batch.t, torch.arange(0, T + chunk, chunk).clamp(max=T))
    for i, c0 in enumerate(range(0, T, chunk)):
        c1 = min(T, c0 + chunk)
        hfeat, state = model.run_steps(batch.prev[:, c0:c1], batch.start[:, c0:c1], state, c0, batch.shift)
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        b, t, y = batch.b[lo:hi], batch.t[lo:hi], batch.y[lo:hi]
        logp = model.token_log_probs(hfeat[b, t - c0], batch.frames[b, t], batch.prev[b, t], y)
        loss = -logp.sum()
        if per_step is not None:
            per_step.index_put_((b, t), logp.detach().to(per_step.dtype), accumulate=True)
        if opt is not None:
            n_steps = (batch.lengths - c0).clamp(0, c1 - c0).sum()
            opt.zero_grad(set_to_none=True)
            (loss / n_steps).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            if after_step is not None:
                after_step()
            state = tuple(s.detach() for s in state)
        total += float(loss.detach())
    return total


def batches(rolls: list[np.ndarray], batch_size: int, rng: np.random.Generator | None = None):
    """Group piece indices of similar length (jittered when rng is given) into batches."""
    lengths = np.array([len(r) for r in rolls], dtype=float)
    if rng is not None:
        lengths = lengths * rng.uniform(0.8, 1.25, len(rolls))
    order = np.argsort(lengths)
    groups = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(groups)
    return groups


@torch.no_grad()
def evaluate(model: FrameModel, rolls: list[np.ndarray], batch_size: int = 32, chunk: int = 1000) -> float:
    """Exact NLL in nats per time step: sum over pieces of -log p(frame_t | frames_<t) / total steps."""
    was_training = model.training
    model.eval()
    rolls = model.orient(rolls)
    total = sum(run_batch(model, Batch([rolls[i] for i in g]), chunk) for g in batches(rolls, batch_size))
    model.train(was_training)
    return total / sum(len(r) for r in rolls)


@torch.no_grad()
def step_log_probs(model: FrameModel, rolls: list[np.ndarray], batch_size: int = 32,
                   chunk: int = 1000) -> torch.Tensor:
    """log p(frame_t | frames_<t) for every step of every piece, pieces concatenated in order."""
    was_training = model.training
    model.eval()
    out = [None] * len(rolls)
    rolls = model.orient(rolls)
    for g in batches(rolls, batch_size):
        batch = Batch([rolls[i] for i in g])
        per_step = torch.zeros(batch.frames.shape[:2], dtype=torch.float64)
        run_batch(model, batch, chunk, per_step=per_step)
        for row, i in enumerate(g):
            out[i] = per_step[row, : len(rolls[i])]
    model.train(was_training)
    return torch.cat(out)


def mixture_nll(member_log_probs: list[torch.Tensor]) -> float:
    """NLL per step of the equal-weight mixture p(frame_t | frames_<t) = mean_k p_k(...).

    Each p_k is normalised over the valid frames, so the mixture is too.
    """
    lp = torch.stack(member_log_probs)
    return float(-(torch.logsumexp(lp, 0) - math.log(len(member_log_probs))).mean())


def augment(rolls: list[np.ndarray], max_shift: int, rng: np.random.Generator):
    """Each piece shifted by a random amount within [-max_shift, max_shift] that keeps all
    its notes on the keyboard -> (rolls, shifts)."""
    shifts = [0] * len(rolls)
    if max_shift > 0:
        for i, roll in enumerate(rolls):
            lo, hi = transpose_range(roll, max_shift)
            shifts[i] = int(rng.integers(lo, hi + 1))
    return [transpose(r, k) for r, k in zip(rolls, shifts)], shifts


def fit(model: FrameModel, train: list[np.ndarray], valid: list[np.ndarray], cfg: TrainConfig,
        budget_s: float, reserve_s: float = 0.0, seed: int = 0, log=print,
        clock=time.process_time) -> dict:
    """Train until early stopping or the time budget runs out.

    The budget covers validations and leaves reserve_s seconds for whatever the caller
    does after training (e.g. evaluating on test). Keeps and restores
    the weights with the best validation NLL. The budget is measured with `clock`:
    by default this process's CPU time, so that other programs sharing the CPU do not
    eat into it (with several torch threads CPU time runs faster than wall time).
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    train = model.orient(train)  # valid is oriented by evaluate()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=cfg.lr_patience)
    params = list(model.parameters())
    ema = [p.detach().clone() for p in params] if cfg.ema else None

    def swap_ema():
        if ema is not None:
            for p, e in zip(params, ema):
                tmp = p.detach().clone()
                p.data.copy_(e)
                e.copy_(tmp)

    def update_ema():
        if ema is not None:
            st["updates"] += 1
            decay = min(cfg.ema, (1 + st["updates"]) / (10 + st["updates"]))  # warm-up
            with torch.no_grad():
                for p, e in zip(params, ema):
                    e.lerp_(p, 1 - decay)

    t0 = clock()
    deadline = t0 + budget_s
    st = {"best": math.inf, "state": None, "bad": 0, "cost": 0.0, "last": t0, "history": [],
          "updates": 0, "batch_cost": 0.0}

    def validate(note: str) -> bool:
        """Validate, keep the best weights; True when early stopping says stop."""
        e0 = clock()
        swap_ema()
        v = evaluate(model, valid)
        st["last"] = now = clock()
        st["cost"] = max(st["cost"], now - e0)
        sched.step(v)
        st["history"].append((round(now - t0, 1), v))
        log(f"  {note} valid {v:.3f} lr {opt.param_groups[0]['lr']:.2g} [{now - t0:.0f}s]")
        if v < st["best"] - 1e-4:
            st.update(best=v, state=copy.deepcopy(model.state_dict()), bad=0)
        else:
            st["bad"] += 1
        swap_ema()
        return st["bad"] >= cfg.patience

    epoch, stop, dirty = 0, False, False
    while not stop:
        epoch += 1
        train_nll, train_steps = 0.0, 0
        rolls, shifts = augment(train, cfg.max_shift, rng)
        groups = batches(rolls, cfg.batch_size, rng)
        for gi, group in enumerate(groups):
            if clock() + st["batch_cost"] + 1.5 * st["cost"] + reserve_s > deadline:
                stop = True
                break
            model.train()
            b0 = clock()
            batch = Batch([rolls[i] for i in group], [shifts[i] for i in group])
            train_nll += run_batch(model, batch, cfg.chunk, opt, cfg.clip, update_ema)
            st["batch_cost"] = max(st["batch_cost"], clock() - b0)
            train_steps += int(batch.lengths.sum())
            dirty = True
            if gi == len(groups) - 1 or clock() - st["last"] > cfg.eval_interval_s:
                note = f"epoch {epoch} ({gi + 1}/{len(groups)}) train {train_nll / train_steps:.3f}"
                dirty = False
                if validate(note) or epoch == cfg.max_epochs:
                    stop = True
                    break
    if dirty or st["state"] is None:  # out of time mid-epoch: validate the latest weights too
        validate(f"epoch {epoch} (time up)")
    model.load_state_dict(st["state"])
    return {"valid": st["best"], "epochs": epoch, "seconds": clock() - t0,
            "history": st["history"]}


def log_probs(model: FrameModel, rolls: list[np.ndarray], lr: float = 0.0,
              dynamic: DynamicConfig | None = None) -> torch.Tensor:
    """step_log_probs, or with lr > 0 dynamic_log_probs with `dynamic`'s segment and decay."""
    if lr > 0:
        dynamic = dynamic or DynamicConfig()
        return dynamic_log_probs(model, rolls, lr, dynamic.segment, dynamic.decay)
    return step_log_probs(model, rolls)


def per_step_cost(model: FrameModel, rolls: list[np.ndarray], lr: float, dynamic: DynamicConfig,
                  clock=time.process_time, steps: int = 1500) -> float:
    """CPU seconds per time step of log_probs(model, rolls, lr, dynamic), measured on the
    first pieces covering about `steps` steps."""
    sample, n = [], 0
    for roll in rolls:
        if n >= steps:
            break
        sample.append(roll)
        n += len(roll)
    c0 = clock()
    log_probs(model, sample, lr, dynamic)
    return (clock() - c0) / n


def fit_ensemble(make_model, train: list[np.ndarray], valid: list[np.ndarray], cfg: TrainConfig,
                 budget_s: float, test_steps: int = 0, dynamic: DynamicConfig | None = None,
                 seed: int = 0, log=print, clock=time.process_time) -> dict:
    """Train members make_model(0), make_model(1), ... (seeds seed, seed+1, ...) while the
    budget allows one more, keeping a member only if the equal-weight mixture's valid NLL
    improves.

    With `dynamic`, members are scored by dynamic evaluation; its learning rate is chosen
    among dynamic.lrs on valid with the first member. The budget keeps time to score
    every kept member on test_steps test steps, with and without dynamic evaluation.
    Returns {"models", "valid", "valid_static", "lr", "member_valid", "member_valid_static",
    "seconds"}.
    """
    dynamic = dynamic or DynamicConfig()
    t0 = clock()
    valid_steps = sum(len(r) for r in valid)
    probe = make_model(0)
    static_cost = per_step_cost(probe, valid, 0.0, dynamic, clock)
    dyn_cost = max(static_cost, per_step_cost(probe, valid, max(dynamic.lrs), dynamic, clock))
    tune = valid
    if dynamic.tune_steps:
        ends = np.cumsum([len(r) for r in valid])
        tune = valid[: int(np.searchsorted(ends, dynamic.tune_steps)) + 1]
    tune_steps = sum(len(r) for r in tune)
    models, valid_lps, static_lps, member_valid, member_static = [], [], [], [], []
    best, lr, train_cost = math.inf, None, 0.0
    while len(models) < cfg.members:
        k = len(models)
        trials = len(dynamic.lrs) if lr is None else 0
        # after training: choose lr (first member), score this member on valid, every member on test
        reserve = 1.25 * (dyn_cost * (trials * tune_steps + valid_steps + (k + 1) * test_steps)
                          + static_cost * (valid_steps + (k + 1) * test_steps))
        remaining = budget_s - (clock() - t0)
        if k and remaining < reserve + 0.6 * train_cost:
            break
        torch.manual_seed(seed + k)
        model = make_model(k)
        if cfg.members > 1:
            log(f" member {k + 1} (seed {seed + k}{', descending' if model.cfg.descending else ''})")
        res = fit(model, train, valid, cfg, min(remaining, cfg.member_s + reserve) if cfg.member_s else remaining,
                  reserve_s=reserve, seed=seed + k, log=log, clock=clock)
        static = step_log_probs(model, valid)
        if lr is None:  # choose the dynamic-evaluation learning rate on (the first pieces of) valid
            scores, tuned = {}, {}
            for cand in dynamic.lrs:
                tuned[cand] = static[:tune_steps] if cand == 0 else log_probs(model, tune, cand, dynamic)
                scores[cand] = float(-tuned[cand].mean())
                log(f"  dynamic evaluation lr {cand:g}: valid {scores[cand]:.3f}"
                    f"{'' if tune is valid else f' (first {tune_steps} steps)'}")
            lr = min(scores, key=scores.get)
        if k == 0 and tune is valid:
            lp = tuned[lr]  # already scored on all of valid
        else:
            lp = static if lr == 0 else log_probs(model, valid, lr, dynamic)
        train_cost = res["seconds"]
        mix = mixture_nll(valid_lps + [lp])
        if mix >= best:
            log(f" member {k + 1}: valid {float(-lp.mean()):.3f}; mixture would be {mix:.3f}, dropped")
            break
        models.append(model)
        valid_lps.append(lp)
        static_lps.append(static)
        member_valid.append(float(-lp.mean()))
        member_static.append(float(-static.mean()))
        best = mix
        log(f" member {k + 1}: valid {member_valid[-1]:.3f} ({res['valid']:.3f} static), "
            f"mixture of {k + 1}: {mix:.3f}")
    return {"models": models, "valid": best, "valid_static": mixture_nll(static_lps), "lr": lr,
            "member_valid": member_valid, "member_valid_static": member_static, "seconds": clock() - t0}


def score(models: list[FrameModel], rolls: list[np.ndarray], lr: float = 0.0,
          dynamic: DynamicConfig | None = None) -> float:
    """NLL per step of the equal-weight mixture of `models` on `rolls` (dynamic
    evaluation with learning rate lr when lr > 0)."""
    return mixture_nll([log_probs(m, rolls, lr, dynamic) for m in models])
