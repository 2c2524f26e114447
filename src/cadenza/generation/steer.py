"""Steering generation to a key and a tempo: ``generate(..., steer=Steer(key="A:minor", tempo=96))``.

Tempo: every tempo event of the new music is the asked bpm; where the tokens have Tempo
tokens, the context's are set to the asked tempo's nearest bin and sampling may write no
other (the tempo lock of :class:`~cadenza.generation.sampling.TokenRules`).

Key: the model was trained on transposed music and knows no key of its own. Each piece
starts from a training window whose estimated mode is the asked one, transposed at the
token level to the asked tonic, so the model continues music already in that key; each piece
is :data:`KEY_PARTICLES` pieces sampled side by side and redrawn at every bar from those whose
notes so far are most clearly in the asked key (:class:`BarFit`), so a piece that drifts to the
relative major is dropped while it drifts; every finished piece is checked with music21's key
estimate (``analyze('key')``: the
Krumhansl-Schmuckler method with the Aarden-Essen profiles), the pieces that miss are drawn
again (:data:`EXTRA_ROUNDS` rounds at most) and, still missing, kept with a warning.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from symusic import KeySignature, Score, Tempo

from ..data.controls import DENSITY_HELP, TARGETS, closed_bars, has_controls, level_token
from ..data.layouts import model_vocab
from ..data.representations.midi_tokens import TEMPO_RANGE
from ..data.token_stats import TEMPO, TokenKinds
from ..errors import CadenzaError
from ..spec import Spec
from .particles import Particles

MODES = ("major", "minor")
EXTRA_ROUNDS = 3          # rounds of redrawing the pieces whose key estimate misses ...
REDRAW_FACTOR = 2         # ... each drawing this many candidates per missing piece (at most the batch asked)
KEY_METHOD = "key"        # music21's standard key estimate
CLEAR_MARGIN = 0.05       # windows whose key beats the runner-up's correlation by this start pieces
TEMPO_SPEC = Spec(float, *TEMPO_RANGE)  # the tokenizers' tempo range, in bpm
KEY_HELP = "a tonic and a mode, e.g. C:major, A:minor, F#:minor, Bb:major"
DENSITY_PARTICLES = 8     # pieces sampled per candidate with a density asked, resampled at every bar ...
KEY_PARTICLES = 4         # ... with a key asked (no density), chosen on seed 1 of benchmarks/steer.py ...
SPREAD = 0.15             # ... by how near each bar's notes came to the target (log ratio; +-25%: 0.22) ...
KEY_SHARPNESS = 20.0      # ... and by the asked key's lead over the others in the piece so far


def parse_key(text: str):
    """The music21 ``Key`` named ``TONIC:MODE`` (``TONIC MODE``, or music21's own ``a``
    for A minor); a :class:`CadenzaError` for anything else."""
    from music21 import key, pitch

    tonic, _, mode = str(text).strip().replace(" ", ":").partition(":")
    mode = mode.lower() or ("minor" if tonic[:1].islower() else "major")
    try:
        if mode not in MODES or not tonic or len(tonic) > 3:
            raise ValueError(text)
        name = pitch.Pitch(tonic[0].upper() + tonic[1:]).name
        return key.Key(name, mode)
    except Exception:
        raise CadenzaError(f"unknown key {text!r}: say {KEY_HELP}") from None


def key_name(found) -> str:
    """``A:minor``, ``Bb:major``: the form the CLI takes."""
    return f"{found.tonic.name.replace('-', 'b')}:{found.mode}"


@dataclass(frozen=True)
class Steer:
    """The key (``TONIC:MODE``), tempo (bpm) and density (``low``, ``medium``, ``high``) asked
    of the pieces; None leaves each free. Checked when the value is made (one-line
    :class:`CadenzaError`)."""
    key: str | None = None
    tempo: float | None = None
    density: str | None = None

    def __post_init__(self) -> None:
        if self.key is not None:
            parse_key(self.key)
        if self.tempo is not None:
            TEMPO_SPEC.check("tempo", self.tempo)
        if self.density is not None and self.density not in TARGETS:
            raise CadenzaError(f"unknown density {self.density!r}: say {DENSITY_HELP}")

    def __bool__(self) -> bool:
        return self.key is not None or self.tempo is not None or self.density is not None

    def matches(self, found) -> bool:
        """Whether a key estimate is the asked key (tonic pitch class and mode)."""
        asked = parse_key(self.key)
        return found is not None and found.mode == asked.mode and found.tonic.pitchClass == asked.tonic.pitchClass


def check_steer(steer: Steer | None, run, primed: bool) -> None:
    """Refusals that depend on the run or the primer: a tempo for music timed in seconds,
    a key where the primer sets it."""
    if not steer:
        return
    if steer.tempo is not None and getattr(run.representation, "seconds_per_bar", None) is not None:
        raise CadenzaError(f"--tempo needs music timed in beats; the {run.config.representation} "
                           f"representation keeps time in seconds")
    if steer.key is not None and primed:
        raise CadenzaError("--key cannot be used with --primer: the primer sets the key")
    if steer.key is not None and run.primers is None:
        raise CadenzaError(f"--key starts from training windows, and {run.directory} has none")
    if steer.density is not None and not has_controls(run.config):
        raise CadenzaError(f"--density needs a run trained with density controls, and {run.directory} was not: "
                           f"fine-tune it with them: cadenza train FOLDER --from {run.directory} --controls 0.5 "
                           f"--run-dir NEW")


# -- key estimate ----------------------------------------------------------------------
def estimate_key(score: Score):
    """music21's key estimate of ``score``'s notes (None without notes)."""
    from music21 import note, stream

    tracks = [t.notes.numpy() for t in score.tracks if len(t.notes)]
    if not tracks:
        return None
    s = stream.Stream()
    for cols in tracks:
        for time, dur, pitch in zip(cols["time"].tolist(), cols["duration"].tolist(), cols["pitch"].tolist()):
            n = note.Note(pitch)
            n.quarterLength = max(dur, 1) / score.tpq
            s.coreInsert(time / score.tpq, n)
    s.coreElementsChanged()
    return s.analyze(KEY_METHOD)


_WINDOW_KEYS: dict[bytes, list] = {}


def window_keys(rep, windows: np.ndarray) -> list:
    """The key estimate of each training window, computed once per process (a run's
    windows are a few dozen: about a second)."""
    digest = hashlib.sha1(np.ascontiguousarray(windows).tobytes()).digest()
    if digest not in _WINDOW_KEYS:
        _WINDOW_KEYS[digest] = [estimate_key(rep.decode(w.tolist())) for w in windows]
    return _WINDOW_KEYS[digest]


# -- the context -----------------------------------------------------------------------
def keyed_windows(rep, kinds: TokenKinds, windows: np.ndarray, asked: str) -> np.ndarray:
    """The windows whose estimated mode is the asked one, each moved to the asked tonic
    (the octave direction that keeps every pitch in the vocabulary; windows that cannot are
    left out); of those, the ones whose key is clear (:data:`CLEAR_MARGIN`) where there are
    any: a window as close to its relative major as to its minor leads pieces off key."""
    target = parse_key(asked)
    if not hasattr(rep, "transposition_table") or rep.transposition_table(0) is None:
        raise CadenzaError("--key needs tokens that can be transposed one by one (not BPE)")
    out, clear = [], []
    for window, found in zip(windows, window_keys(rep, windows)):
        if found is None or found.mode != target.mode:
            continue
        up = (target.tonic.pitchClass - found.tonic.pitchClass) % 12
        moves = (rep.transposition_table(shift)[window] for shift in sorted((up, up - 12), key=abs))
        moved = next((m for m in moves if (m >= 0).all()), None)
        if moved is not None:
            out.append(moved)
            clear.append(found.correlationCoefficient - found.alternateInterpretations[0].correlationCoefficient
                         >= CLEAR_MARGIN)
    if not out:
        raise CadenzaError(f"no training window of this run can start a piece in {asked}")
    return np.stack([w for w, c in zip(out, clear) if c] if any(clear) else out)


def windows_near(kinds: TokenKinds, windows: np.ndarray, level: str) -> np.ndarray:
    """The windows whose bars hold about the level's notes (the median of their closed bars
    within +-25% of its target; else the quarter nearest it), so a piece starts from music of
    that density and the model goes on in it."""
    target, pitches = TARGETS[level], kinds.count("Pitch")
    medians = []
    for window in windows:
        counts = closed_bars(window, kinds.bars, pitches)[1]
        medians.append(np.median(counts) if len(counts) else np.nan)
    off = np.abs(np.log((np.nan_to_num(np.array(medians), nan=1e6) + 1) / (target + 1)))
    near = off <= math.log(1.25)
    return windows[near] if near.any() else windows[np.argsort(off)[:max(1, len(windows) // 4)]]


def _single_tempos(kinds: TokenKinds) -> np.ndarray:
    """Which ids are one Tempo token and nothing else (not a BPE merge)."""
    return np.array([len(vs) == 1 and len(p) == 1 for vs, p in zip(kinds.values(TEMPO), kinds.parts)], dtype=bool)


def tempo_token(kinds: TokenKinds, bpm: float) -> tuple[int, str] | None:
    """The single Tempo token nearest ``bpm`` (on a log scale, as the bins are) and its value."""
    singles = [(int(i), kinds.values(TEMPO)[i][0]) for i in np.flatnonzero(_single_tempos(kinds))]
    if not singles:
        return None
    return min(singles, key=lambda t: abs(math.log(float(t[1]) / bpm)))


def with_tempo(kinds: TokenKinds, context: np.ndarray, bpm: float) -> np.ndarray:
    """``context`` (ids, one row or several) with each single Tempo token set to the bin
    nearest ``bpm``."""
    nearest = tempo_token(kinds, bpm)
    if nearest is None:
        return context
    return np.where(_single_tempos(kinds)[context], nearest[0], context)


def forced(kinds: TokenKinds, steer: Steer | None) -> dict[str, str]:
    """The attribute values sampling keeps in force from the start: the asked tempo's bin."""
    nearest = tempo_token(kinds, steer.tempo) if steer and steer.tempo is not None else None
    return {TEMPO: nearest[1]} if nearest else {}


