"""Do cadenza's seed tokens equal the notebook's? Its music21 loop, run as written, on real files.

    python benchmarks/seed_agreement.py [--asap DIR] [--pop909 DIR] [--limit N]
        [--cache DIR] [--out FILE.json]

For every ASAP Bach score (``midi_score.mid``) and POP909 song: the notebook's
``obtain_notes`` loop (``converter.parse``, ``partitionByInstrument``, the first part) with
music21, and cadenza's seed representation on the same file as ``cadenza prepare`` reads
it. The notebook keeps one part; where that part holds every note of the file the two
token lists must be identical. Where it loses tracks (another instrument name, or no
program change and no name: the left hand of every ASAP score) cadenza keeps them, so
the check is made again on the tracks the notebook kept. music21's results are cached in
``--cache`` (by file content), so a second run costs only cadenza's side.

Prints the counts and, for each file that differs, the first differing position.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from cadenza.data.corpus import SkipFile, read_piano_score
from cadenza.files import write_bytes_atomic
from cadenza.seed.representation import score_to_seed_tokens

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "data"


def notebook_loop(path):
    """The notebook's obtain_notes() loop on one file, as written; also returns what it
    parsed, for :func:`kept_tracks`."""
    from music21 import chord, converter, instrument, note

    notes = []
    s2 = None
    parsed_song = converter.parse(str(path))
    try:
        s2 = instrument.partitionByInstrument(parsed_song)
        intermediate_notes = s2.parts[0].recurse()
    except Exception:
        intermediate_notes = parsed_song.flat.notes
    for individual_note in intermediate_notes:
        if isinstance(individual_note, note.Note):
            notes.append(str(individual_note.pitch))
        elif isinstance(individual_note, chord.Chord):
            notes.append('.'.join(str(n) for n in individual_note.normalOrder))
    return notes, parsed_song, s2


def kept_tracks(parsed_song, s2) -> tuple[list[int], bool]:
    """Which of the file's tracks with notes the notebook's part drew from, and whether
    it holds every note of the file."""
    track_of = {id(n): k for k, part in enumerate(parsed_song.parts) for n in part.recurse().notes}
    ours = list(s2.parts[0].recurse().notes) if s2 is not None and s2.parts else list(parsed_song.flat.notes)
    return sorted({track_of[id(n)] for n in ours if id(n) in track_of}), len(ours) == len(track_of)


def cadenza_tokens(path, tracks: list[int] | None = None) -> list[str]:
    """cadenza's seed tokens, reading the file as ``cadenza prepare`` does; ``tracks``:
    only these of the file's tracks with notes."""
    score = read_piano_score(Path(path), merge=False)
    if tracks is not None:  # symusic's tracks, as the notebook's part keeps them
        from symusic import Score

        full = Score(str(path))
        keep = [t for k, t in enumerate(t for t in full.tracks if len(t.notes)) if k in tracks and not t.is_drum]
        score.tracks = keep
        return score_to_seed_tokens(score)
    return score_to_seed_tokens(score, Path(path).read_bytes())


def reference(path: Path, cache: Path | None, cached_only: bool = False) -> dict | None:
    """music21's side, cached by the file's content (None: not cached, and ``cached_only``)."""
    digest = hashlib.blake2b(path.read_bytes(), digest_size=12).hexdigest()
    entry = cache / f"{digest}.json" if cache else None
    if entry and entry.exists():
        return json.loads(entry.read_text())
    if cached_only:
        return None
    start = time.process_time()
    tokens, parsed_song, s2 = notebook_loop(path)
    cpu = time.process_time() - start
    kept, everything = kept_tracks(parsed_song, s2)
    result = {"tokens": tokens, "kept": kept, "all_tracks": everything, "cpu_s": cpu}
    if entry:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(result))
        os.replace(tmp, entry)
    return result


