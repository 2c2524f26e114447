"""benchmarks/seed_vs_cadenza.py end to end (--quick) on a tiny corpus written with symusic."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from symusic import Note, Score, TimeSignature, Track

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "seed_vs_cadenza.py"
SECTIONS = ("1. note extraction", "2. seed tokens", "3. NLL per note", "4. generating 500 tokens",
            "5. per step and per note")


def write_corpus(folder: Path, files: int = 10, onsets: int = 160) -> None:
    """One-track piano pieces: single notes and chords on an eighth-note grid."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(files):
        score = Score(480)
        score.time_signatures.append(TimeSignature(0, 4, 4))
        track = Track("Piano", 0, False)
        t = 0
        for _ in range(onsets):
            dur = int(rng.choice([240, 480]))
            root = int(rng.integers(55, 72))
            for p in {root, *(root + int(i) for i in rng.choice([4, 7, 12], size=rng.integers(0, 3)))}:
                track.notes.append(Note(t, dur, p, 80))
            t += dur
        score.tracks.append(track)
        score.dump_midi(str(folder / f"piece{k:02d}.mid"))


def run(args, tmp_path, timeout=300):
    env = dict(os.environ, CADENZA_CACHE=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=tmp_path)


def test_quick_run_prints_all_four_sections(tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    out = tmp_path / "table.md"
    proc = run([str(corpus), "--quick", "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert text in proc.stdout
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) > 10
    assert "nan" not in " ".join(table).lower()
    starts = [next(i for i, line in enumerate(table) if name in line) for name in SECTIONS]
    assert starts == sorted(starts)
    for a, b in zip(starts, starts[1:] + [len(table)]):
        body = table[a + 1:b]
        assert body and all(re.search(r"\d", row) for row in body), body
    # single-track files: cadenza's seed tokens reproduce the notebook's music21 loop
    same = re.search(r"identical token lists \| reference \| (\d+)/(\d+)", text)
    assert same and same.group(1) == same.group(2), same and same.group(0)
    gen = re.search(r"seed network, same primer, argmax \| ([\d.]+) s .*\| ([\d.]+) s ", text)
    assert gen and float(gen.group(1)) > 0 and float(gen.group(2)) > 0


def test_bad_arguments_are_one_line_errors(tmp_path):
    for args in (["--minutes", "0"], ["--extract-files", "0"], [str(tmp_path / "missing")],
                 ["--out", str(tmp_path / "no" / "t.md")], ["--minutes", "x"],
                 ["--repeats", "0"], ["--notebook", "tensorflow"]):
        proc = run(args, tmp_path, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "error" in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