class DensityRules:
    """A run's rules, and after every Bar token the asked density level's token (a run trained
    with controls, :mod:`cadenza.data.controls`): the model then writes a bar of about that many
    notes. No Rest, so every bar opens with a Bar token and gets its level. A state is (the
    rules' state, whether the level's token comes next)."""

    def __init__(self, rules, run, kinds: TokenKinds, level: str) -> None:
        self.rules, self.token = rules, level_token(run.representation, level)
        self.bars, self.size = kinds.bars > 0, kinds.size
        self.width = model_vocab(run.config, run.representation)
        self.free = np.zeros(self.width, dtype=bool)
        self.free[:kinds.size] = kinds.count("Rest") == 0
        self.level = np.zeros(self.width, dtype=bool)
        self.level[self.token] = True

    def start(self, context) -> tuple:
        return self.rules.start(context), len(context) > 0 and bool(self.bars[int(context[-1])])

    def advance(self, state: tuple, token: int) -> tuple:
        if token == self.token:
            return state[0], False
        return self.rules.advance(state[0], token), bool(self.bars[token])

    def allowed(self, state: tuple) -> np.ndarray:
        if state[1]:
            return self.level
        mask = np.zeros(self.width, dtype=bool)
        mask[:self.size] = self.rules.allowed(state[0])
        return mask & self.free if (mask & self.free).any() else mask

    def redirect(self, state: tuple, allowed: np.ndarray):
        return None if state[1] else self.rules.redirect(state[0], allowed[:self.size])


