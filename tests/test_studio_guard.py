"""Only the studio's own page drives the studio, and one damaged run or hostile request does
not break it: real `cadenza studio` processes over real HTTP (issue 24's second campaign).

A foreign page can send "simple" cross-site requests (no CORS preflight: text/plain, forms)
and, by rebinding its own name to 127.0.0.1, read the answers of GETs. Each is refused with
403/415 before anything starts; the page itself keeps working (tests/test_studio_browser.py).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time

import pytest

from midifiles import write_melody
from studio_server import Studio, studio_env

EVIL = "http://evil.example"
TRAIN = json.dumps({"name": "x", "source": "bach", "minutes": 0.05}).encode()


@pytest.fixture(scope="module")
def guarded(studio, tmp_path_factory):
    """A second studio over a copy of the tiny run and three damaged runs beside it."""
    base = tmp_path_factory.mktemp("guarded")
    runs = base / "runs"
    shutil.copytree(studio.runs / "tiny", runs / "tiny")
    for name in ("truncated", "lying", "fifo"):
        shutil.copytree(studio.runs / "tiny", runs / name)
    weights = (runs / "tiny" / "best.safetensors").read_bytes()
    (runs / "truncated" / "best.safetensors").write_bytes(weights[:5])
    (runs / "lying" / "best.safetensors").write_bytes((10**9).to_bytes(8, "little") + weights[8:200])
    (runs / "fifo" / "best.safetensors").unlink()
    os.mkfifo(runs / "fifo" / "best.safetensors")
    (base / "corpora" / "songs").mkdir(parents=True)
    server = Studio(runs, studio_env(base / "cache"), "--corpora", str(base / "corpora"))  # work: runs/.studio
    server.runs, server.work_base = runs, base
    yield server
    log = server.stop()
    assert "Traceback" not in log, log


def trainings(server) -> list:
    return server.get("/api/train")[1]


def rounds(server) -> list:
    return server.get("/api/history")[1]["rounds"]


@pytest.mark.parametrize("path, body", [("/api/train", TRAIN),
                                        ("/api/generate", json.dumps({"model": "tiny", "num": 1, "bars": 1}).encode()),
                                        ("/api/infill", json.dumps({"model": "tiny", "piece": "0" * 32, "first": 1,
                                                                    "last": 1}).encode()),
                                        ("/api/accompany", json.dumps({"model": "tiny"}).encode())])
def test_cross_site_simple_post_refused(guarded, path, body):
    """The campaign's request: text/plain from another origin, no token. Then each barrier alone."""
    before, made = trainings(guarded), rounds(guarded)
    cases = [
        {"Origin": EVIL, "Content-Type": "text/plain", "X-Cadenza-Token": None},  # the attack as sent
        {"Origin": EVIL},                                       # with the right token, still another site
        {"Content-Type": "text/plain"},                         # same origin, but a "simple" body type
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"X-Cadenza-Token": None},                              # JSON from no page at all
        {"X-Cadenza-Token": "0" * 43},                          # a guessed token
        {"Origin": "null"},                                     # a sandboxed frame or a file:// page
        {"Host": "evil.example"},                               # rebinding: the page's own name
    ]
    for headers in cases:
        status, out = guarded.post(path, raw=body, headers=headers)
        assert status in (403, 415), (headers, status, out)
        assert out["error"] and "\n" not in out["error"]
    assert trainings(guarded) == before and rounds(guarded) == made  # nothing started
    assert not (guarded.runs / "x").exists()
    # the page's own request passes the same barriers (a model that does not exist: 400, not 403)
    status, out = guarded.post("/api/generate", {"model": "nope"}, headers={"Origin": guarded.url})
    assert status == 400 and "no model" in out["error"]


@pytest.mark.parametrize("path", ["/api/accompany", "/api/prompts"])
def test_cross_site_form_upload_refused(guarded, path, tmp_path):
    """A form on another site may post a multipart upload (no CORS preflight): without the
    token, or from another origin, nothing is stored and nothing starts."""
    pieces = guarded.runs / ".studio" / "pieces"
    before, made = sorted(pieces.iterdir()), rounds(guarded)
    melody = write_melody(tmp_path / "tune.mid").read_bytes()
    for headers in ({"Origin": EVIL, "X-Cadenza-Token": None}, {"Origin": EVIL}, {"X-Cadenza-Token": None}):
        status, out = guarded.post_form(path, {"model": "tiny"}, melody, "tune.mid", headers=headers)
        assert status == 403 and "\n" not in out["error"], (headers, status, out)
    assert sorted(pieces.iterdir()) == before and rounds(guarded) == made


