"""Piano-roll pictures with matplotlib (Agg, no pyplot state).

Time axis rule: a piece is drawn in **bars** (from its time signatures, 4/4 where it has none)
when it is *quantised*, i.e. at least :data:`GRID_SHARE` of its note onsets lie within 1/64 beat
of a 32nd-note or 8th-triplet position of the beat grid (a random onset does so with a
probability of about 0.31). Otherwise - live performances recorded against a default 120 bpm
grid, say - bar numbers are meaningless and the roll is drawn in **seconds**.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (before anything imports pyplot)
import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure

from cadenza.data.corpus.performed import GRID_SHARE, is_quantised  # noqa: F401  (GRID_SHARE: the rule above)
from cadenza.files import atomic_path
from cadenza.data.scores import ScoreLike, bar_starts, load_score, merged_notes

FIGSIZE = (16, 6)
DPI = 100
VELOCITY_CMAP = ListedColormap(matplotlib.colormaps["Blues"](np.linspace(0.35, 1.0, 256)), name="velocity")


def pitch_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI pitch with middle C (60) = C4."""
    names = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
    return f"{names[pitch % 12]}{pitch // 12 - 1}"


def _fmt_seconds(sec: float) -> str:
    sec = int(round(sec))
    return f"{sec // 60}:{sec % 60:02d}"


AXES = ("auto", "bars", "seconds")


def _pedal_band(ax, score, lo: float) -> None:
    """The sustain pedal's down spans as a grey band under the lowest note, labelled."""
    spans = [(p.time, p.time + p.duration) for t in score.to("second").tracks for p in t.pedals]
    if spans:
        ax.broken_barh([(a, b - a) for a, b in spans], (lo - 1.4, 0.8), facecolors="0.6", zorder=1)
        ax.text(0.002, lo - 1.0, "pedal", transform=ax.get_yaxis_transform(), fontsize=7, va="center",
                color="0.3")


def draw_pianoroll(ax, score: ScoreLike, name: str = "", colorbar: bool = True, axis: str = "auto") -> dict:
    """Draw a piano roll of ``score`` on a matplotlib Axes; returns ``{"mode", "bars", "seconds"}``.

    ``mode`` is "bars" or "seconds": ``axis``, or with "auto" chosen as the module docstring
    says. The Axes title is ``name - m:ss, N bars`` (or ``m:ss, unquantised``; ``m:ss,
    performance`` when the seconds axis was asked); in seconds, the sustain pedal is drawn
    as a band under the notes.
    """
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, not {axis!r}")
    score = load_score(score)
    beats = merged_notes(score)
    secs = merged_notes(score, "second")
    n = len(beats["pitch"])
    seconds = float((secs["time"] + secs["duration"]).max()) if n else 0.0
    info = {"mode": "bars", "bars": 0, "seconds": seconds}
    if n == 0:
        ax.text(0.5, 0.5, "no notes", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
        ax.set_title(f"{name} - empty" if name else "empty")
        return info
    end_beats = float((beats["time"] + beats["duration"]).max())
    if axis == "bars" or (axis == "auto" and is_quantised(beats["time"])):
        starts = bar_starts(score, end_beats + 64.0)  # bars past the end so every time maps
        numbers = np.arange(len(starts)) + 1.0
        x0 = np.interp(beats["time"], starts, numbers)
        x1 = np.interp(beats["time"] + beats["duration"], starts, numbers)
        nbars = int(np.ceil(np.interp(end_beats, starts, numbers) - 1 - 1e-9))
        nbars = max(nbars, 1)
        info["bars"] = nbars
        lines = np.arange(1, nbars + 2)
        ax.vlines(lines, 0, 128, colors="0.85", linewidth=0.6, zorder=0)
        ax.vlines(lines[(lines - 1) % 4 == 0], 0, 128, colors="0.6", linewidth=0.9, zorder=0)
        step = next(s for s in (1, 2, 4, 8, 16, 32, 64, 128, 10**9) if nbars / s <= 32)
        ax.set_xticks(np.arange(1, nbars + 2, step))
        ax.set_xlim(1, nbars + 1)
        ax.set_xlabel("bar")
        length = f"{_fmt_seconds(seconds)}, {nbars} bar{'s' if nbars != 1 else ''}"
    else:
        info["mode"] = "seconds"
        x0, x1 = secs["time"], secs["time"] + secs["duration"]
        ax.set_xlim(0, max(seconds, 1e-3))
        ax.grid(axis="x", color="0.85", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_xlabel("time (s)")
        length = f"{_fmt_seconds(seconds)}, {'performance' if axis == 'seconds' else 'unquantised'}"
    x1 = np.maximum(x1, x0 + 1e-3)
    pitch = beats["pitch"]
    y0, y1 = pitch - 0.4, pitch + 0.4
    verts = np.stack([np.stack([x0, y0], 1), np.stack([x0, y1], 1), np.stack([x1, y1], 1), np.stack([x1, y0], 1)], 1)
    coll = PolyCollection(verts, array=beats["velocity"], cmap=VELOCITY_CMAP, norm=Normalize(0, 127), linewidths=0)
    ax.add_collection(coll)
    lo, hi = int(pitch.min()), int(pitch.max())
    if hi - lo < 24:  # show at least two octaves so a melody is not blown up
        mid = (lo + hi) / 2
        lo, hi = int(np.floor(mid - 12)), int(np.ceil(mid + 12))
    ax.set_ylim(lo - 1.5, hi + 1.5)
    if info["mode"] == "seconds":
        _pedal_band(ax, score, lo)
    cs = [p for p in range(0, 128, 12) if lo - 1 <= p <= hi + 1]
    ax.set_yticks(cs, [pitch_name(p) for p in cs])
    ax.hlines(cs, *ax.get_xlim(), colors="0.75", linewidth=0.5, linestyles=":", zorder=0)
    ax.set_ylabel("pitch")
    ax.set_title(f"{name} - {length}" if name else length)
    if colorbar:
        ax.figure.colorbar(coll, ax=ax, pad=0.01, fraction=0.03, label="velocity")
    return info


def render_pianoroll(midi_path_or_score: ScoreLike, png_path, title: str | None = None,
                     overwrite: bool = True, axis: str = "auto") -> Path:
    """Write a 1600x600 px piano-roll PNG of a MIDI file or Score atomically; returns the
    PNG path. ``overwrite=False`` refuses to replace an existing file; ``axis`` as
    :func:`draw_pianoroll`.

    The title is ``title`` (if given) and the file name with the piece's length.
    """
    png_path = Path(png_path)
    if isinstance(midi_path_or_score, (str, Path)):
        name = Path(midi_path_or_score).name
    else:
        name = png_path.with_suffix(".mid").name
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    label = f"{title}: {name}" if title else name
    draw_pianoroll(ax, midi_path_or_score, label, axis=axis)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(png_path, ".png", overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=DPI)
    return png_path
