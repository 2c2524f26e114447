"""Generation: one model step per new token (LSTM state / transformer KV cache), batched
across pieces, masked by the representation's grammar so every output decodes."""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from symusic import Score

from .corpus import SkipFile, read_piano_score
from .errors import CadenzaError
from .rundir import Run, load_run
from .sampling import check_sampling_args, sample_next

LENGTH_UNITS = ("tokens", "bars", "seconds")
MAX_TOKENS_FOR_TIMED = 20000
MAX_NUM, MAX_BATCH_TOKENS = 4096, 2**26
CHUNK = 64


@dataclass
class Generated:
    """Token ids of each piece: the context it started from and the new tokens."""
    context: list[np.ndarray]
    new: list[np.ndarray]
    masked_mass: float = 0.0
    from_primer: bool = False
    scores: list[Score] = field(default_factory=list)


def _context(run: Run, num: int, primer: str | Path | None, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    seq_len = run.config.seq_len
    if primer is not None:
        try:
            score = read_piano_score(Path(primer))
        except SkipFile as exc:
            raise CadenzaError(f"cannot use primer {primer}: {exc}") from None
        ids = run.representation.encode(score)
        if run.representation.bos_id is not None:
            ids = np.concatenate([[run.representation.bos_id], ids])
        if len(ids) == 0:
            raise CadenzaError(f"primer {primer} has no tokens in this run's vocabulary")
        return np.repeat(ids[None, :].astype(np.int64), num, axis=0), True
    if run.primers is None or run.primers.size == 0:
        raise CadenzaError(f"{run.directory} has no training windows to start from; pass --primer FILE.mid")
    rows = rng.integers(0, len(run.primers), size=num)
    return run.primers[rows, -seq_len:].astype(np.int64), False


def _reached(rep, ids: np.ndarray, length: float, unit: str) -> bool:
    score = rep.decode(ids)
    if unit == "seconds":
        return score.to("second").end() >= length
    return score_bars(score) >= length


def score_bars(score: Score) -> float:
    ts = score.time_signatures
    num, den = (ts[0].numerator, ts[0].denominator) if len(ts) else (4, 4)
    return score.end() / (score.tpq * 4 * num / den)


def _trim(score: Score, length: float, unit: str) -> Score:
    if unit == "seconds":
        secs = score.to("second")
        return secs.clip(0, secs.start() + length, clip_end=True).to("tick")
    ts = score.time_signatures
    num, den = (ts[0].numerator, ts[0].denominator) if len(ts) else (4, 4)
    return score.clip(0, int(length * score.tpq * 4 * num / den), clip_end=True)


@contextmanager
def _one_step_kernels(device: torch.device):
    """oneDNN's LSTM costs milliseconds per call whatever its length: for one-token steps on
    the CPU PyTorch's plain kernels are several times faster."""
    if device.type != "cpu":
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        with torch.backends.mkldnn.flags(enabled=False):
            yield


@torch.no_grad()
def generate(run: Run | str | Path, num: int = 1, length: float | None = None, unit: str = "tokens",
             temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
             seed: int | None = None, primer: str | Path | None = None, constrained: bool = True) -> Generated:
    """Generate ``num`` pieces from a trained run (defaults from the run's configuration)."""
    run = run if isinstance(run, Run) else load_run(run)
    cfg, rep, model = run.config, run.representation, run.model
    temperature = cfg.gen_temperature if temperature is None else temperature
    top_k = cfg.gen_top_k if top_k is None else top_k
    top_p = cfg.gen_top_p if top_p is None else top_p
    length = cfg.gen_length if length is None else length
    check_sampling_args(temperature, top_k, top_p)
    if unit not in LENGTH_UNITS:
        raise CadenzaError(f"length unit must be one of {', '.join(LENGTH_UNITS)}")
    if not 0 < length < math.inf or num < 1:
        raise CadenzaError("--length and --num must be positive (and finite)")
    if not math.isfinite(temperature):
        raise CadenzaError(f"--temperature must be a finite number >= 0, got {temperature}")
    if seed is not None and seed < 0:
        raise CadenzaError(f"--seed must be >= 0, got {seed}")
    if unit == "tokens" and length < 1:
        raise CadenzaError(f"--length {length:g} is less than one token")
    if num > MAX_NUM or num * (length if unit == "tokens" else MAX_TOKENS_FOR_TIMED) > MAX_BATCH_TOKENS:
        raise CadenzaError(f"--num {num} x --length {length:g} {unit} is too much for one call "
                           f"(at most {MAX_NUM} pieces and {MAX_BATCH_TOKENS:,} tokens in all)")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    context, from_primer = _context(run, num, primer, rng)
    device = next(model.parameters()).device
    grammar = rep.grammar() if constrained else None
    states = [grammar.start(list(c)) for c in context] if grammar else None

    max_new = int(length) if unit == "tokens" else MAX_TOKENS_FOR_TIMED
    max_len = getattr(model, "max_len", None)
    window = context[:, -min(context.shape[1], (max_len or 10**9) - 1):] if max_len else context
    logits, state = model(torch.from_numpy(window).to(device), last_only=True)
    cached = window.shape[1]
    new = np.zeros((num, max_new), dtype=np.int64)
    masked, done = 0.0, 0
    for t in range(max_new):
        allowed = None
        if grammar is not None:
            allowed = torch.from_numpy(np.stack([grammar.allowed(s) for s in states])).to(device)
        ids, mass = sample_next(logits[:, -1], temperature, top_k, top_p, allowed, gen)
        masked += mass.sum().item()
        new[:, t] = ids.cpu().numpy()
        done = t + 1
        if grammar is not None:
            states = [grammar.advance(s, int(i)) for s, i in zip(states, new[:, t])]
        if unit != "tokens" and done % CHUNK == 0 and all(_reached(rep, new[k, :done], length, unit) for k in range(num)):
            break
        if max_len and cached + 1 >= max_len:  # the KV cache is full: restart it on a recent window
            recent = np.concatenate([context, new[:, :done]], axis=1)[:, -cfg.seq_len:]
            logits, state = model(torch.from_numpy(recent).to(device), last_only=True)
            cached = recent.shape[1]
        else:
            with _one_step_kernels(device):
                logits, state = model(ids[:, None].to(device), state=state)
            cached += 1
    return Generated(list(context), [new[k, :done] for k in range(num)], masked / max(1, num * done), from_primer)


def to_scores(run: Run, result: Generated, continuation_only: bool = False, length: float | None = None,
              unit: str = "tokens") -> list[Score]:
    """Decode generated pieces; a primer is kept in front unless ``continuation_only``."""
    rep, scores = run.representation, []
    for ctx, new in zip(result.context, result.new):
        keep_primer = result.from_primer and not continuation_only
        ids = np.concatenate([ctx, new]) if keep_primer else new
        ids = ids[ids != rep.bos_id] if rep.bos_id is not None else ids
        score = rep.decode(ids)
        if unit != "tokens" and length and not keep_primer:
            score = _trim(score, length, unit)
        scores.append(score)
    return scores


def output_paths(out: str | Path, num: int) -> list[Path]:
    out = Path(out)
    if not out.parent.exists() and str(out.parent) not in ("", "."):
        raise CadenzaError(f"output folder {out.parent} does not exist")
    if out.suffix.lower() not in (".mid", ".midi"):
        raise CadenzaError(f"output file must end in .mid or .midi: {out}")
    if num == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{k}{out.suffix}") for k in range(1, num + 1)]
