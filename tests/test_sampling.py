"""The sampling settings travel as one value, checked when it is made against ranges declared
once (``cadenza.generation.sampling.SPECS``): a run's config.json, the command line and the studio accept
and refuse the same values, and each setting does what it says on real logits."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from cadenza.config import preset
from cadenza.generation.sampling import PLAIN, SPECS, Sampling, sample_next
from cadenza.spec import SpecError
from cadenza.validate import check_config


@pytest.mark.parametrize("field, value", [("temperature", -0.5), ("temperature", float("nan")),
                                          ("top_k", -1), ("top_k", 2.5), ("top_p", 0.0), ("top_p", 1.5),
                                          ("min_p", -0.1), ("min_p", 1.01), ("min_p", "0.1")])
def test_a_setting_out_of_range_is_refused_when_made_naming_it(field, value):
    with pytest.raises(SpecError) as caught:
        Sampling(**{field: value})
    assert caught.value.field == field and str(caught.value).startswith(f"{field} must be ")


EDGES = [-1, 0, 1e-9, 0.5, 1, 1.5, 3, 1_000_000, 2_000_000, float("inf"), float("nan"), True, "1"]


def accepts(fn, *args, **kwargs) -> bool:
    try:
        fn(*args, **kwargs)
        return True
    except SpecError:
        return False


@pytest.mark.parametrize("field", list(SPECS))
def test_a_runs_gen_setting_and_sampling_agree_on_every_value(field, tmp_path):
    """The loader's ``gen_<field>`` and ``Sampling`` read one declaration: what one refuses,
    the other refuses."""
    loaded = [accepts(check_config, {f"gen_{field}": v}, tmp_path / "config.json") for v in EDGES]
    made = [accepts(Sampling, **{field: v}) for v in EDGES]
    assert loaded == made and any(made) and not all(made), list(zip(EDGES, loaded, made))


def test_settings_left_out_are_the_runs_own():
    config = preset("base")
    assert Sampling(temperature=0.5).over(config) == Sampling(0.5, config.gen_top_k, config.gen_top_p,
                                                              config.gen_min_p)
    assert Sampling().over(config.replace(gen_min_p=0.2)).min_p == 0.2


def test_min_p_one_keeps_only_the_likeliest_token():
    """min-p 1 (the top of its range, [0, 1]) draws the likeliest token whatever the seed."""
    logits = torch.log(torch.tensor([[0.1, 0.35, 0.3, 0.25], [0.4, 0.1, 0.1, 0.4 - 1e-3]]))
    one = replace(PLAIN, min_p=1.0)
    draws = {tuple(sample_next(logits, one, generator=torch.Generator().manual_seed(k))[0].tolist())
             for k in range(50)}
    assert draws == {(1, 0)}
    plain = {tuple(sample_next(logits, PLAIN, generator=torch.Generator().manual_seed(k))[0].tolist())
             for k in range(50)}
    assert len(plain) > 1
