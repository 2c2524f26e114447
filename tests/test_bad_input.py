"""Bad input never crashes preparation: every good file is kept, every bad one skipped
with its reason. All files are generated here; nothing binary is committed."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from symusic import Note, Score, Track

from cadenza.data.corpus import find_midi_files, read_piano_score
from cadenza.data.corpus.reader import MAX_NOTES, PIANO_HIGH, PIANO_LOW, SkipFile
from cadenza.errors import printable

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


# --------------------------------------------------------------------------- builders

def good_midi(seed: int, tpq: int = 480, n: int = 64) -> bytes:
    rng = np.random.default_rng(seed)
    step = max(1, tpq // 2)
    score, track = Score(tpq), Track("Piano", 0, False)
    for k in range(n):
        track.notes.append(Note(k * step, step, int(rng.integers(48, 84)), 80))
    score.tracks.append(track)
    return score.dumps_midi()


def vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def raw_midi(tpq: int, events: bytes, division: int | None = None) -> bytes:
    """A format-1 file with one track of hand-written events (end of track appended)."""
    events += b"\x00\xff\x2f\x00"
    head = struct.pack(">IHHH", 6, 1, 1, tpq if division is None else division)
    return b"MThd" + head + b"MTrk" + struct.pack(">I", len(events)) + events


def notes_midi(tpq: int, pairs) -> bytes:
    """Notes from (delta_on, pitch, delta_off) triples, as raw events."""
    ev = b"".join(vlq(d_on) + bytes([0x90, p, 80]) + vlq(d_off) + bytes([0x80, p, 0]) for d_on, p, d_off in pairs)
    return raw_midi(tpq, ev)


def million_notes() -> bytes:
    n = 1_000_000
    k = np.arange(n)
    score, track = Score(480), Track("Piano", 0, False)
    track.notes = Note.from_numpy(time=((k // 8) * 120).astype(np.int32), duration=np.full(n, 120, np.int32),
                                  pitch=(40 + k % 48).astype(np.int8), velocity=np.full(n, 80, np.int8),
                                  ttype="tick")
    score.tracks.append(track)
    return score.dumps_midi()


KEEP = "keep"

# name -> expected: KEEP or a piece of the skip reason
EXPECTED = {
    "good0.mid": KEEP, "good1.mid": KEEP, "good2.mid": KEEP, "sub/good3.midi": KEEP,
    "x.mid/inside.mid": KEEP,            # a folder named x.mid is searched like any folder
    b"\xff.mid": KEEP,                   # non-UTF-8 file name
    "tpq1.mid": KEEP,                    # ticks-per-quarter of 1
    "tpq32767.mid": KEEP,                # ticks-per-quarter of 32767
    "overlap.mid": KEEP,                 # overlapping notes of the same pitch
    "some_zero_length.mid": KEEP,        # zero-length notes dropped, the rest kept
    "some_out_of_range.mid": KEEP,       # pitches outside 21-108 dropped, the rest kept
    "empty.mid": "empty file",
    "truncated.mid": "unreadable MIDI",
    "random.mid": "not a MIDI file",
    "random_after_header.mid": "unreadable MIDI",
    "text.mid": "not a MIDI file",
    "corrupt_track.mid": "unreadable MIDI",
    "no_notes.mid": "no notes",
    "drums.mid": "drum tracks only",
    "million.mid": "too many notes",
    "huge_ticks.mid": "too long",
    "tpq0.mid": "ticks per quarter",
    "smpte.mid": "unreadable MIDI",
    "all_zero_length.mid": "no playable piano notes",
    "all_out_of_range.mid": "no playable piano notes",
    "fifo.mid": "not a regular file",
    "dangling.mid": "cannot open",
    "loop_a.mid": "cannot open",         # symlink loop: ELOOP
    "loop_b.mid": "cannot open",
    "unreadable.mid": "cannot open",     # EACCES, simulated (root reads chmod 000 files)
    "huge.mid": "file larger than",      # a 20 GB sparse file: skipped from its size, never read
    "esc\x1b[31mRED\x1b[0m.mid": KEEP,     # a name that would recolour a terminal
    "esc\x1b[31mbad.mid": "not a MIDI file",
    "new\nline.mid": "not a MIDI file",   # a name that would split a log line
    b"\xfe\x1b.mid": "not a MIDI file",   # not UTF-8, and a control character
}
UNREADABLE = "unreadable.mid"


def build_corpus(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "sub").mkdir()
    (d / "x.mid").mkdir()
    for i in range(3):
        (d / f"good{i}.mid").write_bytes(good_midi(i))
    (d / "sub/good3.midi").write_bytes(good_midi(3))
    (d / "x.mid/inside.mid").write_bytes(good_midi(4))
    with open(os.path.join(os.fsencode(d), b"\xff.mid"), "wb") as f:
        f.write(good_midi(5))
    (d / "tpq1.mid").write_bytes(good_midi(6, tpq=1))
    (d / "tpq32767.mid").write_bytes(good_midi(7, tpq=32767))
    # pitch 60 struck again while it sounds, then released twice; 10 times over
    overlap = b"".join([b"\x00\x90\x3c\x50", b"\x10\x90\x3c\x50", b"\x10\x80\x3c\x00", b"\x10\x80\x3c\x00"] * 10)
    (d / "overlap.mid").write_bytes(raw_midi(96, overlap))
    (d / "some_zero_length.mid").write_bytes(notes_midi(96, [(0, 60, 0), (0, 62, 48), (0, 64, 0), (0, 65, 48)] * 5))
    (d / "some_out_of_range.mid").write_bytes(notes_midi(96, [(0, 5, 48), (0, 62, 48), (0, 127, 48), (0, 65, 48)] * 5))

    good = good_midi(8)
    (d / "empty.mid").write_bytes(b"")
    (d / "truncated.mid").write_bytes(good[: len(good) // 2])
    (d / "random.mid").write_bytes(np.random.default_rng(0).bytes(4096))
    (d / "random_after_header.mid").write_bytes(good[:14] + np.random.default_rng(1).bytes(4096))
    (d / "text.mid").write_text("MIDI? no: this is a text file\n" * 20)
    # a valid header, then a track chunk whose length runs past the end of the file
    (d / "corrupt_track.mid").write_bytes(good[:14] + b"MTrk" + struct.pack(">I", 10_000) + b"\x00\x90\x3c" + b"\xff" * 40)
    empty_score = Score(480)
    empty_score.tracks.append(Track("Piano", 0, False))
    (d / "no_notes.mid").write_bytes(empty_score.dumps_midi())
    drums, kit = Score(480), Track("Drums", 0, True)
    for k in range(32):
        kit.notes.append(Note(k * 240, 120, 36 + k % 10, 100))
    drums.tracks.append(kit)
    (d / "drums.mid").write_bytes(drums.dumps_midi())
    (d / "million.mid").write_bytes(million_notes())
    # two notes, each held for the largest delta-time MIDI allows (2**28 - 1 ticks)
    (d / "huge_ticks.mid").write_bytes(notes_midi(480, [(0, 60, 0x0FFFFFFF), (0, 62, 0x0FFFFFFF)]))
    (d / "tpq0.mid").write_bytes(notes_midi(0, [(0, 60, 96)] * 4))
    (d / "smpte.mid").write_bytes(raw_midi(0, b"\x00\x90\x3c\x50\x60\x80\x3c\x00", division=0xE728))
    (d / "all_zero_length.mid").write_bytes(notes_midi(96, [(0, 60, 0), (10, 62, 0)] * 10))
    (d / "all_out_of_range.mid").write_bytes(notes_midi(96, [(0, 5, 48), (0, 120, 48)] * 10))
    os.mkfifo(d / "fifo.mid")
    os.symlink(d / "nowhere.mid", d / "dangling.mid")
    os.symlink(d / "loop_b.mid", d / "loop_a.mid")
    os.symlink(d / "loop_a.mid", d / "loop_b.mid")
    (d / "dirloop").mkdir()
    os.symlink(d / "dirloop", d / "dirloop" / "again")       # a folder loop: not followed
    os.symlink(d / "dirloop", d / "dirloop" / "again.mid")   # a .mid symlink to a folder
    with open(d / "huge.mid", "wb") as f:
        f.truncate(20 << 30)  # sparse: no disk space, but hashing it whole took minutes
    (d / "esc\x1b[31mRED\x1b[0m.mid").write_bytes(good_midi(10))
    for name in ("esc\x1b[31mbad.mid", "new\nline.mid", b"\xfe\x1b.mid"):
        with open(os.path.join(os.fsencode(d), os.fsencode(name)), "wb") as f:
            f.write(b"text, with \x1b[31m in it\n")
    (d / UNREADABLE).write_bytes(good_midi(9))
    os.chmod(d / UNREADABLE, 0)
    return d


def _key(name) -> str:
    return os.fsdecode(name) if isinstance(name, bytes) else name


def _shown(name) -> str:
    """How a message shows the file name ``name``: control characters and non-UTF-8 bytes escaped."""
    return printable(_key(name))


def deny_unreadable(monkeypatch) -> None:
    """Root reads chmod-000 files, so make opening unreadable.mid fail with EACCES the
    way it does for any other user: wrap ``os.open`` (inherited by forked workers)."""
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if os.fsdecode(path).endswith(UNREADABLE):
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build_corpus(tmp_path_factory.mktemp("bad") / "corpus")


def _skip_map(skipped, corpus: Path) -> dict[str, str]:
    """Display path -> reason, keyed by the path relative to the corpus."""
    root = printable(corpus) + os.sep
    return {p[len(root):] if p.startswith(root) else p: r for p, r in skipped}


# ------------------------------------------------------------------------------ tests

def test_find_lists_every_candidate_and_terminates(corpus):
    names = {os.fsdecode(os.path.relpath(os.fsencode(p), os.fsencode(corpus))) for p in find_midi_files(corpus)}
    assert names == {_key(k) for k in EXPECTED}
    assert not any("dirloop" in n for n in names)  # the folder loop is not walked into
    found = find_midi_files(corpus)
    assert found == sorted(found)  # a subfolder's files at its name, as Path orders them


def test_folders_nested_1100_deep_are_walked(tmp_path):
    """Deeper than Python's recursion limit: every file found, in order, no RecursionError."""
    top = tmp_path / "deep"
    folder = top
    for depth in range(1100):
        folder = folder / "d"
        folder.mkdir(parents=True)
        if depth in (0, 549):
            (folder / "a.mid").write_bytes(good_midi(depth, n=8))
            (folder / "z.mid").write_bytes(good_midi(depth + 1, n=8))
    (folder / "bottom.mid").write_bytes(good_midi(7, n=8))
    (top / "top.mid").write_bytes(good_midi(8, n=8))
    try:
        found = find_midi_files(top)
        assert len(found) == 6 and found == sorted(found)
        assert found[-1] == top / "top.mid" and found[2] == folder / "bottom.mid"  # d/ sorts before top.mid
        assert len(read_piano_score(found[2]).tracks[0].notes) == 8
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=True)  # pytest's cleanup recurses, and fails on it