def first_difference(a: list[str], b: list[str]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def cause(ours: list[str], theirs: list[str]) -> str:
    if len(ours) != len(theirs):
        return "token count differs"
    return "same tokens, other order" if sorted(ours) == sorted(theirs) else "other tokens"


def compare(path: Path, cache: Path | None, cached_only: bool = False) -> dict | None:
    ref = reference(path, cache, cached_only)
    if ref is None:
        return None
    start = time.process_time()
    try:
        ours = cadenza_tokens(path)
    except SkipFile as exc:
        return {"path": str(path), "skipped": str(exc)}
    cpu = time.process_time() - start
    row = {"path": str(path), "all_tracks": ref["all_tracks"], "tokens": len(ref["tokens"]),
           "cadenza_cpu_s": cpu, "music21_cpu_s": ref["cpu_s"]}
    if ref["all_tracks"]:
        row["identical"] = ours == ref["tokens"]
        if not row["identical"]:
            row["cause"] = cause(ours, ref["tokens"])
            row["at"] = first_difference(ours, ref["tokens"])
    else:
        kept = cadenza_tokens(path, ref["kept"])
        row["identical_on_kept_tracks"] = kept == ref["tokens"]
        if not row["identical_on_kept_tracks"]:
            row["cause"] = cause(kept, ref["tokens"])
            row["at"] = first_difference(kept, ref["tokens"])
    return row


def corpus(asap: Path, pop909: Path, limit: int | None) -> list[Path]:
    files = sorted(asap.glob("**/midi_score.mid")) + sorted(pop909.glob("[0-9]*/[0-9]*.mid"))
    return files[:limit] if limit else files


def progress_note(row: dict | None) -> str:
    if row is None:
        return "not cached"
    if "skipped" in row:
        return "skipped"
    same = row.get("identical", row.get("identical_on_kept_tracks"))
    return f"{'identical' if same else row['cause']}, music21 {row['music21_cpu_s']:.1f} CPU-s"


def summary(rows: list[dict]) -> list[str]:
    whole = [r for r in rows if r.get("all_tracks")]
    partial = [r for r in rows if "identical_on_kept_tracks" in r]
    causes: dict[str, int] = {}
    for r in rows:
        if "cause" in r:
            causes[r["cause"]] = causes.get(r["cause"], 0) + 1
    m21 = sum(r.get("music21_cpu_s", 0) for r in rows)
    ours = sum(r.get("cadenza_cpu_s", 0) for r in rows)
    lines = [
        f"files: {len(rows)} ({sum('skipped' in r for r in rows)} skipped by cadenza's reader)",
        f"the notebook's part holds every track: {len(whole)}; identical token lists: "
        f"{sum(r['identical'] for r in whole)}",
        f"the notebook's part loses tracks: {len(partial)}; identical on the tracks it keeps: "
        f"{sum(r['identical_on_kept_tracks'] for r in partial)}",
        f"remaining differences by cause: {json.dumps(causes) if causes else 'none'}",
        f"CPU seconds (this run, machine shared): music21 loop {m21:.1f}, cadenza {ours:.2f}"
        + (f" ({m21 / ours:.0f}x)" if ours else ""),
    ]
    for r in rows:
        if "cause" in r:
            lines.append(f"  {r['path']}: {r['cause']}, first at token {r['at']}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--asap", type=Path, default=Path(os.environ.get("CADENZA_ASAP_DATA", SHARED / "asap-bach")))
    ap.add_argument("--pop909", type=Path, default=Path(os.environ.get("CADENZA_POP909_DATA", SHARED / "pop909")))
    ap.add_argument("--limit", type=int, default=None, help="only the first N files")
    ap.add_argument("--every", type=int, default=1, help="only every N-th file (with --first: a share)")
    ap.add_argument("--first", type=int, default=0, help="start at this file")
    ap.add_argument("--cache", type=Path, default=None, help="folder caching music21's results")
    ap.add_argument("--out", type=Path, default=None, help="write every file's row as JSON")
    ap.add_argument("--cached-only", action="store_true", help="only files whose music21 result is cached")
    ap.add_argument("--progress", action="store_true", help="a line per file on stderr, as it is done")
    args = ap.parse_args(argv)
    files = corpus(args.asap, args.pop909, args.limit)[args.first::args.every]
    if not files:
        print(f"no files under {args.asap} or {args.pop909}", file=sys.stderr)
        return 2
    rows = []
    for path in files:
        row = compare(path, args.cache, args.cached_only)
        if args.progress:
            print(f"{path}: {progress_note(row)}", file=sys.stderr, flush=True)
        if row is not None:
            rows.append(row)
    print("\n".join(summary(rows)))
    if args.out:
        write_bytes_atomic(args.out, json.dumps(rows, indent=1).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
