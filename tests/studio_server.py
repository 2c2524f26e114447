"""A real `cadenza studio` process on a free port, with a tiny run to offer, and a small
HTTP client (urllib) for the studio tests."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from cadenza import preset, train
from midifiles import random_piece, write_piece

TINY = dict(seq_len=64, batch_size=8, steps_per_epoch=30, epochs=1, threads=1, warmup_steps=2, lr=1e-2,
            model_options={"dim": 32, "layers": 1, "dropout": 0.1})


def tiny_runs(base: Path) -> Path:
    """``base/runs/tiny``: a REMI run trained for 30 steps on 12 random pieces (a few seconds)."""
    rng = random.Random(7)
    for k in range(12):
        write_piece(base / "corpus" / f"piece{k:02d}.mid", random_piece(rng))
    train(str(base / "corpus"), base / "runs" / "tiny", preset("small", **TINY), quiet=True, workers=1)
    return base / "runs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Studio:
    """``cadenza studio --runs RUNS --no-browser`` in a subprocess, stopped with SIGINT."""

    def __init__(self, runs: Path, env: dict, *extra: str, token_from_url: bool = False) -> None:
        """``token_from_url``: take the token from the printed launch URL (a studio on the
        network gives its page only to a request that has it)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "cadenza", "studio", "--runs", str(runs), "--port",
                                      str(self.port), "--no-browser", *extra], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        if token_from_url:
            self.banner = self.proc.stdout.readline() + self.proc.stdout.readline()
            self.token = re.search(r"\?token=(\S+)", self.banner).group(1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cadenza studio exited: {self.proc.stdout.read()}")
            try:
                self.get("/api/models")
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("cadenza studio did not answer in 60 s")
        if not token_from_url:
            page = self.request("GET", "/")[1].decode()
            self.token = re.search(r'<meta name="cadenza-token" content="([^"]+)">', page).group(1)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, parsed JSON or raw bytes)."""
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                status, data, kind = resp.status, resp.read(), resp.headers.get("content-type", "")
        except urllib.error.HTTPError as err:
            status, data, kind = err.code, err.read(), err.headers.get("content-type", "")
        return status, json.loads(data) if kind.startswith("application/json") else data

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, data: dict | None = None, raw: bytes | None = None, headers: dict | None = None):
        """A POST as the studio's own page sends it (JSON and the token), ``headers`` changed."""
        body = raw if raw is not None else json.dumps(data or {}).encode()
        sent = {"Content-Type": "application/json", "X-Cadenza-Token": self.token, **(headers or {})}
        return self.request("POST", path, body, {k: v for k, v in sent.items() if v is not None})

    def post_form(self, path: str, fields: dict, file: bytes | None = None, name: str = "prompt.mid",
                  field: str = "file", headers: dict | None = None):
        """A multipart form as the page sends it (the token), ``headers`` changed."""
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                 for k, v in fields.items()]
        if file is not None:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                         f'Content-Type: audio/midi\r\n\r\n'.encode() + file + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        sent = {"Content-Type": f"multipart/form-data; boundary={boundary}", "X-Cadenza-Token": self.token,
                **(headers or {})}
        return self.request("POST", path, body, {k: v for k, v in sent.items() if v is not None})


def studio_env(cache: Path) -> dict:
    """The test process's environment (PYTHONPATH included) with a private cache."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "CADENZA_CACHE": str(cache), "PYTHONPATH": f"{src}{os.pathsep}{path}" if path else src}
