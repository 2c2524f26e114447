"""Every command the README shows runs, in the order it shows them, on a small folder of real
MIDI files: `cadenza` lines through the command itself (with a shorter budget and length
appended, which the command line lets win), the Python block as written, the studio as a
process that answers. `make demo` and `make test` run themselves; `make clean` is
tests/test_make.py."""
from __future__ import annotations

import random
import re
import shlex
from pathlib import Path

from cadenza.cli import main
from midifiles import random_piece, write_piece

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SHORTER = {"train": ["--max-minutes", "0.1", "--threads", "1", "--workers", "1", "--quiet"],
           "generate": ["--length", "2", "--quiet"], "evaluate": ["--quiet", "--max-pieces", "4"]}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def commands() -> list[list[str]]:
    lines = [shlex.split(line, comments=True) for block in blocks("sh") for line in block.splitlines()]
    return [words for words in lines if words]


def test_the_readme_is_a_users_page():
    assert len(README.splitlines()) <= 250
    assert {words[0] for words in commands()} == {"make", "cadenza"}
    assert "docs/benchmarks.md" in README and "--corpora" in README


def test_every_readme_command_runs(tmp_path, monkeypatch, capsys):
    from studio_server import Studio, studio_env  # the studio tests' own launcher

    monkeypatch.chdir(tmp_path)
    rng = random.Random(7)
    for k in range(12):
        write_piece(tmp_path / "my_midi_folder" / f"piece{k:02d}.mid", random_piece(rng))
    (tmp_path / "home" / "midi").mkdir(parents=True)
    ran = []
    for words in commands():
        if words[0] == "make":
            continue
        args = [w.replace("~", str(tmp_path / "home")) for w in words[1:]]
        if args[0] == "studio":
            assert args[1:3] == ["--runs", "runs"]
            studio = Studio(tmp_path / "runs", studio_env(tmp_path / "studio-cache"), *args[3:])
            try:  # it answered already; it offers the base and the runs trained above
                status, models = studio.get("/api/models")
                assert status == 200 and {"base", "mine", "tuned"} <= {m["id"] for m in models}, models
            finally:
                studio.stop()
        else:
            assert main(args + SHORTER.get(args[0], [])) == 0, (words, capsys.readouterr().err[-2000:])
        ran.append(args[0])
    assert {"generate", "train", "render", "evaluate", "studio"} <= set(ran)
    assert (tmp_path / "out-4.wav").exists() and (tmp_path / "roll.png").exists()
    assert (tmp_path / "runs" / "mine" / "report.md").exists()
    [python] = blocks("python")
    exec(compile(python, "README.md", "exec"), {})
    assert (tmp_path / "new-1.mid").stat().st_size > 0
