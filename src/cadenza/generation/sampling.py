"""Choosing the next token: what may be sampled (grammar, tokens seen in training, the
tempo and metre in force), temperature, top-k, top-p (nucleus), min-p (tokens at least this
share of the likeliest one's probability: it trims a peaked distribution's tail, a stray
out-of-key pitch, and leaves a flat one, the velocities, nearly whole)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..spec import BIG, Spec
from ..data.token_stats import TEMPO, TIMESIG

LOCK_BELOW = 0.5  # share of training pieces changing tempo / metre under which a piece keeps one


# the ranges, declared once: the CLI's flags, the studio's fields, a run's gen_* and Sampling itself
SPECS = {"temperature": Spec(float, 0, 1_000_000),   # 0: the likeliest token (argmax)
         "top_k": Spec(int, 0, BIG),                   # 0: off
         "top_p": Spec(float, 0, 1, lo_open=True),     # 1: off
         "min_p": Spec(float, 0, 1)}                   # 0: off; 1: the likeliest tokens only


@dataclass(frozen=True)
class Sampling:
    """How the next token is drawn from the model's distribution; None leaves a setting to
    the run (its configuration's ``gen_<name>``, :meth:`over`). Each value given is checked
    against :data:`SPECS` when the value is made (a :class:`SpecError` naming the field)."""
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None

    def __post_init__(self) -> None:
        for name, spec in SPECS.items():
            if getattr(self, name) is not None:
                spec.check(name, getattr(self, name))

    def over(self, config) -> "Sampling":
        """Every setting: the ones given, the others from ``config``'s ``gen_*``."""
        return Sampling(**{name: getattr(config, f"gen_{name}") if getattr(self, name) is None
                           else getattr(self, name) for name in SPECS})


PLAIN = Sampling(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)  # the model's own distribution


def sample_next(logits: torch.Tensor, sampling: Sampling = PLAIN, allowed: torch.Tensor | None = None,
                generator: torch.Generator | None = None, redirect: list | None = None):
    """Next token per row of ``logits [B, V]``, drawn as ``sampling`` says (every setting
    given: :meth:`Sampling.over`).

    ``redirect`` (per row None or (forbidden ids, allowed ids)): the probability of each
    forbidden id goes to its allowed id instead of being spread over all allowed tokens.
    Returns ``(ids [B], masked_mass [B])`` where ``masked_mass`` is the probability the
    model gave to tokens the grammar forbids (at temperature 1).
    """
    temperature, top_k, top_p, min_p = sampling.temperature, sampling.top_k, sampling.top_p, sampling.min_p
    logits = logits.float()
    masked_mass = torch.zeros(logits.shape[0])
    if allowed is not None:
        probs = torch.softmax(logits, dim=-1)
        masked_mass = (probs * (~allowed)).sum(-1).cpu()
    if temperature > 0:
        logits = logits / temperature
    if redirect is not None and any(r is not None for r in redirect):
        logits = _redirected(logits, redirect)
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    if temperature == 0:
        return logits.argmax(-1), masked_mass
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop = cum - torch.softmax(sorted_logits, dim=-1) >= top_p  # keep the first token always
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(logits, dim=-1)
    if min_p > 0:
        probs = probs.masked_fill(probs < min_p * probs.max(-1, keepdim=True).values, 0.0)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1), masked_mass


def _redirected(logits: torch.Tensor, redirect: list) -> torch.Tensor:
    """``logits`` with the probability of each row's forbidden ids added to their targets'."""
    probs = torch.softmax(logits, dim=-1)
    for row, moves in enumerate(redirect):
        if moves is not None:
            src, dst = (torch.as_tensor(a, device=logits.device) for a in moves)
            probs[row].index_add_(0, dst, probs[row, src])
    return torch.log(probs)


class TokenRules:
    """What a piece may sample next: what the grammar allows, of the tokens seen in
    training, and of each ``locked`` global attribute (``Tempo``, ``TimeSig``) only the
    value in force once there is one (the ``forced`` value from the start, whatever the
    tokens set: an asked tempo). A state is (grammar state, value in force of each locked
    attribute); BOS starts a new piece."""

    def __init__(self, grammar, kinds, seen: list[int] | None, locked: tuple[str, ...],
                 forced: dict[str, str] | None = None) -> None:
        locked = tuple(dict.fromkeys(locked + tuple(forced or ())))
        self.grammar, self.kinds, self.locked = grammar, kinds, locked
        self.initial = tuple((forced or {}).get(kind) for kind in locked)
        self.everything = np.ones(kinds.size, dtype=bool)
        self.seen = self.everything.copy()
        if seen:
            self.seen[:] = False
            self.seen[seen] = True
        self.values = [kinds.values(kind) for kind in locked]
        self._locks: dict[tuple, np.ndarray] = {}

    def start(self, prefix) -> tuple:
        state = (self.grammar.start([]) if self.grammar else None, self.initial)
        for token in prefix:
            state = self.advance(state, int(token))
        return state

    def advance(self, state: tuple, token: int) -> tuple:
        grammar_state, in_force = state
        if self.grammar is not None:
            grammar_state = self.grammar.advance(grammar_state, token)
        if token == self.kinds.bos_id:
            return grammar_state, self.initial
        return grammar_state, tuple(vs[token][-1] if vs[token] and fixed is None else v
                                    for vs, v, fixed in zip(self.values, in_force, self.initial))

    def allowed(self, state: tuple) -> np.ndarray:
        grammar_state, in_force = state
        grammar = self.grammar.allowed(grammar_state) if self.grammar else self.everything
        locks = self._lock_mask(in_force)
        for extra in (self.seen & locks, locks):  # never leave a piece without a choice
            mask = grammar & extra
            if mask.any():
                return mask
        return grammar

    def redirect(self, state: tuple, allowed: np.ndarray):
        """The grammar's (forbidden ids, allowed ids taking their probability), the targets
        among ``allowed``; None where it has none."""
        moves = getattr(self.grammar, "redirect", lambda s: None)(state[0]) if self.grammar else None
        if moves is None:
            return None
        keep = allowed[moves[1]] & ~allowed[moves[0]]
        return (moves[0][keep], moves[1][keep]) if keep.any() else None

    def _lock_mask(self, in_force: tuple) -> np.ndarray:
        mask = self._locks.get(in_force)
        if mask is None:
            mask = self.everything.copy()
            for values, value in zip(self.values, in_force):
                if value is not None:
                    mask &= np.array([all(v == value for v in vs) for vs in values])
            self._locks[in_force] = mask
        return mask


def locked_attributes(stats: dict | None, from_primer: bool, below: float = LOCK_BELOW) -> tuple[str, ...]:
    """The global attributes a piece keeps once one value is in force: all of them after a
    primer, otherwise those that fewer than ``below`` of the training pieces ever change
    (POP909: 21 % of its songs change tempo, some a hundred times: its pieces keep one)."""
    stats = stats or {}
    share = {TEMPO: stats.get("pieces_changing_tempo"), TIMESIG: stats.get("pieces_changing_timesig")}
    return tuple(kind for kind, n in share.items() if from_primer or (n is not None and n < below))