def test_foreign_host_reads_nothing(guarded):
    """DNS rebinding: the GET reaches 127.0.0.1 but names the attacker's host."""
    for path in ("/api/models", "/", "/api/train"):
        status, out = guarded.request("GET", path, headers={"Host": "evil.example"})
        assert status == 403 and "own address" in out["error"]
    status, page = guarded.request("GET", "/", headers={"Host": f"localhost:{guarded.port}"})
    assert status == 200 and guarded.token.encode() in page
    status, _ = guarded.request("GET", "/api/models", headers={"Origin": EVIL})
    assert status == 403


def test_training_only_from_named_folders(guarded, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for source in ("/root", "/", str(outside), str(guarded.work_base / "corpora" / ".." / "runs")):
        status, out = guarded.post("/api/train", {"name": "y", "source": source, "minutes": 0.05})
        assert status == 400 and ("--corpora" in out["error"] or "no such" in out["error"]), (source, out)
    link = guarded.work_base / "corpora" / "link"
    link.symlink_to(outside)
    status, out = guarded.post("/api/train", {"name": "y", "source": str(link), "minutes": 0.05})
    assert status == 400 and "--corpora" in out["error"]  # a link out of the named folder
    assert not (guarded.runs / "y").exists()


def test_damaged_runs_listed_alone(guarded):
    for _ in range(3):  # the FIFO is never opened: no listing hangs, however often it is asked
        status, listed = guarded.get("/api/models")
        assert status == 200
    by_id = {m["id"]: m for m in listed}
    assert by_id["tiny"]["parameters"] > 1000 and "error" not in by_id["tiny"]
    for name in ("truncated", "lying", "fifo"):
        assert by_id[name]["error"].startswith("damaged run"), by_id[name]
    assert "not a regular file" in by_id["fifo"]["error"]
    status, out = guarded.post("/api/generate", {"model": "fifo", "num": 1, "bars": 1})
    assert status == 409 and "not a regular file" in out["error"]
    assert guarded.post("/api/generate", {"model": "tiny", "num": 1, "bars": 1, "seed": 1})[0] == 200


@pytest.mark.parametrize("field", ["num", "seed", "temperature", "bars"])
def test_huge_numbers_are_400(guarded, field):
    raw = b'{"model": "tiny", "%s": %s}' % (field.encode(), b"9" * 400)
    status, out = guarded.post("/api/generate", raw=raw)
    assert status == 400 and f"{field} must be" in out["error"]


def test_deeply_nested_json_is_400(guarded):
    status, out = guarded.post("/api/generate", raw=b"[" * 100_000 + b"]" * 100_000)
    assert status == 400 and "not JSON" in out["error"]


def test_refused_corpus_upload_leaves_nothing(guarded):
    before = sorted((guarded.work_base).rglob("*"))
    status, out = guarded.post_form("/api/corpora", {}, b"not MIDI at all", "x.mid", field="files")
    assert status == 400 and "no MIDI file" in out["error"]
    assert sorted((guarded.work_base).rglob("*")) == before


def test_client_leaving_mid_upload_is_not_logged(guarded):
    """60 clients that leave halfway through an upload: the studio goes on, and its log (checked
    when the fixture stops it) holds no traceback."""
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as s:
            s.sendall(b"POST /api/prompts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                      b"boundary=x\r\nContent-Length: 100000\r\nX-Cadenza-Token: " + guarded.token.encode()
                      + b"\r\n\r\n--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mid\"\r\n\r\nMThd")
    time.sleep(0.5)
    assert guarded.get("/api/models")[0] == 200


def test_network_host_needs_the_token(studio, tmp_path):
    """--host 0.0.0.0: the launch says so, and every request without the printed token is refused
    (requests still go to 127.0.0.1 only)."""
    server = Studio(studio.runs, studio_env(tmp_path / "cache"), "--host", "0.0.0.0", token_from_url=True)
    try:
        assert server.request("GET", "/api/models")[0] == 403
        assert server.request("GET", "/")[0] == 403
        status, _ = server.request("GET", f"/?token={server.token}")
        assert status == 200
        assert server.request("GET", "/api/models", headers={"Cookie": f"cadenza_token={server.token}"})[0] == 200
        assert server.request("GET", "/api/models", headers={"X-Cadenza-Token": server.token})[0] == 200
        # on the network any name of the machine may be used; the token is the barrier
        assert server.request("GET", "/api/models", headers={"Host": "my-laptop.lan:1",
                                                             "X-Cadenza-Token": server.token})[0] == 200
    finally:
        server.stop()
    assert "reachable from other machines: every request needs the token" in server.banner
