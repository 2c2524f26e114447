"""A run folder is untrusted input: every value read from it is checked before use.

Each check raises one ``CadenzaError`` naming the file and the field (``RUN/config.json:
seq_len must be an integer from 2 to 1048576, not -5``), so a damaged or hostile run is
one line, never a traceback, a hang or a model that fills memory. Used by
:mod:`cadenza.config` (config.json), :mod:`cadenza.rundir` (weights, primers, state,
metrics, token statistics) and :mod:`cadenza.data.representations` (tokenizer files); the same
config checks refuse a new training's options before it starts (:mod:`cadenza.training.trainer`). The
specs themselves are :class:`cadenza.spec.Spec`; a representation's options, a model's
and the sampling settings are declared beside the representation, the model and the
sampler.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import CadenzaError
from .files import read_json
from .spec import BIG, Spec

FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


def _at(path: Path | None) -> str:
    """What an error line starts with: the file, or nothing for values given directly (a new
    training's options: the command line names its flags, :func:`cadenza.cli._said`)."""
    return "" if path is None else f"{path}: "


def check_fields(data: dict, specs: dict[str, Spec], path: Path | None, prefix: str = "", known: bool = True) -> None:
    """Every key of ``data`` that ``specs`` names holds what its spec allows; with
    ``known`` every key must be in ``specs``."""
    if not isinstance(data, dict):
        raise CadenzaError(f"{_at(path)}{prefix.rstrip('.') or 'the file'} must be an object, not {type(data).__name__}")
    unknown = sorted(set(data) - set(specs)) if known else []
    if unknown:
        raise CadenzaError(f"{_at(path)}unknown key {prefix}{unknown[0]}" + (f" (and {len(unknown) - 1} more)"
                                                                         if len(unknown) > 1 else ""))
    for name, spec in specs.items():
        if name in data:
            spec.check(prefix + name, data[name], path)


# -- config.json ---------------------------------------------------------------------------
def config_specs() -> dict[str, Spec]:
    """Each field of a Config: what config.json may hold, and a new training's options."""
    from .models import NAMES as MODELS
    from .data.representations import NAMES as REPS
    from .generation.sampling import SPECS as SAMPLING

    return {
        "preset": Spec(str), "source": Spec(str, none=True), "init_from": Spec(str, none=True),
        "representation": Spec(set(REPS)), "representation_options": Spec(dict),
        "model": Spec(set(MODELS)), "model_options": Spec(dict),
        "seq_len": Spec(int, 2, 1 << 20), "val_fraction": Spec(float, 0, 1, hi_open=True),
        "transpose": Spec(int, 0, 127), "tempo_stretch": Spec(int, 0, 1024),
        "infill": Spec(float, 0, 1), "controls": Spec(float, 0, 1),
        "lookahead": Spec(float, 0, 1),
        "optimizer": Spec({"adamw", "rmsprop"}), "lr": Spec(float, 0, 1e6, lo_open=True),
        "weight_decay": Spec(float, 0, 1e6), "warmup_steps": Spec(int, 0, BIG),
        "warmup_fraction": Spec(float, 0, 1), "schedule": Spec({"cosine", "constant"}),
        "grad_clip": Spec(float, 0, 1e12), "ema": Spec(float, 0, 1, hi_open=True), "batch_size": Spec(int, 1, 1 << 20), "epochs": Spec(int, 1, BIG),
        "steps_per_epoch": Spec(int, 1, BIG, none=True), "patience": Spec(int, 0, BIG, none=True),
        "max_minutes": Spec(float, 0, math.inf, none=True, lo_open=True),
        "checkpoint_minutes": Spec(float, 0, math.inf), "seed": Spec(int, 0, 2**63, hi_open=True),
        "threads": Spec(int, 1, 4096, none=True), "compile": Spec(bool),
        "gen_length": Spec(int, 1, 1 << 30), "gen_form": Spec(str),
        **{f"gen_{name}": spec for name, spec in SAMPLING.items()},
    }


_BEAT_RES_BINS = 4096  # sum over ranges of (end - start) x resolution: the position tokens


def check_beat_res(beat_res, path: Path | None, field: str) -> None:
    """``[[start, end, resolution], ...]`` (or MidiTok's ``{"start_end": resolution}``) that
    makes at most ``_BEAT_RES_BINS`` positions."""
    ranges = None
    if isinstance(beat_res, dict):
        try:
            ranges = [[*map(int, k.split("_")), r] for k, r in beat_res.items()]
        except (ValueError, AttributeError):
            ranges = None
    elif isinstance(beat_res, list):
        ranges = beat_res
    good = isinstance(ranges, list) and 0 < len(ranges) <= 64 and all(
        isinstance(r, list) and len(r) == 3 and all(isinstance(v, int) and not isinstance(v, bool) for v in r)
        and 0 <= r[0] < r[1] <= 1024 and 1 <= r[2] <= 1024 for r in ranges)
    if not good or sum((b - a) * r for a, b, r in ranges) > _BEAT_RES_BINS:
        raise CadenzaError(f"{_at(path)}{field} must be ranges [start, end, resolution] of at most "
                           f"{_BEAT_RES_BINS} positions in all, not {str(beat_res)[:60]}")


def check_rep_options(name: str, options, path: Path | None, prefix: str = "representation_options.") -> None:
    """The options the representation ``name`` declares (its class's ``OPTIONS``), and a
    ``beat_res`` grid of a size cadenza builds."""
    from .data.representations import declared_options

    check_fields(options, declared_options(name), path, prefix)
    if options.get("beat_res") is not None:
        check_beat_res(options["beat_res"], path, prefix + "beat_res")


def check_config(data, path: Path | None) -> None:
    """config.json as read (``path``), or a new training's options (``path`` None): known
    keys, each of its type and range, the options its representation and model declare."""
    from .models import check_options, declared_options

    check_fields(data, config_specs(), path)
    check_rep_options(data.get("representation", "remi"), data.get("representation_options", {}), path)
    model = data.get("model", "lstm")
    options = data.get("model_options", {})
    check_fields(options, declared_options(model), path, "model_options.")
    try:
        check_options(model, options)
    except CadenzaError as exc:
        raise CadenzaError(f"{_at(path)}{exc}") from None


# -- the tokenizer ---------------------------------------------------------------------------
MIDITOK_CONFIG = {"num_velocities": Spec(int, 1, 127), "num_tempos": Spec(int, 1, 1024),
                  "pitch_range": Spec(list), "special_tokens": Spec(list)}


def check_miditok_file(path: Path) -> None:
    """The parts of MidiTok's tokenizer file that size its vocabulary, before MidiTok reads it."""
    data = read_json(path)
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise CadenzaError(f"{path}: config must be an object")
    check_fields(config, MIDITOK_CONFIG, path, "config.", known=False)
    for key in ("beat_res", "beat_res_rest"):
        if key in config:
            check_beat_res(config[key], path, f"config.{key}")
    pitches = config.get("pitch_range", [0, 127])
    if not (len(pitches) == 2 and all(isinstance(p, int) for p in pitches) and 0 <= pitches[0] <= pitches[1] <= 127):
        raise CadenzaError(f"{path}: config.pitch_range must be [low, high] within 0-127, not {str(pitches)[:60]}")
    if len(config.get("special_tokens", [])) > 64:
        raise CadenzaError(f"{path}: config.special_tokens holds more than 64 tokens")


# -- primers, weights, state, metrics, token statistics ------------------------------------
def check_primers(primers: np.ndarray, vocab_size: int, path: Path) -> np.ndarray:
    """Training windows: a 2-D integer array of token ids within the vocabulary."""
    if primers.ndim != 2:
        raise CadenzaError(f"{path}: the primers must be a 2-D array [windows, tokens], not {primers.ndim}-D")
    if primers.dtype.kind not in "iu":
        raise CadenzaError(f"{path}: the primers must be integer token ids, not {primers.dtype}")
    if primers.size and (primers.min() < 0 or primers.max() >= vocab_size):
        raise CadenzaError(f"{path}: the primers hold token ids outside the vocabulary of {vocab_size}")
    return primers


def check_weights_file(path: Path) -> None:
    """Every tensor in a safetensors file is floating point, but BatchNorm's int64 step counters
    (read from its header alone)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            dtypes = {name: f.get_slice(name).get_dtype() for name in f.keys()}
    except Exception as exc:  # safetensors raises its own types for damaged headers
        raise CadenzaError(f"cannot read the weights {path}: {str(exc).splitlines()[0][:200]}") from None
    # BatchNorm's step counter (the seed network's) is the one integer buffer a model may carry
    bad = [name for name, dtype in dtypes.items()
           if dtype not in FLOAT_DTYPES and not (name.endswith(".num_batches_tracked") and dtype == "I64")]
    if bad:
        raise CadenzaError(f"{path}: tensor {bad[0]} is {dtypes[bad[0]]}, not floating point")


def check_finite(tensors: dict, path: Path, what: str = "tensor") -> None:
    import torch

    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CadenzaError(f"{path}: {what} {name} holds NaN or infinite values")


STATE = {"format": Spec(int, 0, 1 << 16), "epoch": Spec(int, 1, 1 << 40), "step": Spec(int, 0, BIG),
         "best_loss": Spec(float, -math.inf, math.inf), "best_epoch": Spec(int, 0, 1 << 40),
         "bad_evals": Spec(int, 0, BIG), "bad_epochs": Spec(int, 0, BIG),  # bad_epochs: the old name
         "elapsed": Spec(float, 0, 1e12), "loss_sum": Spec.finite(),
         "loss_count": Spec(int, 0, BIG), "tokens": Spec(int, 0, BIG), "eval_every": Spec(int, 1, BIG, none=True),
         "rows": Spec(int, 0, BIG), "warmup": Spec(int, 0, BIG), "data_key": Spec(str, none=True),
         "model": Spec(dict), "optimizer": Spec(dict)}


def check_state(state, path: Path) -> dict:
    """The training state's fields the trainer reads; its RNG state a valid generator state;
    the model's tensors finite. Keys it does not name are left to their readers."""
    import torch

    if not isinstance(state, dict):
        raise CadenzaError(f"{path}: the training state must be a dictionary, not {type(state).__name__}")
    for key in ("epoch", "model", "optimizer"):
        if key not in state:
            raise CadenzaError(f"{path}: the training state has no {key}")
    check_fields(state, STATE, path, known=False)
    if "torch_rng" in state:
        rng = state["torch_rng"]
        try:
            if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
                raise ValueError
            torch.Generator().set_state(rng)
        except (ValueError, RuntimeError, TypeError):
            raise CadenzaError(f"{path}: torch_rng is not a random generator state") from None
    check_finite(state["model"], path, "model tensor")
    return state


METRIC_SPECS = {"epoch": Spec(int, 0, 1 << 40), "step": Spec(int, 0, BIG),
                "progress": Spec(float, 0, 1e15), "train_loss": Spec.finite(),
                "val_loss": Spec.finite(none=True), "lr": Spec(float, 0, 1e6),
                "tokens_per_s": Spec(float, 0, 1e15), "elapsed_s": Spec(float, 0, 1e15)}


def metrics_value(row: dict, name: str, path: Path, line: int, default=None):
    """One field of a metrics.csv row, parsed and checked."""
    spec, text = METRIC_SPECS[name], row.get(name)
    if text in (None, "") and default is not None:
        return default
    try:
        if spec.none and text in ("", "None", "nan"):
            return None
        value = int(text) if spec.kind is int else float(text)
    except (TypeError, ValueError):
        value = text
    if text is None and not spec.none:
        raise CadenzaError(f"{path}: line {line}: no {name} column")
    if not spec.ok(value):
        raise CadenzaError(f"{path}: line {line}: {name} must be {spec.describe()}, not {str(text)[:40]!r}")
    return value


TOKEN_STATS = {"seen": Spec(list), "max_tokens_per_bar": Spec(int, 1, 1 << 30, none=True),
               "p99_tokens_per_bar": Spec(int, 1, 1 << 20, none=True), "pieces": Spec(int, 0, BIG),
               "longest_note_beats": Spec(float, 0, 1e6, none=True, lo_open=True),
               "longest_pedal_beats": Spec(float, 0, 1e6, none=True, lo_open=True),
               "shortest_note_beats": Spec(float, 0, 1e6, none=True, lo_open=True),
               "pieces_changing_tempo": Spec(float, 0, 1, none=True),
               "pieces_changing_timesig": Spec(float, 0, 1, none=True)}


def check_token_stats(stats, vocab_size: int, path: Path) -> dict:
    check_fields(stats, TOKEN_STATS, path, known=False)
    seen = stats.get("seen")
    if not isinstance(seen, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in seen):
        raise CadenzaError(f"{path}: seen must be a list of token ids")
    if any(not 0 <= i < vocab_size for i in seen):
        raise CadenzaError(f"{path}: seen holds token ids outside the vocabulary of {vocab_size}")
    return stats
