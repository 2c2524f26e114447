"""benchmarks/seed_vs_cadenza.py end to end (--quick), and benchmarks/memory.py on tiny runs, on
tiny corpora written with symusic."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from symusic import Note, Score, TimeSignature, Track

from midifiles import train_tiny_run

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


MEMORY = ROOT / "benchmarks" / "memory.py"


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> tuple[Path, Path]:
    """An ``lstm`` that reads 32 tokens and an ``lstm_memory`` (2,048-token window), trained
    for two steps on eighth notes; shared by the tests below."""
    base = tmp_path_factory.mktemp("memory")
    lstm = train_tiny_run(base / "lstm")
    mem = train_tiny_run(base / "mem", model="lstm_memory", model_options={"dim": 32, "layers": 1, "heads": 4})
    return lstm, mem


def memory_benchmark(args, timeout=300):
    return subprocess.run([sys.executable, str(MEMORY), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_memory_benchmark_measures_runs_side_by_side(tiny_runs, tmp_path):
    lstm, mem = tiny_runs
    write_corpus(tmp_path / "held", files=3)  # about 30 bars each
    out, figures = tmp_path / "memory.md", tmp_path / "memory.json"
    proc = memory_benchmark(["--run", lstm, "--run", mem, "cache_window=64", "--data", tmp_path / "held",
                             "--pieces", 2, "--bars", 4, "--continuations", 2, "--speed-pieces", 2,
                             "--workdir", tmp_path / "w", "--out", out, "--json", figures])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_text() in proc.stdout and "### 3. Speed" in out.read_text()
    runs = json.loads(figures.read_text())["runs"]
    assert list(runs) == ["run", "run (cache_window=64)"]
    lstm_figures, mem_figures = runs.values()
    assert mem_figures["model_options"]["cache_window"] == 64
    for r in runs.values():
        structure = r["no_form"]["held"]
        assert structure["pieces"] == {"generated": 2, "held_out": 3}
        assert 0 <= structure["held_out"]["similar_bar_share"] <= 1 and structure["held_out"]["notes_per_bar"] > 0
        cont = r["continuation"]["held"]
        assert cont["pieces"] == 2 and all(row["real"]["notes_per_bar"] > 0 for row in cont["per_piece"])
        assert r["speed"]["wall_s"] > 0 and r["speed"]["train_tokens_per_s"] > 0
    # 8 bars of these pieces are hundreds of tokens: more than the lstm's 32, within the memory's window
    assert lstm_figures["continuation"]["held"]["context_warnings"] == ["piece00.mid", "piece01.mid"]
    assert mem_figures["continuation"]["held"]["context_warnings"] == []


def test_memory_benchmark_overrides_rebuild_the_model_with_the_run_weights(tiny_runs):
    import torch

    sys.path.insert(0, str(MEMORY.parent))
    from memory import load_runs

    plain, cached = load_runs([[str(tiny_runs[1])], [str(tiny_runs[1]), "cache_window=64", "cache_gap=4"]]).values()
    assert plain.model.cache is None and (cached.model.cache.window, cached.model.cache.gap) == (64, 4)
    ids = torch.randint(0, plain.representation.vocab_size, (1, 40))
    with torch.no_grad():
        assert torch.equal(plain.model.lstm(plain.model.embed(ids))[0], cached.model.lstm(cached.model.embed(ids))[0])


def test_memory_benchmark_bad_arguments_are_one_line_errors(tiny_runs, tmp_path, capsys):
    lstm, mem = tiny_runs
    proc = memory_benchmark(["--run", mem, "cache_window=-1"], timeout=120)  # the command itself
    assert proc.returncode == 2 and proc.stderr.strip() == \
        "memory.py: error: cache_window must be an integer in [0, 131,072], not -1", proc.stderr
    sys.path.insert(0, str(MEMORY.parent))
    from memory import main

    for args in (["--run", lstm, "window=64"], ["--run", mem, "bogus=1"], ["--run", tmp_path / "missing"],
                 ["--pieces", 0], ["--run", lstm, "--out", tmp_path / "no" / "t.md"]):
        try:
            code = main(list(map(str, args)))
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "error" in err, (args, err)
