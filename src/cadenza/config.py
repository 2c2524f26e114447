"""One typed configuration for a training run, and the named presets."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CadenzaError


MAX_CONFIG_BYTES = 1 << 20


@dataclass
class Config:
    """A run's whole configuration. The defaults are the ``base`` preset (``Config() ==
    preset("base")``), chosen by benchmarks/structure.py on POP909 (docs/benchmarks.md): REMI,
    a 2 x 256 LSTM trained on every position within a 30-minute budget (data preparation
    included), sampled at temperature 1 with min-p 0.1, with no planned form (--form AABA asks for one)."""
    preset: str = "base"
    source: str | None = None     # the corpus the run was trained on
    init_from: str | None = None  # a fine-tune's starting run (shipped name or folder)
    # representation
    representation: str = "remi"
    representation_options: dict = field(default_factory=dict)
    # model
    model: str = "lstm"
    # the continuous cache (no weights) lets it read 2,048 tokens back (docs/benchmarks.md, "Context use")
    model_options: dict = field(default_factory=lambda: {"dim": 256, "layers": 2, "dropout": 0.1, "cache_window": 2048})
    # data
    seq_len: int = 256
    val_fraction: float = 0.1
    transpose: int = 5            # random transposition within +-N semitones (0: off)
    tempo_stretch: int = 0        # random tempo change within +-N tempo bins (0: off)
    infill: float = 0.0           # share of training windows made fill-in-the-middle examples; above 0
                                  # the model has the marker tokens (cadenza.data.fim); 0: none, as before
    controls: float = 0.0         # share of training windows with a density token after each bar (generate
                                  # --density; cadenza.data.controls); 0: none, as before
    lookahead: float = 0.0        # share of training windows with each bar's top line before it (accompany;
                                  # cadenza.data.lookahead); 0: none, as before
    # optimisation
    optimizer: str = "adamw"      # adamw | rmsprop
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100       # the warmup; with --max-minutes at most this many steps and
    warmup_fraction: float = 0.05  # this share of the steps that fit in the budget
    schedule: str = "cosine"      # cosine | constant
    grad_clip: float = 1.0
    ema: float = 0.0              # decay of a moving average of the weights, which is evaluated and
                                  # kept as the best (0: off; cadenza.training.averaging)
    batch_size: int = 16
    epochs: int = 20
    steps_per_epoch: int | None = None  # None: the whole training set once per epoch
    patience: int | None = 5     # stop after this many evaluations without a better validation loss (None: off)
    max_minutes: float | None = 30.0
    checkpoint_minutes: float = 5.0  # also save the training state mid-epoch this often
    seed: int = 0
    threads: int | None = None    # torch CPU threads (None: torch's default)
    compile: bool = False
    # generation defaults
    gen_length: int = 512
    gen_temperature: float = 1.0
    gen_top_k: int = 0
    gen_top_p: float = 1.0
    gen_min_p: float = 0.1
    gen_form: str = ""            # sections that come back by plan (cadenza.generation.form, e.g. "AABA"); "" none:
                                  # a memory model (the shipped base) brings material back by itself

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise CadenzaError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> "Config":
        """A run's config.json, every value checked (:mod:`cadenza.validate`)."""
        from .files import read_json
        from .validate import check_config

        data = read_json(Path(path), MAX_CONFIG_BYTES)
        if not isinstance(data, dict):
            raise CadenzaError(f"{path} is not a cadenza run configuration")
        check_config(data, Path(path))
        return cls.from_dict({**WRITTEN_BEFORE_KEY, **data})

    def replace(self, **changes) -> "Config":
        """A copy with ``changes`` applied (``None`` is a value too: ``patience=None`` turns
        early stopping off)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise CadenzaError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)


# A config.json holds every key, but one written before a key existed lacks it and meant the
# default of that time: until Config() became the base preset these keys' defaults were a
# 3 x 512 LSTM with no budget, sampled with top-p 0.95 and no form. A loaded file without
# them keeps what it was trained and sampled with.
WRITTEN_BEFORE_KEY: dict = dict(model_options={"dim": 512, "layers": 3, "dropout": 0.2}, batch_size=32,
                                lr=2e-3, epochs=30, max_minutes=None, gen_top_p=0.95, gen_min_p=0.0)

# Sampling by top-p 0.95 with no form: the presets below that were not chosen on POP909's
# structure (benchmarks/structure.py chose the base's) keep it.
_TOP_P = dict(gen_top_p=0.95, gen_min_p=0.0)

# What each preset changes from Config()'s defaults, which are the base preset's.
PRESETS: dict[str, dict] = {
    # The notebook, faithfully (cadenza/seed/).
    "seed": dict(representation="seed", model="seed_lstm",
                 model_options={"hidden": 512, "layers": 3, "dense": 256, "dropout": 0.3},
                 seq_len=100, transpose=0, optimizer="rmsprop", lr=1e-3, weight_decay=0.0,
                 warmup_steps=0, schedule="constant", grad_clip=0.0, batch_size=128, epochs=200,
                 patience=None, max_minutes=None, gen_length=500, gen_temperature=0.0, gen_min_p=0.0),
    "base": dict(),
    # A 3 x 512 LSTM for a GPU (26 steps in 12 CPU-minutes on 909 songs).
    "large": dict(model_options={"dim": 512, "layers": 3, "dropout": 0.2}, batch_size=32, lr=2e-3,
                  epochs=30, **_TOP_P),
    # The base's LSTM without a budget: a quick run on a laptop.
    "small": dict(max_minutes=None, **_TOP_P),
    # A decoder that sees 1,024 tokens (about 12 bars of POP909 in REMI, 24 with BPE 1000).
    "transformer": dict(model="transformer",
                        model_options={"dim": 256, "layers": 4, "heads": 4, "dropout": 0.1},
                        lr=1e-3, seq_len=1024, batch_size=8, epochs=30, max_minutes=None, **_TOP_P),
}


# A fine-tune's schedule over its starting run's configuration (cadenza.training.finetune). The budget
# decides when it stops: no early stopping, and an epoch cap far beyond what a budget holds
# (a small folder's epochs last seconds: the starting run's 20 would end it long before).
FINETUNE_SCHEDULE = dict(warmup_fraction=0.02, warmup_steps=20, max_minutes=10.0, epochs=1000, patience=None)


# Sampling defaults of a representation, over any preset's: the presets' were chosen on
# grid tokens (POP909 in REMI). Performance tokens: min-p 0.1 cut a Pedal token in a third
# of the places the corpus presses the pedal and a time shift of 200 ms or more in half of
# them, so pieces came out dense and unpedalled; temperature 1.05 with no top-p or min-p was
# chosen on validation pieces of the ASAP Bach performances (benchmarks/performance.py
# --choose-sampling; docs/benchmarks.md). No form: performance tokens have no bars.
REPRESENTATION_SAMPLING: dict[str, dict] = {
    "performance": dict(gen_temperature=1.05, gen_top_k=0, gen_top_p=1.0, gen_min_p=0.0),
}


def preset(name: str, **overrides) -> Config:
    """The preset ``name`` with ``overrides``; its sampling defaults give way to the
    representation's (:data:`REPRESENTATION_SAMPLING`), and both to ``overrides``."""
    if name not in PRESETS:
        raise CadenzaError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    config = Config(preset=name, **PRESETS[name]).replace(**overrides)
    sampling = REPRESENTATION_SAMPLING.get(config.representation, {})
    return config.replace(**{k: v for k, v in sampling.items() if k not in overrides})
