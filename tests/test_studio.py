"""cadenza studio's JSON API over real HTTP against a real server process: models by id,
generation with WAV and MIDI per candidate, prompts uploaded and continued, queueing,
cancelling, training and stopping; a melody accompanied and bars regenerated (issue 26); and
every bad request a 4xx with a one-line reason."""
from __future__ import annotations

import concurrent.futures
import http.client
import io
import json
import re
import time
import wave

import pytest
from symusic import Score

from midifiles import random_piece, write_melody, write_piece


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


def test_models_listed_by_id(studio):
    status, models = studio.get("/api/models")
    assert status == 200
    tiny = next(m for m in models if m["id"] == "tiny")
    assert tiny["corpus"].endswith("corpus") and tiny["parameters"] > 1000
    assert tiny["best_val_loss"] > 0 and len(tiny["curve"]) >= 1


def test_generate_candidates_with_midi_and_wav(studio):
    status, out = studio.post("/api/generate", {"model": "tiny", "num": 2, "bars": 2, "temperature": 0.9,
                                                "top_p": 0.95, "seed": 1})
    assert status == 200, out
    assert len(out["candidates"]) == 2
    for cand in out["candidates"]:
        status, midi = studio.get(cand["midi_url"])
        assert status == 200 and Score.from_midi(midi).note_num() == len(cand["notes"]) > 0
        status, wav = studio.get(cand["wav_url"])
        assert status == 200 and wav[:4] == b"RIFF" and wav_seconds(wav) > 1
        assert cand["num_bars"] == 2
    again = studio.post("/api/generate", {"model": "tiny", "num": 2, "bars": 2, "temperature": 0.9, "seed": 1})[1]
    assert [c["notes"] for c in again["candidates"]] == [c["notes"] for c in out["candidates"]]  # seeded


def test_min_p_and_form_reach_the_sampler(studio):
    """AA over 2 bars: the second bar repeats the first note for note (a one-bar section has no
    varied last bar)."""
    body = {"model": "tiny", "num": 1, "bars": 2, "min_p": 0.05, "form": "AA", "seed": 4}
    status, out = studio.post("/api/generate", body)
    assert status == 200, out
    cand = out["candidates"][0]
    lines = sorted(set(cand["bars"]) | {0})
    bars = [[], []]
    for t, _, pitch, velocity in cand["notes"]:
        k = max(i for i, line in enumerate(lines) if line <= t)
        if k < 2:
            bars[k].append((t - lines[k], pitch, velocity))
    assert bars[0] and sorted(bars[0]) == sorted(bars[1])
    tiny = next(m for m in studio.get("/api/models")[1] if m["id"] == "tiny")
    assert tiny["defaults"]["form"] == "none" and tiny["defaults"]["min_p"] == 0


def test_sampling_fields_take_the_ranges_the_command_line_takes(studio):
    """min-p 1 (the likeliest token, as temperature 0) and a temperature above the page's
    slider are in the declared ranges the command line and config.json use."""
    notes = []
    for sampling in ({"min_p": 1, "temperature": 1, "top_p": 1}, {"temperature": 0}, {"temperature": 8}):
        status, out = studio.post("/api/generate", {"model": "tiny", "num": 1, "bars": 2, "seed": 5, **sampling})
        assert status == 200, out
        notes.append(out["candidates"][0]["notes"])
    assert notes[0] == notes[1]


def test_uploaded_prompt_is_continued(studio, tmp_path):
    import random

    path = write_piece(tmp_path / "theme.mid", random_piece(random.Random(3), n_onsets=40))
    status, out = studio.post_form("/api/generate", {"model": "tiny", "num": "1", "bars": "2", "seed": "2",
                                                     "prompt_bars": "2"}, path.read_bytes())
    assert status == 200, out
    cand = out["candidates"][0]
    assert cand["num_bars"] == 4  # the prompt's first 2 bars, then 2 new ones
    # keep it: the kept candidate is the prompt of the next round, which grows the piece
    status, more = studio.post("/api/generate", {"model": "tiny", "num": 1, "bars": 2, "seed": 3,
                                                 "prompt": cand["id"]})
    assert status == 200 and more["candidates"][0]["num_bars"] == 6
    assert more["candidates"][0]["notes"][:5] == cand["notes"][:5]


