"""Bad command-line arguments: one line `cadenza: error: ...`, exit code 2, nothing written."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cadenza.cli import main
from cadenza.config import preset
from cadenza.training.trainer import train
from midifiles import TINY_RUN, train_tiny_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    train_tiny_run(base)
    (base / "text.mid").write_text("not a MIDI file\n")
    (base / "out").mkdir()
    return base


@pytest.fixture(autouse=True)
def cache(setup, monkeypatch):
    monkeypatch.setenv("CADENZA_CACHE", str(setup / "cache"))


def snapshot(folder: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def run_cli(args, capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    errors = [ln for ln in lines if "error" in ln]
    assert len(errors) == 1 and lines[-1].startswith("cadenza: error: "), err
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])


GENERATE_CASES = {
    "length zero": (["--length", "0"], "--length"),
    "length negative": (["--length", "-3"], "--length"),
    "length nan": (["--length", "nan"], "--length"),
    "length inf": (["--length", "inf"], "--length"),
    "length below one token": (["--length", "0.5"], "--length"),
    "temperature negative": (["--temperature", "-0.5"], "--temperature"),
    "temperature nan": (["--temperature", "nan"], "--temperature"),
    "top-p zero": (["--top-p", "0"], "--top-p"),
    "top-p above one": (["--top-p", "1.5"], "--top-p"),
    "top-p negative": (["--top-p", "-0.1"], "--top-p"),
    "top-k negative": (["--top-k", "-1"], "--top-k"),
    "num zero": (["--num", "0"], "--num"),
    "num huge": (["--num", "100000"], "--num"),
    "seed negative": (["--seed", "-1"], "--seed"),
    "length not a number": (["--length", "ten"], "--length"),
    "unit unknown": (["--unit", "furlongs"], "--unit"),
    "render unknown": (["--render", "gif"], "--render"),
    "primer not MIDI": (["--primer", "{base}/text.mid"], "not a MIDI file"),
    "primer missing": (["--primer", "{base}/nope.mid"], "primer not found"),
    "primer a folder": (["--primer", "{base}/out"], "primer"),
    "threads zero": (["--threads", "0"], "--threads"),
}


@pytest.mark.parametrize("case", list(GENERATE_CASES))
def test_generate_bad_argument(setup, capsys, case):
    extra, needle = GENERATE_CASES[case]
    extra = [a.format(base=setup) for a in extra]
    before = snapshot(setup)
    code, err = run_cli(["generate", setup / "run", "-o", setup / "out" / "x.mid", *extra], capsys)
    assert_one_line_error(code, err, needle)
    assert snapshot(setup) == before


@pytest.mark.parametrize("output,needle", [("missing/x.mid", "does not exist"), ("out/x.txt", ".mid")])
def test_generate_bad_output(setup, capsys, output, needle):
    before = snapshot(setup)
    code, err = run_cli(["generate", setup / "run", "-o", setup / output, "--length", "8"], capsys)
    assert_one_line_error(code, err, needle)
    assert snapshot(setup) == before and not (setup / "missing").exists()


def test_generate_missing_run(setup, capsys):
    code, err = run_cli(["generate", setup / "no-run", "-o", setup / "out" / "x.mid"], capsys)
    assert_one_line_error(code, err, "no such run directory")


def test_generate_good_arguments_write(setup, capsys, tmp_path):
    """The same command with sound arguments works (the failures above are not vacuous)."""
    code, err = run_cli(["generate", setup / "run", "-o", tmp_path / "x.mid", "--length", "8", "--top-p", "1",
                         "--top-k", "0", "--temperature", "0", "--seed", "0"], capsys)
    assert code == 0, err
    assert (tmp_path / "x.mid").stat().st_size > 0
    code, err = run_cli(["generate", setup / "run", "-o", tmp_path / "y.mid", "--length", "8", "--threads", "1"],
                        capsys)
    assert code == 0, err
    assert (tmp_path / "y.mid").stat().st_size > 0


def test_min_p_one_is_the_likeliest_token_as_temperature_zero(setup, capsys, tmp_path):
    """--min-p 1 is in the range the studio and a run's config.json accept, and draws what
    --temperature 0 draws (the likeliest token at every step)."""
    written = []
    for k, flags in enumerate((["--min-p", "1", "--temperature", "1", "--top-p", "1"], ["--temperature", "0"])):
        code, err = run_cli(["generate", setup / "run", "-o", tmp_path / f"{k}.mid", "--length", "24", "--seed", "3",
                             *flags], capsys)
        assert code == 0, err
        written.append((tmp_path / f"{k}.mid").read_bytes())
    assert written[0] == written[1]


ESC_NAME = "esc\x1b[31mRED\x1b[0m"  # a file name that would recolour the terminal
NEWLINE_NAME = "new\nline"           # one that would split the error line


def assert_escaped(text: str, *shown: str) -> None:
    assert "\x1b" not in text, text
    for needle in shown:
        assert needle in text, (needle, text)


@pytest.mark.parametrize("case", ["run", "primer", "output exists", "render", "train source"])
def test_errors_show_control_characters_in_paths_escaped(setup, capsys, tmp_path, case):
    """A path with an escape sequence or a newline comes back escaped, on one line."""
    weird = tmp_path / f"{ESC_NAME}{NEWLINE_NAME}.mid"
    shown = "esc\\x1b[31mRED\\x1b[0mnew\\nline.mid"
    out = tmp_path / "out.mid"
    args, needle = {
        "run": (["generate", weird, "-o", out], "no such run directory"),
        "primer": (["generate", setup / "run", "-o", out, "--primer", weird], "primer not found"),
        "output exists": (["generate", setup / "run", "-o", weird], "already exists"),
        "render": (["render", weird, "--png", tmp_path / "x.png"], "no such MIDI file"),
        "train source": (["train", weird, "--run-dir", tmp_path / "run"], "no such file or folder"),
    }[case]
    if case == "output exists":
        weird.write_bytes(b"mine")
    code, err = run_cli(args, capsys)
    assert_one_line_error(code, err, needle, shown)
    assert_escaped(err)
    assert not out.exists() and not (tmp_path / "run").exists()
    assert case != "output exists" or weird.read_bytes() == b"mine"


def test_report_lines_show_control_characters_in_paths_escaped(setup, capsys, tmp_path):
    """What `generate` writes is named escaped on stdout: a name not UTF-8, with an escape."""
    name = os.fsdecode(b"\xfe" + ESC_NAME.encode() + b".mid")
    capsys.readouterr()
    assert main(["generate", str(setup / "run"), "-o", str(tmp_path / name), "--length", "8", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert_escaped(out, f"wrote {tmp_path}/\\xfeesc\\x1b[31mRED\\x1b[0m.mid (")
    assert (tmp_path / name).stat().st_size > 0


def test_a_symlink_deep_in_a_run_folder_is_refused(setup, capsys, tmp_path):
    """A tokenizer folder nested 1,100 deep is checked to the bottom, without a RecursionError."""
    run = tmp_path / "run"
    shutil.copytree(setup / "run", run)
    folder = run / "tokenizer"
    for _ in range(1100):
        folder = folder / "d"
        folder.mkdir()
    (folder / "x.json").symlink_to(tmp_path / "elsewhere.json")
    try:
        code, err = run_cli(["generate", run, "-o", tmp_path / "x.mid"], capsys)
    finally:
        subprocess.run(["rm", "-rf", str(run)], check=True)  # pytest's cleanup recurses, and fails on it
    assert_one_line_error(code, err, "it is a symlink", "/d/d/x.json")
    assert not (tmp_path / "x.mid").exists()


def test_a_run_stores_its_source_as_an_absolute_path(setup, tmp_path, monkeypatch):
    """Issue 11 item 13: SOURCE typed relative to one folder must not name another
    (or nothing) when evaluate or --resume run from elsewhere."""
    from cadenza.config import Config

    monkeypatch.chdir(setup)
    train("corpus", tmp_path / "run", preset("small", **{**TINY_RUN, "steps_per_epoch": 1}), quiet=True, workers=1)
    assert Config.load(tmp_path / "run" / "config.json").source == str(setup / "corpus")


TRAIN_CASES = {
    "unknown preset": (["--preset", "nope"], "--preset"),
    "unknown representation": (["--representation", "nope"], "--representation"),
    "unknown model": (["--model", "nope"], "--model"),
    "epochs zero": (["--epochs", "0"], "epochs"),
    "lr nan": (["--lr", "nan"], "--lr"),
    "lr negative": (["--lr", "-1"], "--lr"),
    "seed negative": (["--seed", "-1"], "--seed"),
    "val-fraction one": (["--val-fraction", "1"], "val-fraction"),
    "transpose negative": (["--transpose", "-2"], "--transpose"),
    "max-minutes negative": (["--max-minutes", "-1"], "--max-minutes"),
    "checkpoint-minutes nan": (["--checkpoint-minutes", "nan"], "--checkpoint-minutes"),
    "threads negative": (["--threads", "-1"], "--threads"),
    "unknown device": (["--device", "abacus"], "--device"),
    "seq-len beyond the data": (["--seq-len", "100000"], "--seq-len"),
    "vocab-size too small": (["--vocab-size", "5"], "vocab_size"),
    "missing run-dir": ([None], "--run-dir"),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_bad_argument(setup, capsys, case, tmp_path):
    extra, needle = TRAIN_CASES[case]
    run = tmp_path / "new-run"
    args = ["train", setup / "corpus", "--run-dir", run, "--preset", "small", "--epochs", "1",
            "--steps-per-epoch", "1", "--quiet", "--workers", "1"]
    if extra == [None]:
        args = args[:2] + args[4:]
    else:
        # later options win in argparse, so the bad value overrides the defaults above
        args += extra
    before = snapshot(setup)
    code, err = run_cli(args, capsys)
    assert_one_line_error(code, err, needle)
    assert not run.exists(), "a refused training must not leave a run directory"
    assert snapshot(setup) == before


def test_train_missing_source(setup, capsys, tmp_path):
    code, err = run_cli(["train", tmp_path / "nothing-here", "--run-dir", tmp_path / "run"], capsys)
    assert_one_line_error(code, err, "no such file or folder")
    assert not (tmp_path / "run").exists()


def test_subprocess_bad_arguments_exit_2_one_line(setup, tmp_path):
    """The real process: exit status 2, one stderr line, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for args in (["train", "--run-dir", str(tmp_path / "r"), "--preset", "nope"],
                 ["generate", str(setup / "run"), "-o", str(setup / "out" / "x.mid"), "--top-p", "2"],
                 ["render", str(setup / f"{ESC_NAME}{NEWLINE_NAME}.mid"), "--png", str(setup / "out" / "x.png")]):
        proc = subprocess.run([sys.executable, "-m", "cadenza", *args], capture_output=True, text=True, env=env,
                              timeout=120)
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("cadenza: error: "), proc.stderr
        assert proc.stdout == "" and "\x1b" not in proc.stderr
    assert not (tmp_path / "r").exists() and os.listdir(setup / "out") == []
