"""Nothing of the user's is lost: a folder that is not a cadenza run is refused as --run-dir,
generate and render overwrite nothing without --force and never write through a symlink,
and every output appears atomically (a kill leaves the previous file or none)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from symusic import Score

from cadenza import rundir
from cadenza.cli import main
from cadenza.config import preset
from cadenza.errors import CadenzaError
from cadenza.training.trainer import train
from midifiles import TINY_RUN, train_tiny_run

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
PNG_END = b"IEND\xaeB`\x82"


def config(**kw):
    return preset("small", **{**TINY_RUN, "val_fraction": 0.34, **kw})


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A corpus of 3 real MIDI files, a primer and a finished tiny run."""
    base = tmp_path_factory.mktemp("noloss")
    train_tiny_run(base, val_fraction=0.34)
    shutil.copy(base / "corpus" / "p0.mid", base / "primer.mid")
    return base


@pytest.fixture(autouse=True)
def cache(base, monkeypatch):
    monkeypatch.setenv("CADENZA_CACHE", str(base / "cache"))


def tree(folder: Path) -> dict:
    """Every entry under ``folder``: its kind and bytes (links by target), to compare."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[p] = ("link", os.readlink(p))
        elif p.is_dir():
            out[p] = ("dir", None)
        else:
            out[p] = ("file", p.read_bytes())
    return out


def cli(args, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 2, err
    assert err.startswith("cadenza: error: ") and err.count("\n") == 1, err
    assert needle in err, err


# --------------------------------------------------------------- 1. --run-dir of the user's

def users_folder(folder: Path) -> Path:
    """What a user might keep in a folder they name as --run-dir by mistake: names that a
    run uses too (tokenizer/, config.json, metrics.csv, loss.png, primers.npy) and others."""
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "tokenizer" / "my-vocab.json").write_text('{"mine": 1}')
    (folder / "tokenizer.tmp").mkdir()
    (folder / "tokenizer.tmp" / "draft.txt").write_text("draft")
    (folder / "config.json").write_text('{"learning_rate": 0.1}')
    (folder / "metrics.csv").write_text("a,b\n1,2\n")
    (folder / "loss.png").write_bytes(b"\x89PNG my plot")
    (folder / "primers.npy").write_bytes(b"my array")
    (folder / "thesis.tex").write_text("\\documentclass{article}")
    return folder


@pytest.mark.slow
def test_train_into_a_users_folder_is_refused_and_touches_nothing(base, tmp_path):
    folder = users_folder(tmp_path / "work")
    before = tree(folder)
    proc = subprocess.run([sys.executable, "-m", "cadenza", "train", str(base / "corpus"), "--run-dir", str(folder),
                           "--preset", "small", "--epochs", "1", "--steps-per-epoch", "1", "--quiet",
                           "--workers", "1"], capture_output=True, text=True, env={**ENV, "CADENZA_CACHE": str(
                               base / "cache")}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "not a cadenza run" in proc.stderr and "thesis.tex" in proc.stderr
    assert tree(folder) == before


@pytest.mark.parametrize("keep", [["config.json"], ["tokenizer", "metrics.csv"], ["loss.png"]])
def test_a_folder_with_only_run_names_but_no_cadenza_config_is_refused(base, tmp_path, capsys, keep):
    folder = users_folder(tmp_path / "work")
    for entry in list(folder.iterdir()):
        if entry.name not in keep:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    before = tree(folder)
    code, err = cli(["train", base / "corpus", "--run-dir", folder, "--preset", "small", "--quiet"], capsys)
    one_line_error(code, err, "not a cadenza run")
    assert tree(folder) == before


def test_leftovers_of_a_failed_start_are_reused(base, tmp_path):
    """config.json, tokenizer/, primers.npy of a start that died before its first state."""
    run = tmp_path / "run"
    shutil.copytree(base / "run", run)
    for name in (rundir.STATE, rundir.BEST, rundir.METRICS, rundir.LOSS_PLOT):
        (run / name).unlink()
    (run / ".config.json.tmp999999").write_text("{")
    (run / "tokenizer.tmp").mkdir()
    result = train(str(base / "corpus"), run, config(), quiet=True, workers=1)
    assert result.epochs_done == 1 and (run / rundir.STATE).exists()
    assert not (run / "tokenizer.tmp").exists() and not (run / ".config.json.tmp999999").exists()


def test_run_dir_naming_a_file_is_refused(base, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    code, err = cli(["train", base / "corpus", "--run-dir", tmp_path / "notes.txt", "--quiet"], capsys)
    one_line_error(code, err, "is not a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_failed_start_never_removes_a_folder_another_training_holds(base, tmp_path, monkeypatch):
    """Issue 11 item 11: a training that created a new run folder and then fails removes
    it. Before the fix it released its lock first and removed the folder after, so a second
    training that took the lock in between lost its folder. Here the second one tries to
    take the lock at the moment the first releases it: either it gets it and its files
    survive, or it is refused; never a held lock on a removed folder."""
    run = tmp_path / "new-run"
    other = rundir.RunLock(run)
    real_release = rundir.RunLock.release

    def release_then_other_takes_over(self):
        real_release(self)
        if self is not other and not other.held:
            try:
                other.acquire()
                (run / "theirs.txt").write_text("the other training's file")
            except (OSError, CadenzaError):
                pass  # refused: the folder was already gone

    monkeypatch.setattr(rundir.RunLock, "release", release_then_other_takes_over)
    with pytest.raises(CadenzaError, match="epochs must be an integer >= 1"):
        train(str(base / "corpus"), run, config(epochs=0), quiet=True, workers=1)
    assert not other.held or (run / "theirs.txt").exists(), "the failed start removed a folder it no longer held"
    assert not other.held and not run.exists()  # the failed start cleaned up, holding the lock


# ------------------------------------------------------- 2. generate and render overwrite nothing

def generate(base, out, *extra):
    return ["generate", base / "run", "-o", out, "--length", "8", "--seed", "0", "--quiet", *extra]


def test_generate_refuses_every_existing_output(base, tmp_path, capsys):
    out = tmp_path / "x.mid"
    out.write_bytes(b"my piece")
    code, err = cli(generate(base, out), capsys)
    one_line_error(code, err, "already exists; pass --force")
    (tmp_path / "y-2.mid").write_bytes(b"my second piece")
    code, err = cli(generate(base, tmp_path / "y.mid", "--num", "2"), capsys)
    one_line_error(code, err, "y-2.mid already exists")
    (tmp_path / "z.png").write_bytes(b"my picture")
    code, err = cli(generate(base, tmp_path / "z.mid", "--render", "png"), capsys)
    one_line_error(code, err, "z.png already exists")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mid", "y-2.mid", "z.png"]  # nothing new either
    assert out.read_bytes() == b"my piece" and (tmp_path / "z.png").read_bytes() == b"my picture"


def test_generate_force_overwrites(base, tmp_path, capsys):
    out = tmp_path / "x.mid"
    out.write_bytes(b"old")
    code, err = cli(generate(base, out, "--force", "--render", "png"), capsys)
    assert code == 0, err
    assert out.read_bytes().startswith(b"MThd") and (tmp_path / "x.png").read_bytes().endswith(PNG_END)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mid", "x.png"]  # no temporary file left


def test_generate_never_writes_through_a_symlink(base, tmp_path, capsys):
    target = tmp_path / "precious.mid"
    target.write_bytes(b"precious")
    link = tmp_path / "x.mid"
    link.symlink_to(target)
    code, err = cli(generate(base, link), capsys)
    one_line_error(code, err, "already exists")
    assert link.is_symlink() and target.read_bytes() == b"precious"
    code, err = cli(generate(base, link, "--force"), capsys)
    assert code == 0, err
    assert not link.is_symlink() and link.read_bytes().startswith(b"MThd")  # the link was replaced ...
    assert target.read_bytes() == b"precious"  # ... its target never written
    dangling = tmp_path / "d.mid"
    dangling.symlink_to(tmp_path / "elsewhere.mid")
    code, err = cli(generate(base, dangling), capsys)
    one_line_error(code, err, "already exists")
    assert not (tmp_path / "elsewhere.mid").exists()


def test_generate_output_equal_to_primer_is_an_error_even_with_force(base, tmp_path, capsys):
    primer = tmp_path / "primer.mid"
    shutil.copy(base / "primer.mid", primer)
    before = primer.read_bytes()
    link = tmp_path / "alias.mid"
    link.symlink_to(primer)
    (tmp_path / "sub").mkdir()
    for out in (primer, link, tmp_path / "sub" / ".." / "primer.mid"):
        code, err = cli(generate(base, out, "--primer", primer, "--force"), capsys)
        one_line_error(code, err, "is the input")
    assert primer.read_bytes() == before


def test_generate_output_naming_a_folder(base, tmp_path, capsys):
    (tmp_path / "x.mid").mkdir()
    code, err = cli(generate(base, tmp_path / "x.mid", "--force"), capsys)
    one_line_error(code, err, "is a folder")


def test_render_refuses_to_overwrite_its_input_and_existing_files(base, tmp_path, capsys):
    midi = tmp_path / "x.mid"
    shutil.copy(base / "primer.mid", midi)
    before = midi.read_bytes()
    code, err = cli(["render", midi, "--png", midi, "--force"], capsys)
    one_line_error(code, err, "is the input")
    (tmp_path / "x.png").write_bytes(b"mine")
    code, err = cli(["render", midi, "--png", tmp_path / "x.png"], capsys)
    one_line_error(code, err, "already exists")
    assert midi.read_bytes() == before and (tmp_path / "x.png").read_bytes() == b"mine"
    code, err = cli(["render", midi, "--png", tmp_path / "x.png", "--force"], capsys)
    assert code == 0 and (tmp_path / "x.png").read_bytes().endswith(PNG_END)


# ------------------------------------------------------------------ 3. every output atomic

@pytest.mark.slow
def test_kill_during_png_render_keeps_the_previous_files(base, tmp_path):
    """SIGKILL `generate --render png --force` while the PNG's temporary file is being
    written: x.png is still the previous whole picture, x.mid a whole MIDI file."""
    out = tmp_path / "x.mid"
    assert main([str(a) for a in generate(base, out, "--render", "png")]) == 0
    before_png = (tmp_path / "x.png").read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", "cadenza", *map(str, generate(base, out, "--render", "png",
                                                                                  "--force", "--seed", "1"))],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, killed = time.time() + 120, False
    while proc.poll() is None and time.time() < deadline:
        if any(n.startswith(".x.png.tmp") for n in os.listdir(tmp_path)):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.0005)
    proc.wait()
    assert killed, "the PNG write was not caught"
    assert (tmp_path / "x.png").read_bytes() == before_png
    assert Score(str(out)).note_num() > 0
    assert main([str(a) for a in generate(base, out, "--render", "png", "--force")]) == 0
    assert sorted(os.listdir(tmp_path)) == ["x.mid", "x.png"]  # the killed process's temporary file is gone


# -------------------------------------------- 9. a run folder's files: regular, bounded

HANG_TARGETS = ["config.json", "tokenizer/representation.json", "best.safetensors", "primers.npy"]


@pytest.mark.slow
def test_fifos_and_links_to_dev_zero_in_a_run_are_refused_not_read(base, tmp_path):
    """Each of these used to block forever or eat memory. One real process loads every
    damaged copy (so a hang fails by the timeout, not by hanging the suite)."""
    runs = []
    for k, target in enumerate(HANG_TARGETS):
        for kind in ("fifo", "zero"):
            run = tmp_path / f"{kind}{k}"
            shutil.copytree(base / "run", run)
            (run / target).unlink()
            os.mkfifo(run / target) if kind == "fifo" else (run / target).symlink_to("/dev/zero")
            runs.append(str(run))
    script = ("import sys\nfrom cadenza.cli import main\n"
              "for run in sys.argv[1:]:\n"
              "    print(main(['generate', run, '-o', run + '/x.mid', '--length', '8']), flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", script, *runs], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.stdout.split() == ["2"] * len(runs), proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == len(runs) and "Traceback" not in proc.stderr
    for line, run in zip(lines, runs):
        kind = "it is not a regular file" if Path(run).name.startswith("fifo") else "it is a symlink"
        assert line.startswith(f"cadenza: error: refusing to read {run}/") and line.endswith(kind), line


# -- ordinary mistakes: one line each, before any work ----------------------------------------
@pytest.mark.parametrize("folder", ["/proc", "/sys"])
def test_generate_into_a_folder_that_takes_no_files(base, folder, capsys):
    code, err = cli(generate(base, Path(folder) / "cadenza-x.mid"), capsys)
    one_line_error(code, err, f"cannot create files in {folder}")
    assert not os.path.lexists(Path(folder) / "cadenza-x.mid")


@pytest.fixture
def read_only_folder(tmp_path):
    """A real read-only file system: a folder bind-mounted read-only (needs root's mount)."""
    source, target = tmp_path / "source", tmp_path / "ro"
    source.mkdir()
    target.mkdir()
    (source / "old.mid").write_bytes(b"mine")
    if subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here (not root, or no mount capability)")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_outputs_on_a_read_only_file_system(base, read_only_folder, capsys):
    with pytest.raises(OSError):
        (read_only_folder / "probe").write_bytes(b"")  # the folder is truly read-only
    code, err = cli(generate(base, read_only_folder / "x.mid"), capsys)
    one_line_error(code, err, "Read-only file system")
    code, err = cli(generate(base, read_only_folder / "old.mid", "--force"), capsys)
    one_line_error(code, err, "Read-only file system")
    code, err = cli(["render", base / "primer.mid", "--png", read_only_folder / "x.png"], capsys)
    one_line_error(code, err, "Read-only file system")
    assert sorted(os.listdir(read_only_folder)) == ["old.mid"]
    assert (read_only_folder / "old.mid").read_bytes() == b"mine"


def test_resume_with_a_run_dir_naming_a_file(base, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    code, err = cli(["train", "--run-dir", tmp_path / "notes.txt", "--resume", "--quiet"], capsys)
    one_line_error(code, err, "is not a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_primer_counts_in_the_batch_limit(base, tmp_path, capsys):
    from cadenza.generation.generate import MAX_BATCH_TOKENS, MAX_NUM

    length = MAX_BATCH_TOKENS // MAX_NUM - 8  # --num x --length alone is within the limit
    args = ["--num", MAX_NUM, "--length", length, "--primer", base / "primer.mid"]
    code, err = cli(["generate", base / "run", "-o", tmp_path / "x.mid", "--quiet", *args], capsys)
    one_line_error(code, err, "tokens of primer")
    assert os.listdir(tmp_path) == []


def test_a_huge_primer_is_cut_to_the_models_context(base, tmp_path, capsys, monkeypatch):
    """100,000 notes: only its last bars are encoded and the model reads only its seq_len
    tokens of context; the output still holds the whole primer, and one line says so."""
    import numpy as np
    from symusic import Note, Track

    from cadenza.generation.generate import generate as generate_api
    from cadenza.data.representations.base import Representation

    n = 100_000
    score, track = Score(480), Track("Piano", 0, False)
    pitches = np.random.default_rng(0).integers(48, 80, n)
    track.notes = Note.from_numpy(time=np.arange(n, dtype=np.int32) * 120, duration=np.full(n, 120, np.int32),
                                  pitch=pitches.astype(np.int8), velocity=np.full(n, 80, np.int8), ttype="tick")
    score.tracks.append(track)
    score.dump_midi(str(tmp_path / "huge.mid"))
    code, err = cli(generate(base, tmp_path / "x.mid", "--primer", tmp_path / "huge.mid"), capsys)
    assert code == 0, err
    assert "longer than the model's context" in err and err.count("\n") == 1, err
    written = Score(str(tmp_path / "x.mid"))
    assert written.note_num() >= n and (written.tracks[0].notes.numpy()["pitch"][:n] == pitches).all()

    encoded, read = [], []
    encode = Representation.encode
    monkeypatch.setattr(Representation, "encode", lambda self, s: encoded.append(s.note_num()) or encode(self, s))
    run = rundir.load_run(base / "run")
    forward = run.model.forward
    run.model.forward = lambda ids, **kw: read.append(ids.shape[1]) or forward(ids, **kw)
    generate_api(run, length=8, primer=tmp_path / "huge.mid", seed=0, quiet=True, log=lambda line: None)
    assert encoded and max(encoded) < n // 100, encoded  # its last bars, never the whole primer
    assert read[0] == run.config.seq_len and set(read[1:]) == {1}  # the context once, then one token a step


# ------------------------- issue 24: demo, evaluate, a trained run, temporary names, a full disk

def cadenza(base, *args, cwd=None) -> subprocess.CompletedProcess:
    """``python -m cadenza ARGS`` as a real process (the test's corpus cache)."""
    return subprocess.run([sys.executable, "-m", "cadenza", *map(str, args)], capture_output=True, text=True,
                          env={**ENV, "CADENZA_CACHE": str(base / "cache")}, timeout=300, cwd=cwd)


def refused(proc: subprocess.CompletedProcess, needle: str) -> None:
    one_line_error(proc.returncode, proc.stderr, needle)
    assert "Traceback" not in proc.stderr


EVALUATE = ["--samples", "1", "--bars", "2", "--max-pieces", "2", "--quiet"]
TRAIN = ["--preset", "small", "--epochs", "1", "--steps-per-epoch", "1", "--quiet", "--workers", "1"]


@pytest.mark.slow
def test_demo_refuses_a_users_run_dir_before_writing_anything(base, tmp_path, capsys):
    """Issue 24 item 2: demo wrote NAME-base.mid, .png and .wav beside the run folder, then
    refused the folder: two of the user's files replaced, a WAV created. --force is about
    output files, never about a user's folder."""
    folder = users_folder(tmp_path / "work")
    (tmp_path / "work-base.mid").write_bytes(b"my piece")
    (tmp_path / "work-base.png").write_bytes(b"my picture")
    before = tree(tmp_path)
    refused(cadenza(base, "demo", "--run-dir", folder), "not a cadenza run")
    assert tree(tmp_path) == before
    code, err = cli(["demo", "--run-dir", folder, "--force"], capsys)
    one_line_error(code, err, "not a cadenza run")
    assert tree(tmp_path) == before


def test_demo_refuses_every_existing_output_before_any_work(base, tmp_path, capsys):
    (tmp_path / "mine.mid").write_bytes(b"my piece")
    code, err = cli(["demo", "--run-dir", tmp_path / "run", "--output", tmp_path / "mine.mid"], capsys)
    one_line_error(code, err, "mine.mid already exists; pass --force")
    (tmp_path / "mine.mid").unlink()
    (tmp_path / "mine-base.wav").write_bytes(b"my recording")
    code, err = cli(["demo", "--run-dir", tmp_path / "run", "--output", tmp_path / "mine.mid"], capsys)
    one_line_error(code, err, "mine-base.wav already exists; pass --force")
    assert os.listdir(tmp_path) == ["mine-base.wav"] and (tmp_path / "mine-base.wav").read_bytes() == b"my recording"


@pytest.mark.slow
def test_evaluate_refuses_an_existing_report_unless_force(base, tmp_path, capsys):
    """Issue 24 item 3: evaluate replaced report.md, report.json (and the figures) in --out."""
    out = tmp_path / "reports"
    out.mkdir()
    for name, mine in (("report.md", b"my notes"), ("report.json", b"{}"), ("report_kde.png", b"my plot")):
        (out / name).write_bytes(mine)
    before = tree(out)
    refused(cadenza(base, "evaluate", base / "run", "--out", out, *EVALUATE), "report.md already exists; pass --force")
    assert tree(out) == before  # and nothing was evaluated: the error is stderr's only line
    code, err = cli(["evaluate", base / "run", "--out", out, *EVALUATE, "--force"], capsys)
    assert code == 0, err
    assert (out / "report.md").read_text().startswith("# run: ")
    assert (out / "report_kde.png").read_bytes().endswith(PNG_END)
    assert sorted(os.listdir(out)) == ["report.json", "report.md", "report_kde.png", "report_pitch_classes.png",
                                       "report_self_similarity.png"]


def test_evaluate_base_refuses_an_existing_report(base, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base-report").mkdir()
    (tmp_path / "base-report" / "report.json").write_text('{"mine": 1}')
    code, err = cli(["evaluate", "base", "--data", base / "corpus", *EVALUATE], capsys)
    one_line_error(code, err, "base-report/report.json already exists")
    assert os.listdir(tmp_path / "base-report") == ["report.json"]


@pytest.mark.parametrize("folder", ["/proc", "/sys"])
def test_evaluate_into_a_folder_that_takes_no_files_fails_before_evaluating(base, folder, capsys):
    """Issue 24 item 13: evaluate --out read-only failed only after the whole evaluation."""
    code, err = cli(["evaluate", base / "run", "--out", Path(folder) / "cadenza-report", *EVALUATE], capsys)
    one_line_error(code, err, f"cannot create files in {folder}")  # one line: nothing was evaluated


def test_evaluate_into_a_read_only_file_system_fails_before_evaluating(base, read_only_folder, capsys):
    code, err = cli(["evaluate", base / "run", "--out", read_only_folder / "report", *EVALUATE], capsys)
    one_line_error(code, err, "Read-only file system")
    assert os.listdir(read_only_folder) == ["old.mid"]


def test_train_refuses_a_trained_run_without_its_state(base, tmp_path, capsys):
    """Issue 24 item 4: a run copied for generation (no state.pt) was taken for a failed
    start: its weights, config, primers, token statistics, metrics and plot replaced."""
    whole = tmp_path / "copy"
    shutil.copytree(base / "run", whole)
    (whole / rundir.STATE).unlink()
    before = tree(whole)
    refused(cadenza(base, "train", base / "corpus", "--run-dir", whole, *TRAIN), "holds a trained run")
    assert tree(whole) == before
    bare = tmp_path / "for-generation"  # only what generation needs
    bare.mkdir()
    for name in (rundir.CONFIG, rundir.BEST):
        shutil.copy(base / "run" / name, bare / name)
    shutil.copytree(base / "run" / rundir.TOKENIZER, bare / rundir.TOKENIZER)
    before = tree(bare)
    code, err = cli(["train", base / "corpus", "--run-dir", bare, "--from", "base", "--epochs", "1", "--quiet"], capsys)
    one_line_error(code, err, "holds a trained run")
    assert tree(bare) == before


def test_files_with_temporary_looking_names_are_the_users(base, tmp_path):
    """Issue 24 item 4: a folder holding only .tmpABCDEF and .important.tmp123 was taken as
    empty and both files deleted. Only cadenza's own temporaries of run files (and what
    safetensors leaves of the weights) are cleaned, in a run folder, never a user's file."""
    dots = tmp_path / "dots"
    dots.mkdir()
    (dots / ".tmpABCDEF").write_text("my draft")
    (dots / ".important.tmp123").write_text("my notes")
    before = tree(dots)
    refused(cadenza(base, "train", base / "corpus", "--run-dir", dots, *TRAIN), "'.important.tmp123' and 1 more")
    assert tree(dots) == before

    run = tmp_path / "run"
    shutil.copytree(base / "run", run)
    (run / ".tmpABCDEF").write_text("my draft")
    (run / ".important.tmp123").write_text("my notes")
    (run / ".state.pt.tmp999999").write_bytes(b"\0" * 100)  # what killed writes leave
    (run / ".tmpQwErTy").write_bytes((run / rundir.BEST).read_bytes()[:100])
    train(None, run, resume=True, overrides={"epochs": 2}, quiet=True, workers=1)
    assert sorted(n for n in os.listdir(run) if n.startswith(".")) == [".important.tmp123", ".tmpABCDEF"]
    assert (run / ".tmpABCDEF").read_text() == "my draft" and (run / ".important.tmp123").read_text() == "my notes"


def test_a_failed_write_names_its_file_and_leaves_no_temporary(tmp_path):
    """/dev/full answers every write with ENOSPC, which names no file: the error names the
    output, whose temporary file is removed."""
    import errno

    from cadenza.files import atomic_path, os_error_line

    out = tmp_path / "x.mid"
    with pytest.raises(OSError) as caught:
        with atomic_path(out, ".mid"):
            with open("/dev/full", "wb") as full:
                full.write(b"MThd")
    assert caught.value.errno == errno.ENOSPC
    assert os_error_line(caught.value) == f"No space left on device: {out}"
    assert os.listdir(tmp_path) == []


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 KiB file system to fill (tmpfs; needs root's mount)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root, or no mount capability)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def fill(disk: Path) -> None:
    fd = os.open(disk / "pad", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass  # full
    finally:
        os.close(fd)


@pytest.mark.slow
def test_a_full_disk_is_one_line_naming_the_file_and_keeps_the_old_one(base, small_disk, capsys):
    """Issue 24 item 13: "No space left on device" named no file. Worse, symusic writes an
    empty MIDI file on a full disk and says nothing: `generate --force` replaced a piece
    with 0 bytes and reported success."""
    proc = cadenza(base, *generate(base, small_disk / "x.mid", "--render", "png,wav"))
    refused(proc, f"No space left on device: {small_disk / 'x.wav'}")
    assert sorted(os.listdir(small_disk)) == ["x.mid", "x.png"]  # whole files, no temporary left
    piece = (small_disk / "x.mid").read_bytes()
    fill(small_disk)
    code, err = cli(generate(base, small_disk / "x.mid", "--force", "--seed", "1"), capsys)
    one_line_error(code, err, f"No space left on device: {small_disk / 'x.mid'}")
    assert (small_disk / "x.mid").read_bytes() == piece
    code, err = cli(["train", base / "corpus", "--run-dir", small_disk / "run", *TRAIN], capsys)
    one_line_error(code, err, f"training stopped: No space left on device: {small_disk / 'run'}")
    assert sorted(os.listdir(small_disk)) == ["pad", "x.mid", "x.png"]  # the failed start left nothing