def test_concurrent_requests_queue(studio):
    body = {"model": "tiny", "num": 1, "bars": 1}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda seed: studio.post("/api/generate", {**body, "seed": seed}), range(4)))
    assert [status for status, _ in results] == [200] * 4


def test_cancel(studio):
    status, job = studio.post("/api/generate", {"model": "tiny", "num": 8, "bars": 64, "seed": 5, "wait": False})
    assert status == 202 and job["state"] in ("queued", "running")
    assert studio.post(f"/api/jobs/{job['id']}/cancel")[0] == 200
    deadline = time.monotonic() + 30
    while (view := studio.get(f"/api/jobs/{job['id']}")[1])["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert view["state"] == "cancelled" and view["result"] is None


@pytest.mark.parametrize("body, reason", [
    ({"model": "nope"}, "no model 'nope'"),
    ({"model": "../runs/tiny"}, "id of a listed model"),
    ({"model": "/etc"}, "id of a listed model"),
    ({"model": "tiny", "num": 0}, "num must be"),
    ({"model": "tiny", "num": 1000}, "num must be"),
    ({"model": "tiny", "bars": "many"}, "bars must be a number"),
    ({"model": "tiny", "bars": 1.5}, "bars must be"),
    ({"model": "tiny", "temperature": -1}, "temperature must be"),
    ({"model": "tiny", "top_p": 2}, "top_p must be"),
    ({"model": "tiny", "min_p": 1.5}, "min_p must be"),
    ({"model": "tiny", "top_p": 0}, "top_p must be a number in (0, 1]"),
    ({"model": "tiny", "temperature": True}, "temperature must be a number"),
    ({"model": "tiny", "temperature": "warm"}, "temperature must be a number"),
    ({"model": "tiny", "form": "A1"}, "form must be"),
    ({"model": "tiny", "form": 3}, "form must be"),
    ({"model": "tiny", "seed": -3}, "seed must be"),
    ({"model": "tiny", "prompt": "../../etc/passwd"}, "32 hexadecimal digits"),
    ({"model": "tiny", "prompt": "0" * 32}, "no piece"),
    ({"model": "tiny", "path": "/etc"}, "unknown field"),
])
def test_bad_generate_requests(studio, body, reason):
    status, out = studio.post("/api/generate", body)
    assert status == 400 and reason in out["error"] and "\n" not in out["error"]
    assert "--" not in out["error"]  # no CLI flags: the page shows these words
    others = [k for k in body if k != "model"]
    assert out.get("field") == (None if others == ["path"] else others[0] if others else "model"), out


@pytest.mark.slow
def test_history_keep_and_undo_survive_a_restart(studio):
    """Rounds and kept pieces are stored in RUNS/.studio: a new studio process shows them;
    Undo Keep goes back to the piece kept before; downloads have names that sort."""
    from studio_server import Studio, studio_env

    first = studio.post("/api/generate", {"model": "tiny", "num": 1, "bars": 1, "seed": 11})[1]["candidates"][0]
    assert studio.post("/api/keep", {"piece": first["id"]})[1]["piece"]["id"] == first["id"]
    status, out = studio.post("/api/generate", {"model": "tiny", "num": 2, "bars": 1, "seed": 12, "prompt": first["id"]})
    assert out["prompt"] == {"id": first["id"], "name": "the kept piece from tiny"}
    second = out["candidates"][1]
    assert second["prompt_end"] > 0 and second["prompt_name"] == "the kept piece from tiny"
    studio.post("/api/keep", {"piece": second["id"]})
    history = studio.get("/api/history")[1]
    assert history["kept"][-2:] == [first["id"], second["id"]] and history["piece"]["id"] == second["id"]
    assert [c["id"] for c in history["candidates"]] == [c["id"] for c in out["candidates"]]
    assert history["rounds"][-1]["prompt"] == first["id"] and history["rounds"][-1]["model"] == "tiny"
    undone = studio.post("/api/keep/undo")[1]
    assert undone["piece"]["id"] == first["id"]
    assert second["midi_name"].startswith("tiny-") and second["midi_name"].endswith("-2bars-2.mid")
    assert (studio.runs / ".studio" / "history.json").is_file()
    assert "tiny" in [m["id"] for m in studio.get("/api/models")[1]] and ".studio" not in str(studio.get("/api/models")[1])

    again = Studio(studio.runs, studio_env(studio.runs.parent / "cache"))
    try:
        restarted = again.get("/api/history")[1]
        assert restarted["kept"] == studio.get("/api/history")[1]["kept"]
        assert restarted["rounds"] == studio.get("/api/history")[1]["rounds"]
        assert restarted["piece"]["id"] == first["id"]
    finally:
        again.stop()


def test_download_names_sort_by_model_date_bars(studio):
    import urllib.request

    cand = studio.post("/api/generate", {"model": "tiny", "num": 1, "bars": 2, "seed": 21})[1]["candidates"][0]
    with urllib.request.urlopen(studio.url + cand["midi_url"]) as resp:
        disposition = resp.headers["content-disposition"]
    assert re.search(r'filename="tiny-\d{4}-\d\d-\d\d-\d{4}-2bars-1\.mid"', disposition), disposition


def test_bad_requests_are_one_line_4xx(studio):
    cases = [
        studio.post("/api/generate", raw=b"{not json"),
        studio.post("/api/generate", raw=b"[1, 2]"),
        studio.post_form("/api/prompts", {}, b"this is text, not MIDI", "notes.mid"),
        studio.post_form("/api/prompts", {}, b"MThd" + bytes(30), "broken.mid"),
        studio.post_form("/api/prompts", {}),
        studio.get("/api/pieces/../../etc/passwd"),
        studio.get("/api/pieces/" + "a" * 32 + ".wav"),
        studio.get("/api/jobs/nope"),
        studio.get("/api/nothing-here"),
        studio.post("/api/train", {"name": "../x", "source": "bach"}),
        studio.post("/api/train", {"name": "tiny", "source": "bach"}),
        studio.post("/api/train", {"name": "new", "source": "/no/such/folder"}),
        studio.post("/api/train", {"name": "new", "source": "bach", "minutes": "soon"}),
    ]
    for status, out in cases:
        assert 400 <= status < 500 and isinstance(out, dict), (status, out)
        assert out["error"] and "\n" not in out["error"] and "Traceback" not in out["error"]
    assert cases[2][1]["error"] == "notes.mid is not a MIDI file"


def test_oversized_upload_refused_before_it_is_read(studio):
    conn = http.client.HTTPConnection("127.0.0.1", studio.port, timeout=30)
    conn.putrequest("POST", "/api/prompts")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(3 * 1024 * 1024))
    conn.putheader("X-Cadenza-Token", studio.token)
    conn.endheaders()  # no body sent: the answer comes from the headers alone
    resp = conn.getresponse()
    assert resp.status == 413 and "larger than 2 MB" in json.loads(resp.read())["error"]
    conn.close()


