"""Presets hold what they say: ``Config()`` is the base preset, every other preset names only
what it changes, and a run folder's config.json written before a key existed still loads as
the run it was."""
from __future__ import annotations

import dataclasses
import json

import pytest

from cadenza.config import PRESETS, Config, preset


def test_config_defaults_are_the_base_preset():
    assert Config() == preset("base")
    assert PRESETS["base"] == {}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_preset_names_only_what_it_changes(name):
    defaults = Config()
    same = [key for key, value in PRESETS[name].items() if getattr(defaults, key) == value]
    assert not same, f"{name} repeats the defaults of {same}"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_configuration_that_loads(tmp_path, name):
    path = tmp_path / "config.json"
    path.write_text(preset(name).to_json())
    assert Config.load(path) == preset(name)


def test_a_config_written_before_a_key_existed_keeps_the_value_it_meant(tmp_path):
    """A run written before min-p and forms existed sampled with top-p 0.95 and no form, the
    defaults of the time: loaded today, it still does (not the base preset's min-p and AABA)."""
    old = {k: v for k, v in dataclasses.asdict(preset("small")).items() if k not in ("gen_min_p", "gen_form")}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    loaded = Config.load(path)
    assert (loaded.gen_top_p, loaded.gen_min_p, loaded.gen_form) == (0.95, 0.0, "")
    assert loaded == preset("small")
