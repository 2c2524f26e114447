"""``cadenza evaluate RUN_DIR``: held-out likelihood plus generated-vs-real statistics."""
from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..data import representations
from ..data.corpus import BUILTIN, SkipFile, find_midi_files, read_piano_score
from ..data.dataset import PreparedData, prepare
from ..errors import CadenzaError, printable
from ..files import check_outputs
from ..generation.generate import generate, to_scores
from ..pretrained import is_shipped, resolve_run
from ..data.recorded_source import recorded_source
from ..rundir import Run, load_run
from .nll import heldout_nll

LOG_EVERY_S = 10.0  # --quiet: a progress line at most this often
HELD_OUT_ADVICE = "pass the held-out pieces with --data FOLDER"  # when the run's source cannot be read


def say(message: str) -> None:
    print(printable(message), file=sys.stderr, flush=True)  # paths escaped


def progress(items: Sequence, desc: str, quiet: bool = False) -> Iterator:
    """Iterate ``items`` with a tqdm bar on stderr, or with ``quiet`` a plain line now and then."""
    if not quiet:
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, unit="piece", file=sys.stderr, leave=False, dynamic_ncols=True)
        return
    last = time.monotonic()
    for done, item in enumerate(items, 1):
        yield item
        if done == len(items) or time.monotonic() - last >= LOG_EVERY_S:
            say(f"{desc}: {done}/{len(items)}")
            last = time.monotonic()


def _run_corpus(run: Run, quiet: bool, advice: str) -> tuple[PreparedData, str]:
    """The run's recorded source prepared as training prepared it (its splits; a fine-tune's
    tokens by the tokenizer it started from, which it keeps), and the source (one-line error
    ending with ``advice`` when it cannot be searched)."""
    source = recorded_source(run.config.source, run.directory / "config.json", advice)
    fitted = run.representation if run.config.init_from else None
    return prepare(source, run.config.representation, run.config.representation_options, run.config.val_fraction,
                   run.config.seed, log=say, progress_bar=not quiet, fitted=fitted), source


def _read_pieces(run: Run, paths: Sequence, desc: str, quiet: bool = False) -> list:
    """(ids, notes, score) of each readable file, the score decoded from its tokens, so that
    generated, held-out and training music are compared on the same onset grid and velocity
    and tempo bins: as the tokens hold it, as the model sees it."""
    rep, out = run.representation, []
    for path in progress(paths, desc, quiet):
        try:
            score = read_piano_score(path)
        except SkipFile:
            continue
        ids = rep.encode(score)
        if rep.bos_id is not None:
            ids = np.concatenate([[rep.bos_id], ids])
        if len(ids):
            out.append((ids, len(score.tracks[0].notes), rep.decode(ids)))
    return out


def heldout_pieces(run: Run, data: str | None, limit: int | None = None, quiet: bool = False,
                   corpus: tuple[PreparedData, str] | None = None):
    """(ids, notes, score) of held-out pieces (:func:`_read_pieces`): --data files, else the
    run's validation split (of ``corpus``, else found here)."""
    if data is not None:
        paths = find_midi_files(data)
    else:
        prepared, source = corpus or _run_corpus(run, quiet, HELD_OUT_ADVICE)
        paths = prepared.split_files("val", source)
        if not paths:
            raise CadenzaError(f"{run.directory} was trained without a validation split; pass --data SOURCE")
    out = _read_pieces(run, paths[:limit], "reading held-out pieces", quiet)
    if not out:
        raise CadenzaError(f"no readable held-out pieces in {data or 'the validation split'}")
    return out


def _training_corpus(run: Run, data: str | None, quiet: bool) -> tuple[tuple | None, str]:
    """:func:`_run_corpus`, or None and why originality goes unmeasured. Without --data the
    held-out pieces need it too, so a source that cannot be read stays an error."""
    if is_shipped(run.directory):
        return None, "the shipped model's training files are not on this machine"
    if data is None:
        return _run_corpus(run, quiet, HELD_OUT_ADVICE), ""
    source = run.config.source or "bach"
    if source not in BUILTIN and not Path(source).exists():
        return None, printable(f"the run's training source {source} is not on this machine")
    try:
        return _run_corpus(run, quiet, "so the pieces it trained on are not read"), ""
    except CadenzaError as exc:
        return None, str(exc)


