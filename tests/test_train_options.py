"""A new training's options are checked by the same declarations that check a run's
config.json when it is loaded (validate.py): what `cadenza train` accepts, `load_run` and
`--resume` accept too, and what they refuse is refused before any work."""
from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from cadenza import models
from cadenza.validate import check_config


@pytest.mark.parametrize("flags, reason", [
    (["--threads", "0"], "threads must be an integer in [1, 4,096]"),
    (["--transpose", "200"], "transpose must be an integer in [0, 127]"),
    (["--model-option", "window=64"], "unknown key model_options.window"),  # an lstm has no window
    (["--model", "lstm_memory", "--model-option", "window=1"], "model_options.window must be an integer"),
    (["--model-option", "dim"], "write NAME=VALUE"),
])
def test_refused_before_any_work_as_load_run_would(tmp_path, flags, reason):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "cadenza", "train", str(tmp_path), "--run-dir", str(run), *flags],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and reason in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not run.exists()


def test_the_loaded_config_is_refused_with_the_same_words(tmp_path):
    from cadenza import preset

    data = __import__("json").loads(preset("base").replace(threads=0).to_json())
    with pytest.raises(Exception, match=r"threads must be an integer in \[1, 4,096\]"):
        check_config(data, tmp_path / "config.json")


@pytest.mark.parametrize("name", models.NAMES)
def test_each_model_declares_the_options_its_constructor_takes(name):
    """A model's options are declared beside its ``__init__`` (``OPTIONS``) and read through
    the registry: an option the class takes but does not declare would be refused in every
    config.json, one it declares but does not take would fail when the model is built."""
    cls = models.model_class(name)
    takes = set(inspect.signature(cls.__init__).parameters) - {"self", "vocab_size"}
    assert set(models.declared_options(name)) == set(cls.OPTIONS) == takes
