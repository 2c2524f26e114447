"""Work the studio does in the background: generations, one at a time in a worker thread
(requests queue, they never run over each other), and trainings, each an ordinary
``cadenza train`` process on a run folder under ``--runs`` (stopped with SIGINT, which saves
its state, so the CLI can ``--resume`` it)."""
from __future__ import annotations

import collections
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import rundir
from ..data.corpus.orphans import module_command
from ..errors import CadenzaError

MAX_QUEUED = 8
LOG_LINES = 40


class Cancelled(Exception):
    pass


@dataclass
class Job:
    kind: str
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    state: str = "queued"  # queued | running | done | cancelled | failed
    done: float = 0.0
    total: float = 0.0
    result: object = None
    error: str | None = None
    cancel_requested: bool = False
    finished: threading.Event = field(default_factory=threading.Event)

    def progress(self, done: float, total: float) -> None:
        """The generation's progress hook: records how far it got, raises when cancelled."""
        self.done, self.total = done, total
        if self.cancel_requested:
            raise Cancelled()

    def view(self) -> dict:
        return {"id": self.id, "kind": self.kind, "state": self.state, "done": self.done, "total": self.total,
                "result": self.result if self.state == "done" else None, "error": self.error}


class Worker:
    """One thread running queued jobs in order; at most MAX_QUEUED wait."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._loop, name="studio-worker", daemon=True).start()

    def submit(self, kind: str, fn: Callable[[Job], object]) -> Job:
        if self._queue.qsize() >= MAX_QUEUED:
            raise CadenzaError(f"{MAX_QUEUED} jobs are already waiting; try again when one is done")
        job = Job(kind)
        self.jobs[job.id] = job
        self._queue.put((job, fn))
        return job

    def get(self, job_id) -> Job:
        job = self.jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise CadenzaError(f"no job {job_id!r}")
        return job

    def _loop(self) -> None:
        while True:
            job, fn = self._queue.get()
            if job.cancel_requested:
                job.state = "cancelled"
            else:
                job.state = "running"
                try:
                    job.result, job.state = fn(job), "done"
                except Cancelled:
                    job.state = "cancelled"
                except CadenzaError as exc:
                    job.state, job.error = "failed", str(exc).splitlines()[0]
                except Exception as exc:  # never a traceback on the page: one line, and the log
                    job.state, job.error = "failed", f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]
                    print(f"cadenza studio: job {job.id} failed: {exc!r}", file=sys.stderr)
            job.finished.set()


class Training:
    """A ``cadenza train`` process writing the run folder ``run_dir``; its log is kept."""

    def __init__(self, args: list[str], run_dir: Path, training_id: str | None = None) -> None:
        """``training_id``: the id of the training this one resumes (the page keeps following it)."""
        self.id, self.run_dir, self.started = training_id or secrets.token_hex(8), run_dir, time.time()
        self.log: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        # ended with the studio even when it is killed (its log pipe would end it only at the next line)
        cmd = module_command("cadenza", ["train", *args, "--run-dir", str(run_dir), "--quiet"])
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.strip():
                self.log.append(line.rstrip())

    def stop(self) -> None:
        """Ctrl-C for the training: it saves its state and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def view(self) -> dict:
        code = self.proc.poll()
        state = "running" if code is None else "done" if code == 0 else "stopped" if code == 130 else "failed"
        rows = rundir.read_metrics(self.run_dir / rundir.METRICS) if (self.run_dir / rundir.METRICS).exists() else []
        resumable = state in ("stopped", "failed") and (self.run_dir / rundir.STATE).is_file()
        return {"id": self.id, "model": self.run_dir.name, "state": state, "exit_code": code, "resumable": resumable,
                "elapsed_s": round(time.time() - self.started, 1), "log": list(self.log)[-8:],
                "error": next((ln for ln in reversed(self.log) if "error" in ln), None) if state == "failed" else None,
                "curve": [[r["progress"], r["train_loss"], r["val_loss"]] for r in rows]}