class BarFit(Particles):
    """Particles resampled at every bar by how near its notes came to the asked density's target
    and how clearly the piece so far is in the asked key: the model trained with controls follows
    the level's token loosely, and a piece started in a key may drift to another, so of the bars
    written the ones that keep to what was asked are kept. Log-weights: ``-(log ratio)^2 / 2
    SPREAD^2`` for the density (the ratio of notes + 1 to target + 1), and ``KEY_SHARPNESS``
    times the margin by which the asked key's profile correlates with the pitch classes of the
    piece so far better than any other key's (the Krumhansl-Schmuckler estimate with music21's
    Aarden-Essen profiles). A piece's ``scores`` are its notes per bar by pitch class, the last
    bar open."""

    def __init__(self, size: int, rng: np.random.Generator, kinds: TokenKinds, steer: Steer) -> None:
        super().__init__(size, 1, rng)
        self.bars, self.classes = kinds.bars > 0, _pitch_classes(kinds)
        self.target = TARGETS[steer.density] if steer.density else None
        self.profiles = _key_profiles(parse_key(steer.key)) if steer.key else None

    def observe(self, piece, logp) -> None:
        token = piece.new[-1]
        if not piece.scores:
            piece.scores.append(np.zeros(12))
        if token < len(self.bars):
            if self.bars[token]:
                piece.scores.append(np.zeros(12))
            else:
                piece.scores[-1] = piece.scores[-1] + self.classes[token]

    def judged(self, piece) -> int:
        return max(0, len(piece.scores) - 1)

    def weight(self, piece, k: int) -> float:
        weight = 0.0
        if self.target is not None:
            weight -= math.log((piece.scores[k].sum() + 1) / (self.target + 1)) ** 2 / (2 * SPREAD ** 2)
        if self.profiles is not None:
            so_far = np.sum(piece.scores[:k + 1], axis=0)
            if so_far.std() > 0:
                fit = np.corrcoef(self.profiles, so_far[None])[-1, :-1]  # each key's profile against the piece
                weight += KEY_SHARPNESS * (fit[0] - fit[1:].max())
        return weight