@pytest.mark.slow
def test_train_live_and_stop(studio):
    status, started = studio.post("/api/train", {"name": "fresh", "source": str(studio.corpus), "preset": "small",
                                                 "minutes": 2, "steps_per_epoch": 2})
    assert status == 201, started
    deadline = time.monotonic() + 180
    while not (view := studio.get(f"/api/train/{started['id']}")[1])["curve"] and view["state"] == "running":
        assert time.monotonic() < deadline, view
        time.sleep(0.5)
    assert view["curve"], view  # the loss curve grows while it trains
    studio.post(f"/api/train/{started['id']}/stop")
    while (view := studio.get(f"/api/train/{started['id']}")[1])["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert view["state"] in ("stopped", "done"), view
    assert (studio.runs / "fresh" / "state.pt").is_file()  # an ordinary run folder: `--resume` continues it
    assert "fresh" in [m["id"] for m in studio.get("/api/models")[1]]
    if view["state"] == "done":
        return
    assert view["resumable"]
    # Resume: `cadenza train --resume` on the same run, followed under the same id, adds epochs
    before = view["curve"]
    done = len(before)
    status, resumed = studio.post(f"/api/train/{started['id']}/resume")
    assert status == 201 and resumed["id"] == started["id"] and resumed["state"] == "running", resumed
    assert studio.post(f"/api/train/{started['id']}/resume")[1]["error"] == "this training is running already"
    deadline = time.monotonic() + 180
    while len((view := studio.get(f"/api/train/{started['id']}")[1])["curve"]) <= done:
        assert time.monotonic() < deadline and view["state"] == "running", view
        time.sleep(0.5)
    assert view["curve"][:done] == before  # continued, not begun again
    studio.post(f"/api/train/{started['id']}/stop")
    while studio.get(f"/api/train/{started['id']}")[1]["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.3)


def test_cli_port_checked(capsys):
    from cadenza.cli import main

    assert main(["studio", "--port", "70000", "--no-browser"]) == 2
    assert "--port must be from 1 to 65535" in capsys.readouterr().err


@pytest.mark.slow
def test_fine_tune_from_a_listed_model(studio):
    status, started = studio.post("/api/train", {"name": "tuned", "source": str(studio.corpus), "from": "tiny",
                                                 "minutes": 1, "steps_per_epoch": 2})
    assert status == 201, started
    deadline = time.monotonic() + 180
    while (view := studio.get(f"/api/train/{started['id']}")[1])["state"] == "running":
        assert time.monotonic() < deadline, view
        time.sleep(0.3)
    assert view["state"] == "done" and view["curve"], view
    tuned = next(m for m in studio.get("/api/models")[1] if m["id"] == "tuned")
    assert tuned["parameters"] == next(m for m in studio.get("/api/models")[1] if m["id"] == "tiny")["parameters"]
    assert studio.post("/api/train", {"name": "x", "source": "bach", "from": "../tiny"})[0] == 400


def test_damaged_history_is_set_aside_not_lost(tmp_path, capsys):
    from cadenza.errors import CadenzaError
    from cadenza.studio.history import History

    (tmp_path / "history.json").write_text('{"rounds": [')
    history = History(tmp_path)
    assert history.view() == {"rounds": [], "kept": []}
    kept = list(tmp_path.glob("history.json.damaged-*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"rounds": ['
    assert "began a new history" in capsys.readouterr().err
    history.keep("a" * 32)
    assert History(tmp_path).view()["kept"] == ["a" * 32]  # stored, read back by the next studio
    History(tmp_path).undo_keep()
    with pytest.raises(CadenzaError, match="nothing kept to undo"):
        History(tmp_path).undo_keep()


# -- co-creation: accompany a melody, regenerate bars (issue 26) ---------------------------------
def _notes(track) -> list[tuple]:
    return sorted((n.time, n.duration, n.pitch, n.velocity) for n in track.notes)


def _one_line_400(out, status, field=None):
    assert status == 400 and "\n" not in out["error"] and "Traceback" not in out["error"], (status, out)
    assert ".studio" not in out["error"] and "pretrained" not in out["error"], out  # no file: what the page shows
    assert out.get("field") == field, out


def test_accompany_keeps_the_uploaded_melody_note_for_note(studio, tmp_path):
    """The named track of a 2-track file is the melody: the candidate holds it note for note,
    and an accompaniment track under it; both are on the roll, in the MIDI and the WAV."""
    path = write_melody(tmp_path / "tune.mid", bass=True)
    status, out = studio.post_form("/api/accompany", {"model": "base", "num": "1", "seed": "1",
                                                      "melody_track": "Melody"}, path.read_bytes(), "tune.mid")
    assert status == 200, out
    assert out["about"] == "accompanying tune.mid"
    (cand,) = out["candidates"]
    status, midi = studio.get(cand["midi_url"])
    score = Score.from_midi(midi)
    assert [t.name for t in score.tracks] == ["Melody", "Accompaniment"]
    assert _notes(score.tracks[0]) == _notes(Score(str(path)).tracks[0])
    assert len(score.tracks[1].notes) > 0
    assert len(cand["notes"]) == score.note_num() and cand["num_bars"] == 8
    assert cand["made"] == "accompanying tune.mid" and cand["model"] == "base"
    status, wav = studio.get(cand["wav_url"])
    assert status == 200 and wav_seconds(wav) > 1
    assert studio.get("/api/history")[1]["rounds"][-1]["made"] == "accompanying tune.mid"


def test_bad_melodies_are_one_line_4xx_and_start_nothing(studio, tmp_path):
    rounds = len(studio.get("/api/history")[1]["rounds"])
    two = write_melody(tmp_path / "two.mid", bass=True).read_bytes()
    empty = tmp_path / "empty.mid"
    Score(480).dump_midi(str(empty))
    cases = [  # (fields, file, what the error says, its field)
        ({}, two, "two.mid has 2 tracks with notes ('Melody', 'Bass'); say which is the melody in the melody "
                  "track field", "melody_track"),
        ({"melody_track": "Tune"}, two, "two.mid has no track 'Tune' (its tracks: 1 'Melody', 2 'Bass')",
         "melody_track"),
        ({"melody_track": "x" * 101}, two, "melody_track must be", "melody_track"),
        ({}, empty.read_bytes(), "empty.mid cannot be used: no notes", "melody"),
        ({}, b"text, not MIDI", "two.mid is not a MIDI file", "melody"),
        ({}, None, "upload the melody as a MIDI file", "melody"),
        ({"bars": "4"}, two, "unknown field(s): bars", None),
        ({"num": "0"}, two, "num must be", "num"),
        ({"model": "nope"}, two, "no model 'nope'", "model"),
    ]
    for fields, data, says, field in cases:
        status, out = studio.post_form("/api/accompany", {"model": "base", **fields}, data,
                                       "empty.mid" if data == empty.read_bytes() else "two.mid")
        _one_line_400(out, status, field)
        assert out["error"].startswith(says), (says, out)
    assert len(studio.get("/api/history")[1]["rounds"]) == rounds


def test_infill_needs_a_model_trained_for_infill(studio, tmp_path):
    rounds = len(studio.get("/api/history")[1]["rounds"])
    status, piece = studio.post_form("/api/prompts", {}, write_melody(tmp_path / "tune.mid").read_bytes(), "tune.mid")
    assert status == 201
    span = {"piece": piece["id"], "first": 3, "last": 4}
    status, out = studio.post("/api/infill", {"model": "tiny", **span})
    _one_line_400(out, status)
    assert out["error"].startswith("model tiny was not trained for infill: pick a model fine-tuned with infill")
    for body, says, field in [
        ({"first": None}, "first is needed", "first"),
        ({"last": 2}, "last must be bar 3 or later", "last"),
        ({"first": 0}, "first must be a whole number from 1", "first"),
        ({"first": "third"}, "first must be a number", "first"),
        ({"piece": "../x"}, "a piece id is 32 hexadecimal digits", "piece"),
        ({"piece": "0" * 32}, "no piece", "piece"),
        ({"bars": 2}, "unknown field(s): bars", None),
        ({"temperature": -1}, "temperature must be", "temperature"),
    ]:
        status, out = studio.post("/api/infill", {"model": "base", **span, **body})
        _one_line_400(out, status, field)
        assert out["error"].startswith(says), (says, out)
    assert len(studio.get("/api/history")[1]["rounds"]) == rounds


@pytest.mark.slow
def test_infill_keeps_every_note_outside_the_span(studio, infill_model, tmp_path):
    """Bars 3-4 of an uploaded piece regenerated by a model fine-tuned with infill: every note
    outside them kept, the new ones inside them, in a track of their own."""
    path = write_melody(tmp_path / "tune.mid", bass=True)
    source = studio.post_form("/api/prompts", {}, path.read_bytes(), "tune.mid")[1]
    status, out = studio.post("/api/infill", {"model": infill_model, "piece": source["id"], "first": 9, "last": 12})
    _one_line_400(out, status, "last")
    assert out["error"] == "bars 9-12: the piece has 8 bars"
    status, out = studio.post("/api/infill", {"model": infill_model, "piece": source["id"], "first": 3, "last": 4,
                                              "num": 2, "seed": 3})
    assert status == 200, out
    assert out["about"] == "bars 3-4 regenerated" and len(out["candidates"]) == 2
    start, end = source["bars"][2], source["bars"][4]
    before = Score.from_midi(studio.get(source["midi_url"])[1])
    outside = lambda score: sorted(n for t in score.tracks for n in _notes(t) if not start <= n[0] < end)  # noqa: E731
    for cand in out["candidates"]:
        assert cand["span"] == [start, end] and cand["made"] == "bars 3-4 regenerated"
        score = Score.from_midi(studio.get(cand["midi_url"])[1])
        assert outside(score) == outside(before)
        assert score.tracks[-1].name == "infill 3-4" and all(start <= n.time < end for n in score.tracks[-1].notes)
        assert len(cand["notes"]) == score.note_num()
    assert studio.get("/api/history")[1]["rounds"][-1]["prompt"] == source["id"]
