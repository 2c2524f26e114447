"""Fine-tuning: a new run that starts from a trained one, the shipped ``base`` or any run
folder, with its tokenizer, model and weights, a lower learning rate and a short warmup.
The new run folder is self-contained: the tokenizer is copied into it and the weights live
in its own state, so generating or resuming never needs the starting run again."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_model

from ..data import representations
from .. import rundir
from ..config import FINETUNE_SCHEDULE, Config
from ..data.controls import has_controls
from ..data.fim import grow_vocab, has_markers
from ..data.layouts import extra_ids
from ..data.lookahead import has_lookahead
from ..errors import CadenzaError
from ..files import check_regular
from ..pretrained import resolve_run
from ..validate import check_finite, check_weights_file

# Chosen on validation pieces of a small folder (benchmarks/finetune.py --choose; docs/benchmarks.md)
LR_FACTOR = 0.3               # of the starting run's peak learning rate
DROPOUT = 0.3                 # a small folder overfits: more dropout than the base preset's 0.1
EMA = 0.998                   # the kept weights are a moving average of the stepped ones
# training windows: a memory model still reads its whole reach when it generates. From the
# memory base, 256-token windows beat its own 1,024 on validation pieces: NLL per note 3.148
# against 3.691 on ASAP Bach, 1.747 against 1.743 on 40 chorales (docs/benchmarks.md)
SEQ_LEN = 256
SCHEDULE = dict(FINETUNE_SCHEDULE, ema=EMA)  # the budget decides when it stops (config.py)


def finetune_config(start: str | Path) -> Config:
    """The configuration of a fine-tune from ``start``: its model and tokenizer, a tenth-scale
    warmup, ``LR_FACTOR`` of its learning rate, at least ``DROPOUT``, the weights' moving
    average (``EMA``), windows of at most ``SEQ_LEN`` tokens, a 10-minute budget that decides
    when it stops (``--max-minutes``, ``--epochs``, ``--lr``, ``--dropout``, ``--ema`` and
    ``--seq-len`` change them)."""
    directory = resolve_run(start)
    if not (directory / rundir.CONFIG).is_file() or not (directory / rundir.BEST).is_file():
        raise CadenzaError(f"--from {start}: not a trained cadenza run (no {rundir.CONFIG} and {rundir.BEST})")
    config = Config.load(directory / rundir.CONFIG)
    rep = representations.load(directory / rundir.TOKENIZER)
    if not rep.transferable:
        raise CadenzaError(f"--from {start}: its {config.representation!r} tokens are the note strings of its own "
                           "corpus and cannot encode another folder; fine-tune from a REMI, TSD or MIDI-like run")
    options = dict(config.model_options)
    options.pop("frozen", None)  # a fine-tune trains every weight
    if "dropout" in options:
        options["dropout"] = max(options["dropout"], DROPOUT)
    return config.replace(lr=config.lr * LR_FACTOR, init_from=str(start), source=None, model_options=options,
                          seq_len=min(config.seq_len, SEQ_LEN), **SCHEDULE)


def start_tokenizer(config: Config, run_dir: Path, resume: bool):
    """The fitted tokenizer that encodes the folder: on resume the run's own copy (a newer
    cadenza's defaults never change a run's tokens), for a fine-tune the starting run's,
    otherwise None (fitted on the folder)."""
    if resume:
        return representations.load(run_dir / rundir.TOKENIZER)
    if not config.init_from:
        return None
    return representations.load(resolve_run(config.init_from) / rundir.TOKENIZER)


def check_start_model(config: Config) -> None:
    """Before any work: a fine-tune keeps the starting run's model, or names one that grows
    from it (the model class's ``grown_from``)."""
    from .. import models

    start = Config.load(resolve_run(config.init_from) / rundir.CONFIG).model
    if config.model != start and start not in getattr(models.model_class(config.model), "grown_from", {}):
        raise CadenzaError(f"--from {config.init_from} is a {start} model; --model {config.model} cannot start from it")


def load_start_weights(model: torch.nn.Module, config: Config) -> None:
    """The starting run's best weights (any float dtype) into ``model``. A model that grows
    from the starting run's kind (its ``grown_from``) keeps its own new parameters."""
    directory = resolve_run(config.init_from)
    path = directory / rundir.BEST
    check_regular(path, rundir.MAX_WEIGHTS_BYTES)
    check_weights_file(path)
    start_model = Config.load(directory / rundir.CONFIG).model
    new = getattr(model, "grown_from", {}).get(start_model) if start_model != config.model else None
    try:  # copies into the model's tensors, casting fp16/bf16
        missing, unexpected = load_model(model, str(path), strict=new is None)
    except Exception as exc:  # safetensors raises its own types for damaged files
        raise CadenzaError(f"cannot start from {path}: {str(exc).splitlines()[0][:200]}") from None
    if unexpected or any(not key.startswith(new) for key in missing):
        raise CadenzaError(f"cannot start a {config.model} model from {path}: the {start_model} weights do not fit")
    check_finite(dict(model.named_parameters()), path)


def load_start(model: torch.nn.Module, config, rep) -> None:
    """A fine-tune's starting weights into ``model`` (:func:`load_start_weights`); when the
    fine-tune adds ids after the tokenizer's (infill markers, density tokens, lookahead markers), through a model of
    the start's vocabulary grown by :func:`cadenza.data.fim.grow_vocab`. A start keeps its ids."""
    from .. import models

    start = Config.load(resolve_run(config.init_from) / rundir.CONFIG)
    for what, has, tokens in (("infill", has_markers, "markers"), ("controls", has_controls, "density tokens"),
                              ("lookahead", has_lookahead, "lookahead markers")):
        if has(start) and not has(config):
            raise CadenzaError(f"--from {config.init_from} was trained with {what}; a fine-tune of it keeps "
                               f"its {tokens}: give --{what} above 0 (its own: {getattr(start, what):g})")
    if extra_ids(start) == extra_ids(config):
        load_start_weights(model, config)
        return
    small = models.create(config.model, rep.vocab_size + extra_ids(start), config.model_options)
    load_start_weights(small, config)
    grow_vocab(small, model)