@pytest.mark.parametrize("name", list(EXPECTED), ids=_key)
def test_each_case(corpus, name, monkeypatch):
    deny_unreadable(monkeypatch)
    path = Path(os.fsdecode(os.path.join(os.fsencode(corpus), os.fsencode(name))))
    expected = EXPECTED[name]
    if expected == KEEP:
        score = read_piano_score(path)
        assert len(score.tracks) == 1 and not score.tracks[0].is_drum and score.tpq >= 1
        notes = score.tracks[0].notes.numpy()
        assert len(notes["pitch"]) > 0
        assert notes["pitch"].min() >= PIANO_LOW and notes["pitch"].max() <= PIANO_HIGH
        assert notes["duration"].min() > 0 and notes["time"].min() >= 0
        if name in ("some_zero_length.mid", "some_out_of_range.mid"):
            assert len(notes["pitch"]) == 10  # the 10 playable notes of 20
    else:
        with pytest.raises(SkipFile, match=expected):
            read_piano_score(path)


def _check_summary(summary, corpus):
    skips = _skip_map(summary.skipped, corpus)
    bad = {_shown(k): v for k, v in EXPECTED.items() if v != KEEP}
    assert set(skips) == set(bad), set(skips) ^ set(bad)
    for name, reason in bad.items():
        assert reason in skips[name], (name, skips[name])
    assert summary.files_read == sum(v == KEEP for v in EXPECTED.values())


