"""``make demo``: a piece from the shipped base at once, then the base fine-tuned on the built-in
bach corpus within the demo budget and a piece from that, each rendered.

The chorales are prepared before the fine-tune's budget starts: on a fresh machine music21
converts them once (minutes on two cores), and counted in the budget that would leave the
fine-tune no time at all. The demo says what each part takes."""
from __future__ import annotations

import time
from pathlib import Path

from . import rundir
from .config import Config
from .errors import CadenzaError, printable
from .files import check_outputs, write_bytes_atomic
from .generation.generate import generate, score_bars, to_scores
from .render import render_outputs
from .training.finetune import finetune_config, start_tokenizer
from .training.trainer import prepare_data, train

DEMO_BARS = 32
SOURCE = "bach"
MINUTES = 3.5  # the fine-tune's budget: the whole demo within about 5 minutes on two cores


def prepare_chorales(run_dir: Path, resume: bool, source: str = SOURCE) -> None:
    """SOURCE converted and tokenised exactly as the demo's fine-tune from the base (or the
    resumed run in ``run_dir``) reads it, so its training finds them in the cache."""
    config = Config.load(run_dir / rundir.CONFIG) if resume else finetune_config("base")
    prepare_data(source, config, start_tokenizer(config, run_dir, resume))


def _write_piece(run, output: Path, seed: int, force: bool) -> tuple[dict[str, Path | str], object]:
    """One DEMO_BARS-bar piece from ``run`` to ``output`` (atomically), with its PNG and WAV;
    an existing file is replaced only with ``force``."""
    piece = generate(run, num=1, length=DEMO_BARS, unit="bars", seed=seed)
    score = to_scores(run, piece, length=DEMO_BARS, unit="bars")[0]
    write_bytes_atomic(output, score.dumps_midi(), overwrite=force)  # dump_midi fails silently on a full disk
    outputs: dict[str, Path | str] = {"midi": output}
    outputs.update(render_outputs(output, {"png", "wav"}, overwrite=force))
    pitches = {n.pitch for n in score.tracks[0].notes} if score.tracks else set()
    print(f"generated {score.note_num()} notes, {len(pitches)} distinct pitches, {score_bars(score):.0f} bars")
    if score.note_num() == 0:
        raise CadenzaError("the demo generated no notes")
    return outputs, score


def run_demo(run_dir: Path, output: Path | None = None, force: bool = False) -> dict[str, Path | str]:
    """Generate from the shipped base at once; then fine-tune it on the built-in bach corpus
    within MINUTES (or resume an unfinished demo run) and generate again.
    Before any work, refuses a RUN_DIR that a new training may not use and any existing
    output file (the pieces, their PNGs and WAVs) unless ``force``."""
    run_dir = Path(run_dir)
    # the base's piece goes beside the run folder: that folder must hold nothing but the run
    base_output = Path(output).with_name(f"{Path(output).stem}-base.mid") if output else \
        run_dir.parent / f"{run_dir.name}-base.mid"
    output = Path(output or run_dir / "demo.mid")
    resume = (run_dir / rundir.STATE).exists()
    if not resume:
        rundir.check_new_run_dir(run_dir)
    check_outputs([p.with_suffix(suffix) if suffix else p for p in (base_output, output)
                   for suffix in ("", ".png", ".wav")], force, make_folders=True)
    print("1. the shipped base composer (POP909 songs and Bach chorales), no training:")
    base_output.parent.mkdir(parents=True, exist_ok=True)
    first, _ = _write_piece(rundir.load_run("base"), base_output, seed=1, force=force)
    for name, path in first.items():
        print(f"   {name}: {printable(path)}")
    print("\n2. the bach chorales, prepared once (the first time music21 converts them: minutes) ...")
    started = time.time()
    prepare_chorales(run_dir, resume)
    print(f"prepared in {time.time() - started:.0f} s")
    print(f"\n3. fine-tuning the base on them for {MINUTES:g} minutes ...")
    budget = dict(max_minutes=MINUTES, threads=1)
    result = train(SOURCE, run_dir, resume=resume, start_from=None if resume else "base", overrides=budget)
    steps = result.metrics[-1].get("step") if result.metrics else 0
    print(f"fine-tuned {steps} steps (best loss {result.best_loss:.3f}, stopped: {result.stopped})")
    outputs, _ = _write_piece(rundir.load_run(run_dir), output, seed=1, force=force)
    outputs["loss plot"] = run_dir / rundir.LOSS_PLOT
    for name, path in outputs.items():
        print(f"   {name}: {printable(path)}")
    return {"base " + k: v for k, v in first.items()} | outputs
