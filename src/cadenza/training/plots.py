"""Training plots (matplotlib, Agg)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # noqa: E402
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

# PIL loads its image plugins on the first save; done here, at import, so that a Ctrl-C
# during a training's first loss plot never lands inside an import (which turns it into a
# RuntimeError instead of the KeyboardInterrupt that saves the state)
Image.preinit()


def _num(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _x(row: dict) -> float:
    """Where an evaluation happened, in epochs (fractional for evaluations inside an epoch)."""
    return row["progress"] if row.get("progress") is not None else row["epoch"]


def best_epoch(metrics_rows: list[dict]) -> tuple[float, float, str] | None:
    """(epochs, loss, "validation" | "training") of the lowest validation loss, or of the lowest
    training loss when no row has a validation loss; None without any finite loss."""
    for key, label in (("val_loss", "validation"), ("train_loss", "training")):
        pts = [(_x(r), _num(r.get(key))) for r in metrics_rows]
        pts = [(e, v) for e, v in pts if not math.isnan(v)]
        if pts:
            e, v = min(pts, key=lambda p: (p[1], p[0]))
            return e, v, label
    return None


def plot_loss(metrics_rows: list[dict], png_path) -> Path:
    """Plot training and validation loss per epoch, marking the best epoch; returns the PNG path.

    ``metrics_rows``: dicts with ``epoch``, ``train_loss`` and ``val_loss`` (None/NaN where there
    was no validation). The best epoch is the one with the lowest validation loss, or the lowest
    training loss when there is no validation at all.
    """
    png_path = Path(png_path)
    rows = sorted(metrics_rows, key=_x)
    epochs = np.array([_x(r) for r in rows], dtype=float)
    train = np.array([_num(r.get("train_loss")) for r in rows])
    val = np.array([_num(r.get("val_loss")) for r in rows])
    fig = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    marker = "o" if len(rows) <= 40 else None
    for values, label, color in ((train, "training loss", "tab:blue"), (val, "validation loss", "tab:orange")):
        ok = np.isfinite(values)  # epochs without a value are skipped, not drawn as gaps
        if ok.any():
            ax.plot(epochs[ok], values[ok], marker=marker, ms=3, label=label, color=color)
    best = best_epoch(rows)
    if best is not None:
        e, v, which = best
        ax.axvline(e, color="0.5", linestyle="--", linewidth=1)
        ax.plot([e], [v], marker="*", ms=14, color="tab:red", linestyle="none",
                label=f"best at epoch {e:g} ({which} loss {v:.4f})")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no losses recorded yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("training curve")
    ax.grid(color="0.9")
    if len(epochs) and np.all(epochs == np.round(epochs)):
        ax.xaxis.get_major_locator().set_params(integer=True)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    return png_path