def particles(steer: Steer | None) -> int:
    """Pieces sampled per candidate: :data:`DENSITY_PARTICLES` with a density asked,
    :data:`KEY_PARTICLES` with a key alone, else one."""
    return DENSITY_PARTICLES if steer and steer.density else KEY_PARTICLES if steer and steer.key else 1


def _pitch_classes(kinds: TokenKinds) -> np.ndarray:
    """Per token, its notes by pitch class ``[tokens, 12]``."""
    classes = np.zeros((kinds.size, 12))
    for token, values in enumerate(kinds.values("Pitch")):
        for v in values:
            classes[token, int(v) % 12] += 1
    return classes


def _key_profiles(asked) -> np.ndarray:
    """The 24 keys' Aarden-Essen profiles (music21's, as its ``analyze('key')`` weighs them), the
    asked key's first: ``[24, 12]`` by pitch class."""
    from music21.analysis.discrete import AardenEssen

    weights = {mode: np.array(AardenEssen().getWeights(mode)) for mode in MODES}
    first = MODES.index(asked.mode) * 12 + asked.tonic.pitchClass
    keys = [np.roll(weights[mode], tonic) for mode in MODES for tonic in range(12)]
    return np.array(keys[first:first + 1] + keys[:first] + keys[first + 1:])


def without_controls(new, size: int) -> np.ndarray:
    """The tokens of ``new`` the tokenizer has (a density level's tokens left out)."""
    new = np.asarray(new, dtype=np.int64)
    return new[new < size]


# -- the written pieces -----------------------------------------------------------------
def set_tempo(score: Score, bpm: float, start: int = 0) -> Score:
    """``score`` at ``bpm`` from tick ``start`` on (tempos before it kept)."""
    score.tempos = [t for t in score.tempos if t.time < start] + [Tempo(start, float(bpm))]
    return score


def set_key_signature(score: Score, asked: str) -> Score:
    """The asked key written as the piece's key signature."""
    k = parse_key(asked)
    score.key_signatures = [KeySignature(0, k.sharps, 0 if k.mode == "major" else 1)]
    return score


def redraw_off_key(steer: Steer, result, scores_of: Callable, draw: Callable[[int], object]):
    """``result`` with each piece whose key estimate misses ``steer.key`` drawn again with
    ``draw(n)`` (a Generated of n pieces; :data:`REDRAW_FACTOR` candidates per missing
    piece, the first in key taken), :data:`EXTRA_ROUNDS` rounds at most; sets
    ``result.keys`` (the estimate of each piece, named) and ``result.redraws``, and adds a
    warning for each piece still off key."""
    found = [estimate_key(s) for s in scores_of(result)]
    missing = [k for k, f in enumerate(found) if not steer.matches(f)]
    for _ in range(EXTRA_ROUNDS):
        if not missing:
            break
        again = draw(min(REDRAW_FACTOR * len(missing), max(len(result.new), len(missing))))  # within the checked batch
        result.redraws += len(missing)
        again_found = [estimate_key(s) for s in scores_of(again)]
        in_key = [j for j, f in enumerate(again_found) if steer.matches(f)]
        others = [j for j in range(len(again_found)) if j not in in_key]
        for i, j in zip(missing, in_key + others):
            result.context[i], result.new[i], found[i] = again.context[j], again.new[j], again_found[j]
            result.reached[i] = again.reached[j]
            result.capped = sorted((set(result.capped) - {i}) | ({i} if j in again.capped else set()))
        missing = [k for k in missing if not steer.matches(found[k])]
    result.keys = [key_name(f) if f is not None else "none" for f in found]
    result.warnings += [f"piece {k + 1} is in {result.keys[k]} by the key estimate, not {steer.key} "
                        f"(after {EXTRA_ROUNDS} redraws)" for k in missing]
    return result