@pytest.mark.parametrize("workers", [1, 2])
def test_prepare_keeps_good_and_explains_bad(corpus, tmp_path, monkeypatch, workers):
    from cadenza.data.dataset import prepare

    monkeypatch.setenv("CADENZA_CACHE", str(tmp_path / "cache"))
    deny_unreadable(monkeypatch)
    logged = []
    data = prepare(str(corpus), "remi", workers=workers, log=logged.append, progress_bar=False)
    kept = data.meta["splits"]["train"]["files"] + data.meta["splits"]["val"]["files"]
    root = os.fsdecode(corpus) + os.sep
    assert sorted(p[len(root):] for p in kept) == sorted(_key(k) for k, v in EXPECTED.items() if v == KEEP)
    _check_summary(data.summary, corpus)
    lines = "\n".join(data.summary.lines())
    for name in (k for k, v in EXPECTED.items() if v != KEEP):
        assert f"{_shown(name)}: " in lines  # every skip is listed in the log with its reason
    assert len(data.tokens("train")) > 0


@pytest.mark.slow
def test_cli_train_on_bad_corpus(corpus, tmp_path):
    """`cadenza train` on the bad corpus: finishes, lists every skip, no traceback.
    (In the subprocess nothing is patched, so unreadable.mid is readable by root and kept.)"""
    env = {**os.environ, "CADENZA_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT / "src")}
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [PYTHON, "-m", "cadenza", "train", str(corpus), "--run-dir", str(run_dir), "--preset", "small",
         "--epochs", "1", "--steps-per-epoch", "2", "--seq-len", "32", "--batch-size", "2", "--quiet",
         "--workers", "2", "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    root_reads = os.access(corpus / UNREADABLE, os.R_OK)  # True as root: then it is kept
    kept = sum(v == KEEP for v in EXPECTED.values()) + root_reads
    skipped = sum(v != KEEP for v in EXPECTED.values()) - root_reads
    assert f"corpus: {kept} files read, {skipped} skipped" in proc.stderr
    for name, reason in EXPECTED.items():
        if reason != KEEP and not (name == UNREADABLE and root_reads):
            line = next(ln for ln in proc.stderr.splitlines() if ln.strip().startswith(f"skipped {corpus}/{_shown(name)}:"))
            assert reason in line
    assert "skipped " + str(corpus) + "/\\xff.mid" not in proc.stderr
    # names are shown escaped: no raw escape sequence or newline reaches the terminal
    assert "\x1b" not in proc.stderr + proc.stdout and "new\nline" not in proc.stderr
    assert f"skipped {corpus}/new\\nline.mid: not a MIDI file" in proc.stderr
    assert f"skipped {corpus}/\\xfe\\x1b.mid: not a MIDI file" in proc.stderr
    assert (run_dir / "best.safetensors").exists() and (run_dir / "state.pt").exists()


# --------------------------------------------------------------------- property-based

SEED_MIDI = good_midi(42, n=24)
SEED_MULTI = Score.from_midi(good_midi(43, n=12))
_drums = Track("Drums", 0, True)
_drums.notes.append(Note(0, 120, 36, 100))
SEED_MULTI.tracks.append(_drums)
SEEDS = [SEED_MIDI, SEED_MULTI.dumps_midi(), notes_midi(96, [(0, 60, 48), (0, 62, 48)] * 6)]


@st.composite
def mutated_midi(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "flip", "set", "truncate"]))
        if not data:
            break
        # mostly inside the track data, where a mutation still leaves a parseable file
        low = draw(st.sampled_from([14, 14, 14, 0])) if len(data) > 14 else 0
        i = draw(st.integers(low, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 8))]
        else:
            del data[i:]
    j = data.rfind(b"MTrk")
    if j >= 0 and len(data) >= j + 8 and draw(st.booleans()):
        # repair the last chunk's length so the parser reaches the mutated events
        data[j + 4:j + 8] = struct.pack(">I", len(data) - j - 8)
    return bytes(data)


