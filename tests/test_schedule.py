"""The learning-rate schedule is laid over the steps that fit in the budget."""
from __future__ import annotations

import time

import pytest

from cadenza import preset
from cadenza.training.schedule import Budget, Schedule


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


def test_a_resumed_budget_run_goes_on_down_from_where_it_stopped():
    first = fitted(60)  # a run that used its budget: the cosine ended near the floor
    stop = first.total - 10
    resumed = Schedule(first.config, 10**6, Budget(time.time(), time.time() + 600))
    resumed.resume_at(stop, first.factor(stop))
    resumed.measure(step=stop + 3, steps_run=3, seconds=0.3, steps_per_epoch=10**6)
    assert resumed.total > stop + 5000
    factors = [resumed.factor(s) for s in range(stop, resumed.total, 97)]
    assert factors[0] == pytest.approx(first.factor(stop))
    assert all(a >= b for a, b in zip(factors, factors[1:])) and factors[-1] < 0.11
    refitted = Schedule(first.config, 10**6, Budget(time.time(), time.time() + 600))  # what it did before
    refitted.measure(step=stop + 3, steps_run=3, seconds=0.3, steps_per_epoch=10**6)
    assert refitted.factor(stop + 3) > 0.9


def test_resuming_without_a_budget_keeps_the_plan():
    config = preset("small", warmup_steps=10)
    plain, resumed = (Schedule(config, 1000, Budget(time.time(), None)) for _ in range(2))
    resumed.resume_at(400, 0.2)
    assert [resumed.factor(s) for s in range(0, 1000, 50)] == [plain.factor(s) for s in range(0, 1000, 50)]


def test_a_real_run_resumed_with_a_budget_does_not_raise_its_learning_rate(corpus_dir, tmp_path):
    from cadenza import rundir, train

    tiny = dict(steps_per_epoch=3, threads=1, checkpoint_minutes=60.0, patience=None, warmup_steps=1)
    run_dir = tmp_path / "run"
    train(str(corpus_dir), run_dir, preset("small", seq_len=32, batch_size=4, epochs=2, max_minutes=None, **tiny),
          quiet=True, workers=1)
    before = rundir.read_metrics(run_dir / rundir.METRICS)
    train(None, run_dir, resume=True, overrides=dict(epochs=4, max_minutes=30.0), quiet=True, workers=1)
    after = rundir.read_metrics(run_dir / rundir.METRICS)[len(before):]
    assert after and all(row["lr"] <= before[-1]["lr"] * 1.0001 for row in after)


def test_a_longer_budget_on_resume_does_not_reopen_the_warmup():
    config = preset("small", warmup_steps=200, warmup_fraction=0.05)
    first = Schedule(config, 10**6, Budget(time.time(), time.time() + 60))
    first.measure(step=3, steps_run=3, seconds=0.3, steps_per_epoch=10**6)  # ~580 steps: warmup 30
    resumed = Schedule(config, 10**6, Budget(time.time(), time.time() + 6000))
    resumed.resume_at(300, first.factor(300))
    resumed.measure(step=303, steps_run=3, seconds=0.3, steps_per_epoch=10**6)  # warmup would be 200 now
    assert resumed.warmup == 200 and resumed.factor(303) <= first.factor(300)


def test_a_run_resumed_in_its_warmup_finishes_that_warmup():
    config = preset("small", warmup_steps=200, warmup_fraction=0.05)
    resumed = Schedule(config, 10**6, Budget(time.time(), time.time() + 6000))
    resumed.resume_at(20, 21 / 30, warmup=30)  # the first run's budget gave a 30-step warmup
    resumed.measure(step=23, steps_run=3, seconds=0.3, steps_per_epoch=10**6)
    assert resumed.warmup == 30 and resumed.factor(20) == pytest.approx(21 / 30)
    assert resumed.factor(29) == pytest.approx(1.0) and resumed.factor(31) <= 1.0


def test_a_run_resumed_after_its_warmup_never_goes_back_up():
    config = preset("small", warmup_steps=200, warmup_fraction=0.05)
    resumed = Schedule(config, 10**6, Budget(time.time(), time.time() + 6000))
    resumed.resume_at(100, 0.6, warmup=30)  # past the run's own 30-step warmup, below the preset's 200
    resumed.measure(step=103, steps_run=3, seconds=0.3, steps_per_epoch=10**6)
    factors = [resumed.factor(s) for s in range(100, resumed.total, 50)]
    assert factors[0] == pytest.approx(0.6) and all(a >= b for a, b in zip(factors, factors[1:]))
