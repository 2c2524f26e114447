"""The built-in ``bach`` corpus: the 371 chorales that ship inside music21, converted once
to MIDI and cached under the user's cache directory, keyed by music21's version."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .cache import cache_root


def _convert(args: tuple[str, str]) -> None:
    name, target = args
    from music21 import corpus

    tmp = target + ".part"
    corpus.parse(name).write("midi", fp=tmp)
    os.replace(tmp, target)


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
            with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
                list(pool.map(_convert, todo, chunksize=8))
        done.write_text(f"{len(jobs)}\n")
    return sorted(folder.glob("*.mid"))
