"""What a training does with its time: the learning-rate schedule and the evaluation rhythm.

Without a budget the schedule spans ``epochs x steps_per_epoch`` steps: a fixed warmup of
``warmup_steps``, then cosine decay to 10% (or a constant rate). With ``--max-minutes``
the same shape is laid over the steps that fit in what is left of the budget, estimated
from the measured seconds per step (evaluations and checkpoints included) and
re-estimated as training goes, so a short run ends decayed instead of in its warmup.
The warmup is then ``warmup_fraction`` of the fitted steps (at most ``warmup_steps``).

Validation runs every ``eval_every`` steps and at every epoch end: about
``EVALS_PER_BUDGET`` times over a budget, otherwise at epoch ends, or every
``EVAL_SECONDS`` when an epoch takes longer than that.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from ..config import Config

EVALS_PER_BUDGET = 10
EVAL_SECONDS = 600.0
FIRST_ESTIMATE_STEP = 3  # steps measured before the first estimate of the step time
SAFETY_SECONDS = 2.0
FLOOR = 0.1  # the cosine ends at this share of the peak learning rate


def budget_clock() -> float:
    """Seconds on the clock that ``--max-minutes`` counts: wall time, or this process's CPU
    time with ``CADENZA_BUDGET_CLOCK=cpu`` (benchmarks that compare trainings side by side on
    a shared machine, where wall minutes buy unequal work)."""
    return time.process_time() if os.environ.get("CADENZA_BUDGET_CLOCK") == "cpu" else time.time()


@dataclass
class Budget:
    """The whole command's time: ``deadline`` is None without ``--max-minutes``."""
    started: float
    deadline: float | None

    @classmethod
    def start(cls, max_minutes: float | None) -> "Budget":
        now = budget_clock()
        return cls(now, None if max_minutes is None else now + max_minutes * 60)

    def left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - budget_clock()


class Schedule:
    """Learning rate per global step, fitted to a budget; ``eval_every`` fixed once measured."""

    def __init__(self, config: Config, planned_steps: int, budget: Budget,
                 eval_every: int | None = None):
        self.config, self.planned, self.budget = config, planned_steps, budget
        self.total = planned_steps
        self.eval_every = eval_every
        self.seconds_per_step: float | None = None
        self.reserve = SAFETY_SECONDS  # time kept for the final evaluation and save
        self.resumed: tuple[int, float] | None = None  # (global step, factor) where a budget run resumed
        self.fixed_warmup: int | None = None  # a budget run resumed in its warmup keeps that warmup

    def resume_at(self, step: int, factor: float, warmup: int | None = None) -> None:
        """A run resumed at ``step`` with a new budget goes on from the factor it had there
        (never back up the cosine, which refitting ``total`` to the new budget would do) and
        decays from it to the floor at the new ``total``; resumed within its warmup (``warmup``:
        the run's own, saved with its state) it finishes that warmup. Without a budget ``total``
        is the plan as before, and nothing changes."""
        if self.budget.deadline is None:
            return
        if warmup is None:  # a state from before warmups were saved: the longest any refit gives
            warmup = self.warmup
        if step >= warmup:
            self.resumed = (step, min(1.0, max(FLOOR, factor)))
        else:
            self.fixed_warmup = warmup

    @property
    def warmup(self) -> int:
        if self.fixed_warmup is not None:
            return self.fixed_warmup
        if self.budget.deadline is None:
            return self.config.warmup_steps
        return min(self.config.warmup_steps, math.ceil(self.config.warmup_fraction * self.total))

    def factor(self, step: int) -> float:
        """Linear warmup, then cosine decay to ``FLOOR`` (10%) at ``total`` (or constant)."""
        cosine = self.config.schedule != "constant"
        if cosine and self.resumed is not None and step >= self.resumed[0]:
            return self._cosine(step, *self.resumed)  # past any warmup the refitted total implies
        warmup = self.warmup
        if warmup and step < warmup:
            return (step + 1) / warmup
        if not cosine or self.total <= warmup:
            return 1.0
        return self._cosine(step, warmup, 1.0)

    def _cosine(self, step: int, start: int, top: float) -> float:
        progress = min(1.0, (step - start) / max(1, self.total - start))
        return FLOOR + (top - FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))

    def lr(self, step: int) -> float:
        return self.config.lr * self.factor(step)

    def measure(self, step: int, steps_run: int, seconds: float, steps_per_epoch: int) -> None:
        """Record ``seconds`` spent on this command's first ``steps_run`` steps (now at
        global ``step``); refit the total to the budget and fix the evaluation rhythm."""
        if steps_run < min(FIRST_ESTIMATE_STEP, self.planned):
            return
        self.seconds_per_step = seconds / steps_run
        if self.budget.deadline is not None:
            fit = step + int(max(0.0, self.budget.left() - self.reserve) / self.seconds_per_step)
            self.total = max(step + 1, min(self.planned, fit))
        if self.eval_every is None:
            self.eval_every = self._eval_rhythm(steps_per_epoch)

    def _eval_rhythm(self, steps_per_epoch: int) -> int:
        if self.budget.deadline is not None:
            return max(1, min(steps_per_epoch, self.total // EVALS_PER_BUDGET))
        per_period = max(1, int(EVAL_SECONDS / self.seconds_per_step))
        return min(steps_per_epoch, per_period)

    def time_for_another_step(self) -> bool:
        if self.budget.deadline is None:
            return True
        per_step = self.seconds_per_step or 0.0
        return self.budget.left() - self.reserve > per_step

    def evaluation_took(self, seconds: float) -> None:
        self.reserve = max(self.reserve, 1.2 * seconds + SAFETY_SECONDS)
