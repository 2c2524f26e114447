"""A new training's options are checked by the same declarations that check a run's
config.json when it is loaded (validate.py): what `cadenza train` accepts, `load_run` and
`--resume` accept too, and what they refuse is refused before any work."""
from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from cadenza import models
from cadenza.models.cache import make as make_cache
from cadenza.data import representations
from cadenza.validate import check_config


@pytest.mark.parametrize("flags, reason", [
    (["--threads", "0"], "threads must be an integer in [1, 4,096]"),
    (["--transpose", "200"], "transpose must be an integer in [0, 127]"),
    (["--model-option", "window=64"], "unknown key model_options.window"),  # an lstm has no window
    (["--model", "lstm_memory", "--model-option", "window=1"], "model_options.window must be an integer"),
    (["--model-option", "dim"], "model option 'dim' is not NAME=VALUE"),
    # the rule the model's constructor holds (heads of even size), met before the (empty) folder is read
    (["--model", "transformer", "--model-option", "dim=6", "--model-option", "heads=2"],
     "bad options for model 'transformer': dim (6) must split into 2 heads of even size"),
    (["--model", "lstm_memory", "--model-option", "heads=3"], "dim (256) must split into 3 heads"),
    (["--model-option", "tie_weights=ture"], "model_options.tie_weights must be true or false, not 'ture'"),
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
    params = inspect.signature(cls.__init__).parameters
    takes = {n for n, p in params.items() if p.kind != p.VAR_KEYWORD} - {"self", "vocab_size"}
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):  # handed on to the continuous cache
        takes |= set(inspect.signature(make_cache).parameters)
    assert set(models.declared_options(name)) == set(cls.OPTIONS) == takes


def test_generate_refuses_threads_by_the_rule_train_uses(tmp_path):
    """``generate --threads 0`` is refused by the config's ``threads`` spec, in the words a
    training's ``--threads 0`` gets, before the run is read."""
    said = {}
    for command in (["train", str(tmp_path), "--run-dir", str(tmp_path / "run")],
                    ["generate", str(tmp_path / "no-run"), "-o", str(tmp_path / "x.mid")]):
        proc = subprocess.run([sys.executable, "-m", "cadenza", *command, "--threads", "0"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        said[command[0]] = proc.stderr.strip()
    assert said["generate"] == said["train"] == "cadenza: error: --threads must be an integer in [1, 4,096], not 0"


@pytest.mark.parametrize("name", representations.NAMES)
def test_each_representation_declares_the_options_its_constructor_takes(name):
    """A representation's options are declared beside it (``OPTIONS``), read by the checks of
    config.json and of its tokenizer files through the registry."""
    cls = representations._class_for(name)
    fitted = {"_tokenizer", "vocab"}  # what load() hands back a fitted tokenizer or vocabulary through
    takes = set(inspect.signature(cls.__init__).parameters) - {"self"} - fitted
    assert set(representations.declared_options(name)) == takes


def test_representation_options_are_checked_by_their_declaration(tmp_path):
    from cadenza import preset

    data = __import__("json").loads(preset("base").to_json())
    check_config(data, tmp_path / "config.json")  # the base preset itself passes
    for options, reason in (({"num_velocities": 0}, "representation_options.num_velocities must be an integer"),
                            ({"colour": 1}, "unknown key representation_options.colour"),
                            ({"beat_res": [[0, 4, 2000]]}, "representation_options.beat_res must be ranges")):
        with pytest.raises(Exception, match=reason):
            check_config({**data, "representation_options": options}, tmp_path / "config.json")
    with pytest.raises(Exception, match="unknown key representation_options.num_velocities"):
        check_config({**data, "representation": "seed", "representation_options": {"num_velocities": 8}}, None)
