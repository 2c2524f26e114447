"""Particles: each candidate sampled as ``size`` pieces side by side, resampled now and then by
how well each fits what was asked, so the candidates that go where they should are kept and the
others dropped (a particle filter; :func:`cadenza.generation.generate._sample`'s ``resample``).

A subclass says what it observes after each step (``observe``: the piece's ``scores`` updated),
how many of a piece's scored events are final (``judged``) and each one's log-weight
(``weight``). A candidate's particles are resampled every ``every`` events that all of them
have judged; a candidate whose particles are not all still going is no longer resampled.
"""
from __future__ import annotations

import numpy as np
import torch


class Particles:
    def __init__(self, size: int, every: int, rng: np.random.Generator) -> None:
        self.size, self.every, self.rng, self.done = size, every, rng, {}

    def observe(self, piece, logp: torch.Tensor) -> None:
        raise NotImplementedError

    def judged(self, piece) -> int:
        return len(piece.scores)

    def weight(self, piece, k: int) -> float:
        return piece.scores[k]

    def total(self, piece) -> float:
        return sum(self.weight(piece, k) for k in range(self.judged(piece)))

    def __call__(self, batch: list, logits: torch.Tensor) -> list[int] | None:
        logp = torch.log_softmax(logits.float(), dim=-1)
        for row, piece in enumerate(batch):
            self.observe(piece, logp[row])
        rows, changed = list(range(len(batch))), False
        for group in {p.group for p in batch}:
            members = [r for r, p in enumerate(batch) if p.group == group]
            start = self.done.get(group, 0)
            if len(members) < self.size or min(self.judged(batch[r]) for r in members) < start + self.every:
                continue
            weights = np.array([sum(self.weight(batch[r], k) for k in range(start, start + self.every))
                                for r in members])
            chance = np.exp(weights - weights.max())
            picks = self.rng.choice(len(members), size=len(members), p=chance / chance.sum())
            for r, pick in zip(members, picks):
                rows[r] = members[pick]
            self.done[group], changed = start + self.every, True
        return rows if changed else None

    def best(self, pieces: list, groups: int) -> list:
        """Each candidate's particle that fits best over all it judged."""
        return [max((p for p in pieces if p.group == g), key=self.total) for g in range(groups)]