def _training_scores(run: Run, prepared: PreparedData, source: str, quiet: bool) -> list:
    """The training split's pieces decoded from the tokens trained on, or where the prepared
    tokenizer is not the run's (one fitted anew on a source changed since), its files through
    the run's (:func:`_read_pieces`)."""
    rep = run.representation
    if representations.digest(prepared.representation()) != representations.digest(rep):
        return [score for *_, score in _read_pieces(run, prepared.split_files("train", source),
                                                    "reading training pieces", quiet)]
    tokens, starts = prepared.tokens("train"), prepared.index("train")[:, 0].tolist()
    spans = list(zip(starts, starts[1:] + [len(tokens)]))
    return [rep.decode(np.asarray(tokens[a:b], dtype=np.int64)) for a, b in
            progress(spans, "decoding training pieces", quiet)]


def _originality(run: Run, corpus: tuple | None, why: str, generated: list, held_out: list, bars: int,
                 quiet: bool) -> dict:
    """:func:`.originality.compare_originality` against the run's training pieces, or why not."""
    from .originality import TrainingIndex, compare_originality, summary_line

    if corpus is not None and not corpus[0].meta["splits"]["train"]["pieces"]:
        corpus, why = None, "the run's training split has no pieces"
    if corpus is None:
        result = {"skipped": why}
    else:
        training = _training_scores(run, *corpus, quiet)
        say(f"indexing the bars of {len(training)} training pieces ...")
        result = compare_originality(generated, held_out, TrainingIndex(training), bars)
    say(summary_line(result))
    return result


def _generate(run: Run, samples: int, bars: int, seed: int) -> list:
    seconds = run.representation.seconds_per_bar
    say(f"generating {samples} pieces of {bars} bars ..." if seconds is None else
        f"generating {samples} pieces of {bars} windows of {seconds:g} s ({bars * seconds:g} s) ...")
    began = time.monotonic()
    scores = to_scores(run, generate(run, num=samples, length=bars, unit="bars", seed=seed), length=bars, unit="bars")
    say(f"generated {samples} pieces ({sum(s.note_num() for s in scores)} notes) in {time.monotonic() - began:.0f} s")
    return scores


def report_dir(run_dir: str | Path, out_dir: str | Path | None) -> Path:
    """Where the report goes: ``out_dir``, else the run folder; a shipped model's folder is
    part of the installed package, so its report goes to ``./NAME-report`` instead."""
    if out_dir is not None:
        return Path(out_dir)
    directory = resolve_run(run_dir)
    return Path(f"{directory.name}-report") if is_shipped(directory) else directory


def evaluate_run(run_dir: str | Path, data: str | None = None, samples: int = 8, seed: int = 0,
                 max_pieces: int | None = 200, bars: int = 32, quiet: bool = False,
                 out_dir: str | Path | None = None, force: bool = False) -> list[Path]:
    """Write report.md and report.json (and figures) into ``out_dir`` (see :func:`report_dir`):
    held-out NLL over up to ``max_pieces`` held-out pieces, context use (:mod:`.context`) over
    the first of them, and ``samples`` generated pieces of ``bars`` bars compared with them (a
    performance run: windows of 4 seconds, as the report says), both against the run's
    training pieces (:mod:`.originality`; skipped, and said so, where those are not on this
    machine). ``quiet``: plain progress lines instead of bars. An existing report file is
    refused before any work unless ``force``, as is a folder that takes no files."""
    from .context import context_use
    from .report import REPORT_FILES, write_report

    if samples < 1 or bars < 1 or (max_pieces is not None and max_pieces < 1):
        raise CadenzaError("--samples, --bars and --max-pieces must be >= 1")
    out = report_dir(run_dir, out_dir)
    check_outputs([out / name for name in REPORT_FILES], force, make_folders=True)
    if data is None and is_shipped(resolve_run(run_dir)):
        raise CadenzaError(f"{run_dir} is a shipped model whose training songs are not on this machine: "
                           f"pass --data FOLDER of held-out pieces")
    run = load_run(run_dir)
    corpus, no_training = _training_corpus(run, data, quiet)
    held = heldout_pieces(run, data, max_pieces, quiet, corpus)
    nll = heldout_nll(run, progress([(ids, notes) for ids, notes, _ in held], "scoring held-out NLL", quiet))
    say("measuring context use ...")
    context = context_use(run.model, [ids for ids, _, _ in held], run.config.seq_len)
    generated = _generate(run, samples, bars, seed)
    held_scores = [score for _, _, score in held]
    originality = _originality(run, corpus, no_training, generated, held_scores, bars, quiet)
    write_report(out, generated, held_scores[:max(samples, 2)], nll,
                 f"{run.directory.name}: {run.config.preset} preset, {run.config.representation} tokens",
                 held_out=held_scores, bars=bars, bar_seconds=run.representation.seconds_per_bar, context=context,
                 originality=originality, overwrite=force)
    return [out / name for name in ("report.md", "report.json")]
