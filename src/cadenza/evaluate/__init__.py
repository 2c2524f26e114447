"""Music metrics: Yang & Lerch (2020) features and set comparison, sanity measures, reports.

Modules: :mod:`.features` (per-piece features), :mod:`.compare` (intra/inter-set distances,
KDE, overlapping area, KL), :mod:`.sanity` (scale consistency, polyphony, repetition, empty
bars), :mod:`.structure` (bars, excerpts, repeated bars, groove, tempos and velocities; generated
vs held-out), :mod:`.originality` (spans and 4-bar windows found verbatim in the training pieces),
:mod:`.report` (``write_report`` -> report.md, report.json and figures).
"""

from __future__ import annotations

_LAZY = {
    "piece_features": "cadenza.evaluate.features",
    "compare_sets": "cadenza.evaluate.compare",
    "sanity_measures": "cadenza.evaluate.sanity",
    "structure_measures": "cadenza.evaluate.structure",
    "compare_structure": "cadenza.evaluate.structure",
    "excerpt": "cadenza.evaluate.structure",
    "compare_originality": "cadenza.evaluate.originality",
    "write_report": "cadenza.evaluate.report",
}


def __getattr__(name: str):
    # lazy so that importing the package does not load scipy/matplotlib
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cadenza.evaluate' has no attribute {name!r}")


__all__ = list(_LAZY)
