"""Evaluation report: report.md, report.json and figures for generated vs held-out real pieces."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # noqa: E402
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from cadenza.evaluate.compare import compare_sets
from cadenza.evaluate.features import FEATURES, PITCH_NAMES, set_features
from cadenza.data.scores import load_score
from cadenza.evaluate.sanity import MEASURES, duration_checks, sanity_measures, summarise
from cadenza.evaluate.structure import DEFAULT_BARS, STRUCTURE, compare_structure, excerpt, self_similarity
from cadenza.files import atomic_path, write_bytes_atomic

PITCH_CLASS_PNG = "report_pitch_classes.png"
KDE_PNG = "report_kde.png"
SELF_SIMILARITY_PNG = "report_self_similarity.png"
REPORT_FILES = ("report.md", "report.json", PITCH_CLASS_PNG, KDE_PNG, SELF_SIMILARITY_PNG)
NLL_KEYS = (
    ("nll_per_token", "held-out NLL per token (nats)"),
    ("perplexity", "perplexity"),
    ("nll_per_note", "NLL per note (nats)"),
    ("tokens", "tokens"),
    ("notes", "notes"),
)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def _fmt(x) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if not math.isfinite(x):
        return "n/a"
    if x == int(x):
        return str(int(x))
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.3f}"


def _pm(mean, std) -> str:
    return "n/a" if mean is None or not math.isfinite(float(mean)) else f"{_fmt(mean)} ± {_fmt(std)}"


def _pitch_class_figure(gen_feats, ref_feats, generated, reference) -> Figure:
    from cadenza.render.pianoroll import draw_pianoroll

    fig = Figure(figsize=(16, 13), dpi=100, layout="constrained")
    axes = fig.subplots(3, 1, height_ratios=[1, 1.3, 1.3])
    ax = axes[0]
    x = np.arange(12)
    for offset, feats, label, color in ((-0.2, gen_feats, "generated", "tab:orange"), (0.2, ref_feats, "real", "tab:blue")):
        if feats:
            h = np.stack([f["pitch_class_histogram"] for f in feats])
            ax.bar(x + offset, h.mean(0), width=0.4, yerr=h.std(0), capsize=2, color=color, label=f"{label} ({len(feats)})")
    ax.set_xticks(x, PITCH_NAMES)
    ax.set_ylabel("share of notes")
    ax.set_title("pitch-class histogram (mean ± std over pieces)")
    ax.legend()
    for ax, scores, label in ((axes[1], generated, "generated"), (axes[2], reference, "real")):
        if scores:
            draw_pianoroll(ax, scores[0], f"{label} piece 1 of {len(scores)}")
        else:
            _no_pieces(ax, label)
    return fig


def _no_pieces(ax, label: str) -> None:
    ax.text(0.5, 0.5, f"no {label} pieces", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _save(fig: Figure, path: Path, overwrite: bool) -> None:
    with atomic_path(path, suffix=path.suffix, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=100)


def bar_word(bar_seconds: float | None) -> str:
    """What a bar is in a report: a bar, or for music timed in seconds a window of them."""
    return "bar" if bar_seconds is None else f"{bar_seconds:g}-second window"


def _self_similarity_figure(generated: list, held_out: list, bars: int, word: str = "bar") -> Figure:
    fig = Figure(figsize=(13, 6), dpi=100, layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, scores, label in ((axes[0], generated, "generated"), (axes[1], held_out, "held-out")):
        if not scores:
            _no_pieces(ax, label)
            continue
        sim = self_similarity(excerpt(scores[0], bars))
        edge = (0.5, len(sim) + 0.5)
        ax.imshow(sim, vmin=0, vmax=1, cmap="magma", origin="lower", extent=edge + edge,
                  interpolation="nearest")
        ax.set_title(f"{label} piece 1 of {len(scores)}: {len(sim)} {word}s")
        ax.set_xlabel(word)
        ax.set_ylabel(word)
    fig.colorbar(ScalarMappable(Normalize(0, 1), "magma"), ax=axes, shrink=0.8, label="similarity")
    fig.suptitle(f"{word} self-similarity: 1 for {word}s equal up to transposition, "
                 "else Jaccard index of their (onset, pitch) sets")
    return fig


def _kde_figure(comparison: dict) -> Figure:
    keys = list(FEATURES)
    cols = 3
    rows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(15, 4 * rows), dpi=100, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        c = comparison[key]
        for name, label, style in (
            ("intra_real", "intra-set real", dict(color="tab:blue")),
            ("intra_generated", "intra-set generated", dict(color="tab:orange")),
            ("inter", "inter-set", dict(color="tab:green", linestyle="--")),
        ):
            if len(c[name]):
                ax.plot(c["grid"], c["kde"][name], label=label, **style)
        ax.set_title(f"{c['label']}\nOA {_fmt(c['oa'])}, KL {_fmt(c['kl'])}", fontsize=10)
        ax.set_xlabel("distance")
        ax.set_yticks([])
    for ax in axes[len(keys):]:
        ax.set_axis_off()
    axes[0].legend(fontsize=8)
    fig.suptitle("distance distributions (Gaussian KDE) per feature")
    return fig


def write_report(out_dir, generated: list, reference: list, nll: dict | None, title: str,
                 held_out: list | None = None, bars: int = DEFAULT_BARS, bar_seconds: float | None = None,
                 context: dict | None = None, originality: dict | None = None, overwrite: bool = False) -> dict:
    """Evaluate ``generated`` against held-out ``reference`` pieces and write the report.

    ``generated`` / ``reference``: lists of symusic Scores (MIDI paths are read too). ``nll``:
    ``{"nll_per_token", "perplexity", "nll_per_note", "tokens", "notes"}`` or None ("not
    computed"). The structure section compares the first ``bars`` bars of the generated pieces
    with those of ``held_out`` (default: ``reference``). ``bar_seconds``: the pieces are timed in
    seconds without bars (a performance), and every bar is a window of that many seconds, as
    the report says. ``context``: what :func:`cadenza.evaluate.context.context_use` gives, or
    None (not measured); ``originality``: what
    :func:`cadenza.evaluate.originality.compare_originality` gives, ``{"skipped": why}``, or
    None (not measured). Writes ``report.md``, ``report.json``,
    ``report_pitch_classes.png``, ``report_kde.png`` and ``report_self_similarity.png`` into
    ``out_dir`` (:data:`REPORT_FILES`), each atomically, an existing one replaced only with
    ``overwrite``; returns the dict saved as report.json.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    generated = [load_score(s) for s in generated]
    reference = [load_score(s) for s in reference]
    held_out = reference if held_out is None else [load_score(s) for s in held_out]
    gen_feats, ref_feats = set_features(generated), set_features(reference)
    comparison = compare_sets(gen_feats, ref_feats)
    gen_sanity = [sanity_measures(s) for s in generated]
    ref_sanity = [sanity_measures(s) for s in reference]
    sanity = {"generated": summarise(gen_sanity), "real": summarise(ref_sanity)}

    _save(_pitch_class_figure(gen_feats, ref_feats, generated, reference), out / PITCH_CLASS_PNG, overwrite)
    _save(_kde_figure(comparison), out / KDE_PNG, overwrite)
    _save(_self_similarity_figure(generated, held_out, bars, bar_word(bar_seconds)), out / SELF_SIMILARITY_PNG,
          overwrite)

    features = {}
    for key, c in comparison.items():
        features[key] = {
            k: c[k]
            for k in (
                "label", "vector", "generated", "real", "oa", "kl",
                "intra_generated_mean", "intra_generated_std", "intra_real_mean", "intra_real_std",
                "inter_mean", "inter_std",
            )
        }
    result = _jsonable(
        {
            "title": title,
            "n_generated": len(generated),
            "n_real": len(reference),
            "bar_seconds": bar_seconds,
            "likelihood": dict(nll) if nll is not None else None,
            "context": context,
            "features": features,
            "sanity": sanity,
            "durations": duration_checks(generated, held_out),
            "structure": compare_structure(generated, held_out, bars),
            "originality": originality,
            "pieces": {"generated": gen_sanity, "real": ref_sanity},
            "figures": {"pitch_classes": PITCH_CLASS_PNG, "kde": KDE_PNG, "self_similarity": SELF_SIMILARITY_PNG},
        }
    )
    write_bytes_atomic(out / "report.json", (json.dumps(result, indent=2) + "\n").encode(), overwrite)
    write_bytes_atomic(out / "report.md", _markdown(result).encode(), overwrite)
    return result


def _markdown(r: dict) -> str:
    lines = [f"# {r['title']}", "", f"{r['n_generated']} generated pieces against {r['n_real']} held-out real pieces.", ""]
    if r.get("bar_seconds") is not None:
        lines += [f"These pieces are timed in seconds as played and have no bars: every bar in this report "
                  f"(sanity, structure, self-similarity) is a window of {r['bar_seconds']:g} seconds from the "
                  "piece's start.", ""]
    lines += ["## Likelihood", ""]
    nll = r["likelihood"]
    if nll is None:
        lines += ["Held-out NLL per token, perplexity and NLL per note: not computed.", ""]
    else:
        lines += ["| measure | value |", "|---|---|"]
        lines += [f"| {label} | {_fmt(nll.get(key))} |" for key, label in NLL_KEYS]
        lines += [""]
    lines += _context_markdown(r.get("context"))
    lines += [
        "## Features",
        "",
        "Features of Yang & Lerch (2020). OA: overlapping area of the intra-set (real) and "
        "inter-set distance distributions (closer to 1 is better); KL: KL(intra-set real || "
        "inter-set) in nats (closer to 0 is better).",
        "",
        "| feature | generated mean ± std | real mean ± std | OA | KL |",
        "|---|---|---|---|---|",
    ]
    any_vector = False
    for f in r["features"].values():
        if f["vector"]:
            any_vector = True
            gen = _pm(f["intra_generated_mean"], f["intra_generated_std"])
            real = _pm(f["intra_real_mean"], f["intra_real_std"])
            label = f"{f['label']} †"
        else:
            gen = _pm(f["generated"]["mean"], f["generated"]["std"])
            real = _pm(f["real"]["mean"], f["real"]["std"])
            label = f["label"]
        lines.append(f"| {label} | {gen} | {real} | {_fmt(f['oa'])} | {_fmt(f['kl'])} |")
    if any_vector:
        lines += ["", "† vector feature: mean ± std of the Euclidean intra-set distances between pieces."]
    lines += ["", "## Sanity", "", "| measure | generated mean ± std | real mean ± std |", "|---|---|---|"]
    for key, label in MEASURES.items():
        g, s = r["sanity"]["generated"][key], r["sanity"]["real"][key]
        lines.append(f"| {label} | {_pm(g['mean'], g['std'])} | {_pm(s['mean'], s['std'])} |")
    lines += _durations_markdown(r["durations"])
    lines += _structure_markdown(r["structure"], bar_word(r.get("bar_seconds")))
    lines += _originality_markdown(r.get("originality"), bar_word(r.get("bar_seconds")))
    lines += [
        "",
        "## Figures",
        "",
        f"![pitch-class histograms and piano rolls]({r['figures']['pitch_classes']})",
        "",
        f"![distance distributions per feature]({r['figures']['kde']})",
        "",
        f"![{bar_word(r.get('bar_seconds'))} self-similarity of a generated and a held-out piece]"
        f"({r['figures']['self_similarity']})",
        "",
    ]
    return "\n".join(lines)


def _durations_markdown(d: dict) -> list[str]:
    """Stuck notes show here: far longer than any real one, and the duration histograms apart."""
    f = {k: _fmt(v) for k, v in d.items()}
    return ["", "## Note durations", "",
            f"Notes longer than {f['long_note_s']} s (the held-out notes' 99.9th percentile): generated "
            f"{f['long_share_generated']}, held-out {f['long_share_real']} (share of notes). Duration-histogram "
            f"overlap {f['duration_overlap']} (log-spaced bins, 1 = the same); median duration "
            f"{f['median_duration_generated']} s generated, {f['median_duration_real']} s held-out."]


def _structure_markdown(st: dict, word: str = "bar") -> list[str]:
    pieces = st["pieces"]
    lines = [
        "",
        "## Structure",
        "",
        f"Means over the first {st['bars']} {word}s of {pieces['generated']} generated and {pieces['held_out']} "
        "held-out pieces (shorter held-out pieces whole); ratio: generated / held-out.",
        "",
        "| measure | generated | held-out | ratio |",
        "|---|---|---|---|",
    ]
    for key, label in STRUCTURE.items():
        values = (_fmt(st[side][key]) for side in ("generated", "held_out", "ratio"))
        lines.append(f"| {label} | {' | '.join(values)} |")
    return lines


def _context_markdown(c: dict | None) -> list[str]:
    lines = ["## Context use", ""]
    if c is None:
        return lines + ["Not measured: the model reads fixed windows (the seed network), or no held-out "
                        "piece is long enough.", ""]
    first, last = c["span"]
    lines += [f"NLL per token (nats) of the tokens at positions {first:,}-{last:,} of {c['pieces']} held-out pieces "
              f"(the second half of the {c['second_half_pieces']} shorter than {last:,} tokens; "
              f"{c['skipped_short']} shorter than {c['min_tokens']} tokens skipped), at most {c['max_pieces']} "
              f"pieces and {c['targets_per_piece']} evenly spaced positions a piece: {c['positions']} positions.",
              "", "| context before each position | NLL per token |", "|---|---|",
              f"| the whole piece | {_fmt(c['full'])} |",
              f"| only the {c['window']} tokens before it | {_fmt(c['short'])} |",
              f"| none before the span | {_fmt(c['none'])} |", "",
              f"Gain from the whole piece: (short - full) / short = {100 * c['gain']:.1f}%.", ""]
    return lines


def _originality_markdown(o: dict | None, word: str = "bar") -> list[str]:
    lines = ["", "## Originality", ""]
    if o is None or "skipped" in o:
        return lines + [f"Not measured: {o['skipped'] if o else 'no training pieces given'}."]
    run = f"runs of {o['window_bars']} {word}s"
    lines += [f"The first {o['bars']} {word}s of each piece against the {o['training_pieces']} training pieces "
              f"({o['training_windows']} distinct {run}), onsets and pitches compared {word} by {word}. Longest "
              f"copy: the most consecutive {word}s equal to consecutive {word}s of one training piece; copied {run}: "
              f"the share of a piece's {run} with a note found verbatim in a training piece. Held-out real pieces "
              "say what the corpus shares by itself.", "", "| measure | generated | held-out |", "|---|---|---|"]
    sides = (o["generated"], o["held_out"])

    def row(label: str, cell) -> str:
        return f"| {label} | {' | '.join(cell(side) for side in sides)} |"

    return lines + [
        row(f"longest copy, most in a piece ({word}s)", lambda s: _fmt(s["longest_copied_bars"]["max"])),
        row(f"longest copy, median piece ({word}s)", lambda s: _fmt(s["longest_copied_bars"]["median"])),
        row(f"copied {run} (share)", lambda s: _fmt(s["copied_4bar_share"])),
        row(f"{run} with a note / pieces", lambda s: f"{s['windows']} / {s['pieces']}")]
