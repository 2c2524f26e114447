"""The built-in ``bach`` corpus: the 371 chorales that ship inside music21, converted once
to MIDI and cached under the user's cache directory, keyed by music21's version."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .cache import cache_root
from .orphans import die_with_parent


def _drop_repeats(score) -> None:
    """Remove repeat barlines (a few chorales have repeats music21 cannot expand)."""
    from music21 import bar, stream

    for measure in score.recurse().getElementsByClass(stream.Measure):
        for side in ("leftBarline", "rightBarline"):
            if isinstance(getattr(measure, side), bar.Repeat):
                setattr(measure, side, None)


def _convert(args: tuple[str, str]) -> str | None:
    """Write one chorale as MIDI; returns an error message instead of raising."""
    name, target = args
    from music21 import corpus

    tmp = target + ".part"
    try:
        score = corpus.parse(name)
        try:
            score.write("midi", fp=tmp)
        except Exception:
            _drop_repeats(score)
            score.write("midi", fp=tmp)
        os.replace(tmp, target)
    except Exception as exc:  # keep the rest of the corpus
        return f"{name}: {type(exc).__name__}: {exc}".splitlines()[0]
    return None


def _shown(results, total: int):
    """``results`` as they come, counted on a progress bar (the conversion takes minutes:
    silence would look like a hang)."""
    from tqdm import tqdm

    return tqdm(results, total=total, unit="chorale", desc="converting", leave=False, mininterval=2.0)


def bach_chorales(workers: int | None = None) -> list[Path]:
    """MIDI paths of the 371 Bach chorales, building the cache on first use."""
    import music21
    from music21 import corpus

    folder = cache_root() / f"bach-chorales-music21-{music21.__version__}"
    done = folder / "COMPLETE"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        names = list(corpus.chorales.Iterator(numberingSystem="riemenschneider",
                                              returnType="filename"))
        jobs = [(name, str(folder / f"{k + 1:03d}_{name.replace('/', '_')}.mid"))
                for k, name in enumerate(names)]
        todo = [job for job in jobs if not Path(job[1]).exists()]
        if todo:
            print(f"building the bach corpus: converting {len(todo)} music21 chorales to MIDI "
                  f"(once) into {folder}", flush=True)
            with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1, initializer=die_with_parent,
                                     initargs=(os.getpid(),)) as pool:  # a killed training leaves no converter
                failed = [msg for msg in _shown(pool.map(_convert, todo, chunksize=8), len(todo)) if msg]
            for msg in failed:
                print(f"  could not convert {msg}", flush=True)
        done.write_text(f"{len(jobs)}\n")
    return sorted(folder.glob("*.mid"))
