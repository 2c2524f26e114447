"""The command's own help and usage errors: they answer without importing torch (the time
is measured by benchmarks/cli_speed.py, not here), a mistyped flag names the closest one,
every flag says what it does and its default; the Python API still imports by name."""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from cadenza.cli import build_parser

PROBE = "import runpy, sys; sys.argv = ['cadenza', *sys.argv[1:]]\n" \
        "try:\n    runpy.run_module('cadenza', run_name='__main__')\n" \
        "finally:\n    print('torch loaded' if 'torch' in sys.modules else 'no torch', file=sys.stderr)"


def cadenza(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["generate", "--help"], ["genrate"],
                                  ["generate", "base", "-o", "x.mid", "--lenght", "3"]])
def test_help_and_usage_errors_do_not_import_torch(args):
    done = cadenza(*args)
    assert done.stderr.strip().splitlines()[-1] == "no torch", done.stderr
    assert done.returncode == (0 if "--help" in args else 2)


def test_a_mistyped_flag_names_the_right_one_in_one_line():
    done = cadenza("generate", "base", "-o", "x.mid", "--lenght", "3")
    first, last = done.stderr.strip().splitlines()
    assert first.startswith("cadenza: error: unrecognized arguments: --lenght")
    assert "did you mean --length?" in first and "cadenza generate --help" in first
    assert last == "no torch" and "Traceback" not in done.stderr
    train = cadenza("train", "bach", "--run-dir", "r", "--max-minuts=3")
    assert "did you mean --max-minutes?" in train.stderr and train.returncode == 2


def test_generate_imports_torch_before_the_command_starts():
    """The command's modules load while the start-up Ctrl-C guard holds (tests/test_interrupt.py)."""
    done = cadenza("generate", "no-such-run", "-o", "x.mid")
    assert done.returncode == 2 and "no-such-run" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "torch loaded"


def _flags():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in commands.items():
        for action in command._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                yield name, action


def test_every_flag_has_help_that_shows_its_default():
    missing = [f"{name} {a.option_strings[-1]}" for name, a in _flags() if not a.help]
    assert missing == []
    switches = (argparse._StoreTrueAction, argparse._StoreFalseAction)
    no_default = [f"{name} {a.option_strings[-1]}" for name, a in _flags()
                  if not isinstance(a, switches) and "default" not in a.help and "required" not in a.help]
    assert no_default == []


def test_the_help_defaults_are_the_presets_and_the_fine_tunes():
    from cadenza.config import FINETUNE_SCHEDULE, preset
    from cadenza.training.finetune import SCHEDULE

    text = build_parser()._actions[1].choices["train"].format_help()
    assert f"base: {preset('base').epochs}" in " ".join(text.split())
    assert SCHEDULE["max_minutes"] == FINETUNE_SCHEDULE["max_minutes"]
    assert f"a fine-tune: {FINETUNE_SCHEDULE['max_minutes']:g}" in " ".join(text.split())


def test_the_python_api_imports_by_name():
    code = ("import cadenza, cadenza.training.trainer, cadenza.generation.generate\n"
            "from cadenza import train, generate, preset, load_run, to_scores, prepare, Config, PRESETS, CadenzaError\n"
            "assert callable(train) and callable(generate) and cadenza.train is train\n"
            "assert preset('small').max_minutes is PRESETS['small']['max_minutes'] is None and issubclass(CadenzaError, Exception)\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr
