"""Set-level comparison of Yang & Lerch (2020): intra/inter-set distances, KDE, OA and KL.

For each feature of :mod:`cadenza.evaluate.features`:

* intra-set distances: every unordered pair of pieces within one set (exhaustive);
* inter-set distances: every (generated, real) pair;
* the distance is Euclidean (absolute difference for scalars, flattened for histograms and
  matrices);
* each distance distribution is smoothed with ``scipy.stats.gaussian_kde`` (Scott's rule) on a
  grid shared by the three distributions of that feature. A degenerate distribution (one value,
  all values equal, or a singular covariance) gets a narrow Gaussian of width
  ``DEGENERATE_WIDTH`` x the grid span around each value instead;
* ``oa`` = overlapping area of the intra-set(real) and inter-set densities (1 = identical),
  ``kl`` = KL(intra-set(real) || inter-set) in nats, both integrated numerically on the grid
  after normalising each density to unit area (the inter-set density is floored at 1e-12 so KL
  stays finite). Either is NaN where a set has too few pieces for a distance.
* distance samples larger than ``MAX_KDE_SAMPLES`` are subsampled (fixed seed) for the KDE;
  the reported distance means and stds use all of them.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.distance import cdist, pdist
from scipy.stats import gaussian_kde

from cadenza.evaluate.features import FEATURES, piece_features

GRID_POINTS = 512
#: larger distance samples are randomly (seed 0) subsampled to this size for the KDE only
MAX_KDE_SAMPLES = 10_000
DEGENERATE_WIDTH = 0.02
_FLOOR = 1e-12
_trapz = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz

Features = dict  # feature key -> float | np.ndarray


def _as_features(items: list) -> list[Features]:
    return [x if isinstance(x, dict) else piece_features(x) for x in items]


def _matrix(feats: list[Features], key: str) -> np.ndarray:
    """(n_pieces, dim) array of one feature."""
    if not feats:
        return np.zeros((0, 1))
    return np.stack([np.atleast_1d(np.asarray(f[key], dtype=np.float64)).ravel() for f in feats])


def intra_distances(x: np.ndarray) -> np.ndarray:
    """Euclidean distances of every unordered pair of rows of ``x``."""
    if len(x) < 2:
        return np.zeros(0)
    return pdist(x)  # pairs (0,1), (0,2), ... without an (n_pairs, dim) temporary


def inter_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distances of every pair (row of ``x``, row of ``y``)."""
    if len(x) == 0 or len(y) == 0:
        return np.zeros(0)
    return cdist(x, y).ravel()


def make_grid(*samples: np.ndarray, points: int = GRID_POINTS) -> np.ndarray:
    """A grid covering all samples plus a margin: a quarter of their span or three Scott
    bandwidths, whichever is wider, so the KDE tails are not cut off."""
    arrays = [np.asarray(s, dtype=np.float64).ravel() for s in samples]
    values = np.concatenate(arrays + [np.zeros(0)])
    if len(values) == 0:
        return np.linspace(0.0, 1.0, points)
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    bandwidth = max([a.std() * len(a) ** -0.2 for a in arrays if len(a) > 1] + [0.0])
    margin = max(0.25 * span, 3.0 * bandwidth)
    return np.linspace(lo - margin, hi + margin, points)


def kde(samples: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Density of ``samples`` on ``grid`` with unit area (all zeros if there are no samples)."""
    samples = np.asarray(samples, dtype=np.float64).ravel()
    if len(samples) == 0:
        return np.zeros_like(grid)
    if len(samples) > MAX_KDE_SAMPLES:
        samples = np.random.default_rng(0).choice(samples, MAX_KDE_SAMPLES, replace=False)
    dens = None
    if len(samples) >= 2 and np.ptp(samples) > 0:
        try:
            dens = gaussian_kde(samples)(grid)
        except (np.linalg.LinAlgError, ValueError):
            dens = None
    if dens is None or not np.all(np.isfinite(dens)) or dens.sum() <= 0:
        width = DEGENERATE_WIDTH * (grid[-1] - grid[0] if grid[-1] > grid[0] else 1.0)
        z = (grid[None, :] - samples[:, None]) / width
        dens = np.exp(-0.5 * z * z).sum(axis=0)
    area = _trapz(dens, grid)
    return dens / area if area > 0 else dens


def overlap_area(p: np.ndarray, q: np.ndarray, grid: np.ndarray) -> float:
    """Overlapping area of two densities on ``grid``."""
    return float(_trapz(np.minimum(p, q), grid))


def kl_divergence(p: np.ndarray, q: np.ndarray, grid: np.ndarray) -> float:
    """KL(p || q) in nats, integrated on ``grid``."""
    mask = p > _FLOOR
    integrand = np.zeros_like(p)
    integrand[mask] = p[mask] * np.log(p[mask] / np.maximum(q[mask], _FLOOR))
    return float(max(_trapz(integrand, grid), 0.0))


def _stats(x: np.ndarray) -> dict:
    if len(x) == 0:
        return {"mean": math.nan, "std": math.nan}
    m, s = x.mean(axis=0), x.std(axis=0)
    if x.shape[1] == 1:
        return {"mean": float(m[0]), "std": float(s[0])}
    return {"mean": m, "std": s}


def compare_sets(generated: list, reference: list) -> dict[str, dict]:
    """Compare a generated set with a real (held-out) set, feature by feature.

    ``generated`` and ``reference`` are lists of Scores, MIDI paths or feature dicts from
    :func:`~cadenza.evaluate.features.piece_features`. Returns, per feature key::

        {"label", "vector", "generated": {"mean", "std"}, "real": {"mean", "std"},
         "intra_generated", "intra_real", "inter"  (distance arrays),
         "intra_generated_mean", "intra_real_mean", "inter_mean", "grid",
         "kde": {"intra_generated", "intra_real", "inter"}, "oa", "kl"}

    ``mean``/``std`` are floats for scalar features and arrays for vector ones.
    """
    gen, real = _as_features(generated), _as_features(reference)
    out: dict[str, dict] = {}
    for key, (label, vector) in FEATURES.items():
        xg, xr = _matrix(gen, key), _matrix(real, key)
        d_gg, d_rr, d_gr = intra_distances(xg), intra_distances(xr), inter_distances(xg, xr)
        grid = make_grid(d_gg, d_rr, d_gr)
        dens = {"intra_generated": kde(d_gg, grid), "intra_real": kde(d_rr, grid), "inter": kde(d_gr, grid)}
        if len(d_rr) and len(d_gr):
            oa = overlap_area(dens["intra_real"], dens["inter"], grid)
            kl = kl_divergence(dens["intra_real"], dens["inter"], grid)
        else:
            oa = kl = math.nan
        out[key] = {
            "label": label,
            "vector": vector,
            "generated": _stats(xg),
            "real": _stats(xr),
            "intra_generated": d_gg,
            "intra_real": d_rr,
            "inter": d_gr,
            "intra_generated_mean": float(d_gg.mean()) if len(d_gg) else math.nan,
            "intra_generated_std": float(d_gg.std()) if len(d_gg) else math.nan,
            "intra_real_mean": float(d_rr.mean()) if len(d_rr) else math.nan,
            "intra_real_std": float(d_rr.std()) if len(d_rr) else math.nan,
            "inter_mean": float(d_gr.mean()) if len(d_gr) else math.nan,
            "inter_std": float(d_gr.std()) if len(d_gr) else math.nan,
            "grid": grid,
            "kde": dens,
            "oa": oa,
            "kl": kl,
        }
    return out
