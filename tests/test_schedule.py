"""The learning-rate schedule is laid over the steps that fit in the budget."""
from __future__ import annotations

import time

import pytest

from cadenza import preset
from cadenza.schedule import Budget, Schedule


def fitted(seconds_left: float, seconds_per_step: float = 0.1, planned: int = 10**6) -> Schedule:
    config = preset("small", warmup_steps=100, warmup_fraction=0.05, max_minutes=seconds_left / 60)
    schedule = Schedule(config, planned, Budget(time.time(), time.time() + seconds_left))
    schedule.measure(step=3, steps_run=3, seconds=3 * seconds_per_step, steps_per_epoch=10**6)
    return schedule


def test_the_schedule_shrinks_with_the_budget():
    short, long = fitted(60), fitted(600)
    assert 500 < short.total < 600 < 5000 < long.total <= 6000
    assert short.warmup == 30 and long.warmup == 100  # 5% of the fitted steps, at most warmup_steps
    for s in (short, long):  # a run that uses its budget ends decayed, not in its warmup
        assert s.factor(s.warmup - 1) == pytest.approx(1.0)
        assert s.factor(s.total - 1) < 0.11
        assert s.factor(s.total // 2) == pytest.approx(0.55, abs=0.05)
    assert short.eval_every == short.total // 10


def test_without_a_budget_the_schedule_spans_the_epochs():
    config = preset("small", warmup_steps=10)
    schedule = Schedule(config, 1000, Budget(time.time(), None))
    schedule.measure(step=3, steps_run=3, seconds=0.3, steps_per_epoch=100)
    assert schedule.total == 1000 and schedule.warmup == 10 and schedule.eval_every == 100
    assert schedule.time_for_another_step()


def test_a_budget_never_plans_more_than_the_epochs_allow():
    assert fitted(600, planned=700).total == 700


def test_the_evaluation_time_is_kept_in_reserve():
    schedule = fitted(60)
    before = schedule.total
    schedule.evaluation_took(20.0)
    schedule.measure(step=10, steps_run=10, seconds=1.0, steps_per_epoch=10**6)
    assert schedule.total < before - 200


def test_the_cpu_budget_clock_does_not_run_while_the_process_waits(monkeypatch):
    """Benchmarks on a shared machine count CPU seconds: waiting for a core costs no budget."""
    monkeypatch.setenv("CADENZA_BUDGET_CLOCK", "cpu")
    cpu = Budget.start(0.01)  # 0.6 s
    monkeypatch.delenv("CADENZA_BUDGET_CLOCK")
    wall = Budget.start(0.01)
    time.sleep(0.8)
    assert wall.left() < 0
    monkeypatch.setenv("CADENZA_BUDGET_CLOCK", "cpu")
    assert cpu.left() > 0.3
