"""cadenza: train a neural composer on your MIDI files and write new piano music.

The pipeline, as a Python API (the ``cadenza`` command is a thin layer over it)::

    from cadenza import preset, train, generate, load_run, to_scores
    result = train("my_midi_folder", "runs/mine", preset("small", epochs=10))
    run = load_run("runs/mine")
    pieces = to_scores(run, generate(run, num=2, length=32, unit="bars", temperature=0.9))
    pieces[0].dump_midi("new.mid")
"""
from .startup import guard as _guard_command_start

_guard_command_start()  # first: a Ctrl-C while torch is imported below is one line, not a traceback

from .config import PRESETS, Config, preset
from .dataset import prepare
from .errors import CadenzaError
from .generate import generate, to_scores
from .rundir import load_run
from .train import train

__all__ = ["CadenzaError", "Config", "PRESETS", "generate", "load_run", "prepare", "preset", "to_scores", "train"]
__version__ = "0.1.0"
