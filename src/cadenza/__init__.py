"""cadenza: train a neural composer on your MIDI files and write new piano music.

The pipeline, as a Python API (the ``cadenza`` command is a thin layer over it)::

    from cadenza import Sampling, preset, train, generate, load_run, to_scores
    result = train("my_midi_folder", "runs/mine", preset("small", epochs=10))
    run = load_run("runs/mine")
    pieces = to_scores(run, generate(run, num=2, length=32, unit="bars", sampling=Sampling(temperature=0.9)))
    pieces[0].dump_midi("new.mid")
"""
from .startup import guard as _guard_command_start

_guard_command_start()  # first: a Ctrl-C while the command imports torch is one line, not a traceback

from .errors import CadenzaError

# The API by name, imported on first use: `cadenza --help` or a mistyped flag then answers at
# once instead of after the seconds torch takes to import.
_LAZY = {"Config": "config", "PRESETS": "config", "preset": "config", "prepare": "data.dataset",
         "generate": "generation.generate", "to_scores": "generation.generate", "load_run": "rundir",
         "train": "training.trainer", "Sampling": "generation.sampling", "infill": "generation.infill",
         "accompany": "generation.accompany",
         "Steer": "generation.steer"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["CadenzaError", "Config", "PRESETS", "Sampling", "Steer", "accompany", "generate", "infill", "load_run",
           "prepare", "preset", "to_scores", "train"]
__version__ = "0.1.0"
