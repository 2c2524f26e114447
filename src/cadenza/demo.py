"""``make demo``: train the demo preset on the built-in bach corpus, write a piece, render it."""
from __future__ import annotations

from pathlib import Path

from . import rundir
from .config import preset
from .errors import CadenzaError
from .files import atomic_path
from .generate import generate, score_bars, to_scores
from .render import render_outputs
from .train import train

DEMO_BARS = 32


def run_demo(run_dir: Path, output: Path | None = None) -> dict[str, Path | str]:
    """Train (or resume an unfinished demo run), then generate and render one piece."""
    run_dir = Path(run_dir)
    resume = (run_dir / rundir.STATE).exists()
    result = train("bach", run_dir, None if resume else preset("demo"), resume=resume)
    run = rundir.load_run(run_dir)
    output = Path(output or run_dir / "demo.mid")
    piece = generate(run, num=1, length=DEMO_BARS, unit="bars", seed=1)
    score = to_scores(run, piece, length=DEMO_BARS, unit="bars")[0]
    with atomic_path(output, output.suffix) as tmp:
        score.dump_midi(str(tmp))
    outputs: dict[str, Path | str] = {"midi": output, "loss plot": run_dir / rundir.LOSS_PLOT}
    outputs.update(render_outputs(output, {"png", "wav"}))
    pitches = {n.pitch for n in score.tracks[0].notes} if score.tracks else set()
    print(f"\ntrained {result.epochs_done} epochs (best loss {result.best_loss:.3f}, stopped: {result.stopped})")
    print(f"generated {score.note_num()} notes, {len(pitches)} distinct pitches, {score_bars(score):.0f} bars")
    for name, path in outputs.items():
        print(f"{name}: {path}")
    if score.note_num() == 0:
        raise CadenzaError("the demo generated no notes")
    return outputs
