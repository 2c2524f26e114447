"""A training killed with SIGKILL while its reader pool runs leaves no process behind, and
a pipe on its output (``cadenza train ... | tee log``) reaches its end."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from symusic import Note, Score, Track

ROOT = Path(__file__).resolve().parents[1]
FILES, NOTES = 24, 3000  # over the 8 files that start the pool, and slow enough to catch it


def make_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for k in range(FILES):
        rng = np.random.default_rng(k)
        score, track = Score(480), Track("Piano", 0, False)
        times = np.arange(NOTES, dtype=np.int32) * 120
        track.notes = Note.from_numpy(time=times, duration=np.full(NOTES, 240, np.int32),
                                      pitch=rng.integers(40, 90, NOTES).astype(np.int8),
                                      velocity=np.full(NOTES, 80, np.int8), ttype="tick")
        score.tracks.append(track)
        score.dump_midi(str(folder / f"p{k:02d}.mid"))
    return folder


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def pool_of(proc, count: int, seconds: float, poll: float) -> list[int]:
    """The children of ``proc`` once there are ``count`` of them (fewer if it ends or
    ``seconds`` pass first), looked at every ``poll`` seconds."""
    deadline, workers = time.time() + seconds, []
    while proc.poll() is None and time.time() < deadline and len(workers) < count:
        workers = children(proc.pid)
        time.sleep(poll)
    return workers


def test_reader_workers_die_with_a_killed_training(tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CADENZA_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "cadenza", "train", str(corpus), "--run-dir", str(tmp_path / "run"),
                             "--preset", "small", "--epochs", "1", "--steps-per-epoch", "1", "--workers", "2",
                             "--quiet", "--device", "cpu"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    workers = pool_of(proc, 2, 60, 0.005)
    assert len(workers) >= 2, "the reader pool was not seen"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = time.time()

    ended = threading.Event()  # what `tee` sees: the end of the pipe, once no process holds it
    threading.Thread(target=lambda: (proc.stdout.read(), ended.set()), daemon=True).start()
    try:
        assert ended.wait(10), "the output pipe stays open: a worker survived its parent"
        while any(alive(w) for w in workers) and time.time() < killed_at + 10:
            time.sleep(0.05)
        assert not [w for w in workers if alive(w)], "reader processes outlived their parent by 10 s"
    finally:
        for w in workers:
            if alive(w):
                os.kill(w, signal.SIGKILL)


def gone_within(pids: list[int], seconds: float) -> list[int]:
    """The ``pids`` still alive after waiting up to ``seconds`` for them to end (then killed)."""
    deadline = time.time() + seconds
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    return left


def test_bach_conversion_workers_die_with_a_killed_parent(tmp_path):
    """The first use of the built-in corpus converts the music21 chorales in a process pool;
    a SIGKILL then left its converters alive for good."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CADENZA_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-c", "from cadenza.data.corpus.bach import bach_chorales; "
                             "bach_chorales(workers=2)"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = pool_of(proc, 2, 120, 0.01)
    assert len(workers) >= 2, "the conversion pool was not seen"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert gone_within(workers, 10) == [], "conversion workers outlived their parent by 10 s"


STUDIO_PARENT = """
import sys, threading, time
from pathlib import Path
from cadenza.studio.jobs import Training
started = []
# started from a thread that ends at once, as a server's worker thread may
thread = threading.Thread(target=lambda: started.append(Training(sys.argv[2:], Path(sys.argv[1]))))
thread.start()
thread.join()
print(started[0].proc.pid, flush=True)
time.sleep(600)
"""


def test_a_studio_training_dies_with_a_killed_studio(tmp_path):
    """The studio runs each training as a child `cadenza train`; a SIGKILLed studio left it
    training until its next log line met the closed pipe (here: the end of a long epoch).
    It ends now with its parent, and not with the thread that started it."""
    from midifiles import write_eighths_corpus

    corpus, run = write_eighths_corpus(tmp_path / "corpus"), tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CADENZA_CACHE": str(tmp_path / "cache")}
    args = [str(corpus), "--preset", "small", "--seq-len", "32", "--batch-size", "4", "--epochs", "1",
            "--steps-per-epoch", "1000000", "--threads", "1", "--workers", "1", "--device", "cpu"]
    studio = subprocess.Popen([sys.executable, "-c", STUDIO_PARENT, str(run), *args], env=env,
                              stdout=subprocess.PIPE, text=True)
    training = int(studio.stdout.readline())
    try:
        deadline = time.time() + 60
        while not (run / "primers.npy").exists() and alive(training) and time.time() < deadline:
            time.sleep(0.05)  # written just before the first step
        assert (run / "primers.npy").exists() and alive(training), "the training did not get going"
    finally:
        studio.send_signal(signal.SIGKILL)
        studio.wait()
    assert gone_within([training], 5) == [], "the training outlived the studio by 5 s"