_REMI = None


def _remi():
    global _REMI
    if _REMI is None:
        from cadenza.data import representations

        _REMI = representations.create("remi")
    return _REMI


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=mutated_midi())
def test_mutated_midi_is_read_or_skipped(tmp_path, data):
    path = tmp_path / "m.mid"
    path.write_bytes(data)
    try:
        score = read_piano_score(path)
    except SkipFile as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    # a clean result: one piano track of playable notes that the tokenizer accepts
    assert score.tpq >= 1 and len(score.tracks) == 1 and not score.tracks[0].is_drum
    notes = score.tracks[0].notes.numpy()
    assert 0 < len(notes["pitch"]) <= MAX_NOTES
    assert notes["pitch"].min() >= PIANO_LOW and notes["pitch"].max() <= PIANO_HIGH
    assert notes["duration"].min() > 0 and notes["time"].min() >= 0
    assert np.all(np.diff(notes["time"]) >= 0)
    assert len(_remi().pretokenize(score)) > 0


# ------------------------------------------------------------- a crashing worker

_real_read_one = None


def _read_one_or_die(path):
    if Path(path).name == "crash.mid":
        os._exit(11)  # what a segfault in the MIDI parser looks like from the pool
    return _real_read_one(path)


def test_file_that_kills_its_worker_is_skipped(tmp_path, monkeypatch):
    import cadenza.data.corpus as corpus_module
    from cadenza.data import representations

    global _real_read_one
    _real_read_one = corpus_module._read_one
    monkeypatch.setattr(corpus_module, "_read_one", _read_one_or_die)
    folder = tmp_path / "c"
    folder.mkdir()
    for k in range(12):
        (folder / f"g{k:02d}.mid").write_bytes(good_midi(k, n=16))
    (folder / "crash.mid").write_bytes(good_midi(99, n=16))
    rep = representations.create("remi")
    pieces, summary = corpus_module.read_pieces(find_midi_files(folder), rep.pretokenize, workers=2)
    assert sorted(Path(p.path).name for p in pieces) == [f"g{k:02d}.mid" for k in range(12)]
    assert len(summary.skipped) == 1 and summary.skipped[0][0].endswith("crash.mid")
    assert "crashed" in summary.skipped[0][1]
