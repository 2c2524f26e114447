"""The studio's page in a real browser: headless Chromium from the system's package (never a
downloaded one) driven by Playwright. Open the page, pick the tiny run, generate 2
candidates, see both piano rolls, check that each audio element loads a WAV that decodes
with a duration > 0, keep one and continue, download the piece's MIDI and read it back; a
prompt still uploading holds Generate; the history survives a reload and a restart; a
stopped training resumes; errors stand beside their field; a melody accompanied and bars
regenerated (issue 26). The tests run in order on one page."""
from __future__ import annotations

import os
import random
import re
import shutil
import time

import pytest
from symusic import Score

from midifiles import random_piece, write_melody, write_piece

CHROMIUM = os.environ.get("CADENZA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install chromium; .ci/run installs it)")

DECODE = """async (url) => {
  const data = await (await fetch(url)).arrayBuffer();
  const ctx = new OfflineAudioContext(1, 1, 22050);
  return (await ctx.decodeAudioData(data)).duration;
}"""
INKED = """(canvas) => {
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) inked++;
  return inked;
}"""


@pytest.fixture(scope="module")
def page(studio):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 1600}, accept_downloads=True)
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(studio.url + "/")
        yield page
        browser.close()
        assert not errors, errors


def check_candidates(page, n):
    page.wait_for_selector(f"#candidates .candidate >> nth={n - 1}", timeout=60_000)
    cards = page.locator("#candidates .candidate")
    assert cards.count() == n
    for k in range(n):
        card = cards.nth(k)
        assert card.locator("canvas.roll").evaluate(INKED) > 100  # a piano roll was drawn
        audio = card.locator("audio")
        audio.evaluate("a => a.readyState >= 1 || new Promise(r => a.addEventListener('loadedmetadata', r))")
        assert audio.evaluate("a => a.duration") > 0
        assert page.evaluate(DECODE, audio.get_attribute("src")) > 0
    return cards


PROMPT_LINE = """(canvas) => {
  const ratio = window.devicePixelRatio || 1, x = Math.round(Number(canvas.dataset.promptX) * ratio);
  const d = canvas.getContext('2d').getImageData(x, 0, 1, canvas.height).data;
  let marked = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] === 0xd9 && d[i + 1] === 0x77 && d[i + 2] === 0x06) marked++;
  return marked / canvas.height;
}"""


def wait_status(page, pattern: str, timeout=60_000):
    try:
        page.wait_for_function(f"/{pattern}/.test((document.querySelector('#gen-status')?.textContent ?? ''))", timeout=timeout)
    except Exception:
        raise AssertionError(f"status {page.inner_text('#gen-status')!r}, not /{pattern}/") from None


def test_generate_keep_continue_download(page, tmp_path):
    page.wait_for_function("!(document.querySelector('#rounds')?.textContent ?? '').includes('loading')")
    page.click("#prompt-clear")  # the studio's history may hold a kept piece (tests/test_studio.py)
    page.locator(".model[data-id=tiny]").click()
    assert page.locator(".model[data-id=tiny] input").is_checked()
    assert page.locator(".model[data-id=tiny] .facts").inner_text().startswith("corpus ")
    page.fill("#bars", "2")
    page.fill("#num", "2")
    page.fill("#seed", "4")
    page.click("#generate")
    wait_status(page, "^2 candidates, no prompt$")
    cards = check_candidates(page, 2)
    assert page.evaluate("document.activeElement === document.querySelector('.candidate')")  # focus follows
    first_bars = int(cards.nth(0).locator("h3").inner_text().split(" · ")[1].split()[0])
    assert first_bars == 2
    label = cards.nth(0).locator("canvas").get_attribute("aria-label")
    assert re.fullmatch(r"piano roll: 2 bars, [A-G]#?-?\d to [A-G]#?\d", label), label  # pitch labels

    cards.nth(0).locator("button.keep").click()
    page.wait_for_function("(document.querySelector('#prompt-status')?.textContent ?? '').includes('kept piece')")
    page.click("#generate")
    wait_status(page, "^2 candidates, continuing the kept piece from tiny$")
    cards = check_candidates(page, 2)
    assert "4 bars" in cards.nth(1).locator("h3").inner_text()  # the kept 2 bars, then 2 new
    roll = cards.nth(1).locator("canvas")
    assert "the prompt is bars 1 to 2, shaded" in roll.get_attribute("aria-label")
    assert roll.evaluate(PROMPT_LINE) > 0.5  # the marked line where the kept bars end
    cards.nth(1).locator("button.keep").click()
    page.wait_for_function("(document.querySelector('#piece .piece h3')?.textContent ?? '').includes('4 bars')")

    with page.expect_download() as download:
        page.click("#piece a.midi")
    assert re.fullmatch(r"tiny-\d{4}-\d\d-\d\d-\d{4}-4bars-2\.mid", download.value.suggested_filename)
    path = tmp_path / "piece.mid"
    download.value.save_as(path)
    piece = Score(str(path))
    assert piece.note_num() > 0
    assert page.evaluate(DECODE, page.get_attribute("#piece a.wav", "href")) > 0


def test_playhead_follows_the_audio(page):
    card = page.locator("#candidates .candidate").nth(0)
    card.locator("audio").evaluate("a => { a.currentTime = a.duration / 2; }")
    page.wait_for_function("(() => { const h = document.querySelector('.candidate .playhead');"
                           " return h && !h.hidden && parseFloat(h.style.left) > 60; })()")
    left = float(card.locator(".playhead").evaluate("h => parseFloat(h.style.left)"))
    width = card.locator("canvas").evaluate("c => c.clientWidth")
    assert 0.3 * width < left < 0.8 * width  # half the audio is about half the roll (plus the label gutter)


def test_uploading_prompt_holds_generate(page, tmp_path):
    """Issue 27.1: while a prompt uploads Generate waits; the request names that prompt, and the
    status names the prompt the candidates continue."""
    theme = write_piece(tmp_path / "theme.mid", random_piece(random.Random(3), n_onsets=40))
    held = []
    page.route("**/api/prompts", lambda route: held.append(route))
    page.set_input_files("#prompt-file", str(theme))
    page.wait_for_function("(document.querySelector('#prompt-status')?.textContent ?? '') === 'uploading theme.mid…'")
    assert page.is_disabled("#generate")
    page.wait_for_function("() => true")  # let the held request arrive at the route
    deadline = time.monotonic() + 10
    while not held:
        assert time.monotonic() < deadline
        page.wait_for_timeout(50)
    with page.expect_response("**/api/prompts") as uploaded:
        held[0].continue_()
    page.unroute("**/api/prompts")
    prompt_id = uploaded.value.json()["id"]
    page.wait_for_function("(document.querySelector('#prompt-status')?.textContent ?? '').startsWith('theme.mid: ')")
    assert page.is_enabled("#generate")
    page.fill("#prompt-bars", "2")
    page.fill("#num", "1")
    with page.expect_request("**/api/generate") as sent:
        page.click("#generate")
    assert sent.value.post_data_json["prompt"] == prompt_id and sent.value.post_data_json["prompt_bars"] == 2
    wait_status(page, "^1 candidate, continuing theme.mid$")
    card = page.locator("#candidates .candidate").nth(0)
    assert "continues theme.mid (shaded)" in card.locator("h3").inner_text()
    assert card.locator("canvas").evaluate(PROMPT_LINE) > 0.5


def test_dropped_midi_file_becomes_the_prompt(page, tmp_path):
    data = list(write_piece(tmp_path / "dropped.mid", random_piece(random.Random(5), n_onsets=20)).read_bytes())
    transfer = page.evaluate_handle("(bytes) => { const t = new DataTransfer(); t.items.add(new File("
                                    "[new Uint8Array(bytes)], 'dropped.mid', {type: 'audio/midi'})); return t; }", data)
    page.dispatch_event("#prompt-section", "drop", {"dataTransfer": transfer})
    page.wait_for_function("(document.querySelector('#prompt-status')?.textContent ?? '').startsWith('dropped.mid: ')")


def test_errors_stand_beside_their_field(page, tmp_path):
    page.wait_for_selector("#generate:not([disabled])", timeout=120_000)  # the tests before may still generate
    page.fill("#form", "A1")
    page.click("#generate")
    note = page.locator("#options-section .field-error")
    note.wait_for()
    assert note.inner_text().startswith("Form must be letters such as AABA")
    assert page.get_attribute("#form", "aria-invalid") == "true" and page.is_hidden("#error")
    assert page.inner_text("#gen-status") == "not started"  # not "starting…" forever
    page.fill("#form", "none")
    page.fill("#bars", "99")
    page.click("#generate")
    page.wait_for_function("(document.querySelector('#options-section .field-error')?.textContent ?? '')"
                           " === 'Bars must be a whole number from 1 to 64'")
    assert page.get_attribute("#form", "aria-invalid") is None  # the earlier note is gone
    page.fill("#bars", "2")
    bad = tmp_path / "notes.mid"
    bad.write_text("not a MIDI file")
    page.set_input_files("#prompt-file", str(bad))
    page.wait_for_selector("#prompt-section .field-error")
    assert page.inner_text("#prompt-section .field-error") == "notes.mid is not a MIDI file"


def test_history_survives_reload_and_restart(page, studio):
    """Issue 27.2: the candidates, the kept piece and the rounds come back after a reload of
    the page and in a new studio process over the same runs folder; Undo Keep goes back."""
    kept = page.get_attribute("#piece .piece", "data-id")
    rounds = page.locator("#rounds li").count()
    assert rounds >= 3
    shown = page.locator("#candidates .candidate").first.get_attribute("data-id")
    page.reload()
    page.wait_for_selector(f"#piece .piece[data-id='{kept}']")
    assert page.locator("#candidates .candidate").first.get_attribute("data-id") == shown
    assert page.locator("#rounds li").count() == rounds
    assert "kept piece" in page.inner_text("#prompt-status")
    page.click("#undo-keep")  # back to the 2-bar piece kept first
    page.wait_for_function("(document.querySelector('#piece .piece h3')?.textContent ?? '').includes('· 2 bars')")
    first_kept = page.get_attribute("#piece .piece", "data-id")
    assert page.locator("#candidates .candidate.kept").count() == 0

    from studio_server import Studio, studio_env
    again = Studio(studio.runs, studio_env(studio.runs.parent / "cache"))
    try:
        page.goto(again.url + "/")
        page.wait_for_selector(f"#piece .piece[data-id='{first_kept}']")
        page.wait_for_function(f"document.querySelectorAll('#rounds li').length === {rounds}")
        assert page.locator("#candidates .candidate").first.get_attribute("data-id") == shown
    finally:
        page.goto(studio.url + "/")
        again.stop()


def test_stopped_training_resumes_and_fine_tune_choice_stays(page, studio):
    """Issue 27.5: Resume continues a stopped training; "fine-tune from" survives a reload
    and a refresh of the list, and the preset menu is disabled while it is chosen."""
    page.select_option("#train-from", "tiny")
    assert page.is_disabled("#train-preset") and page.is_visible("#preset-note")
    status, started = studio.post("/api/train", {"name": "resumable", "source": str(studio.corpus),
                                                 "preset": "small", "minutes": 2, "steps_per_epoch": 2})
    assert status == 201, started
    deadline = time.monotonic() + 180  # a busy 2-core machine takes 40 s to the first epoch
    while not (view := studio.get(f"/api/train/{started['id']}")[1])["curve"]:
        assert time.monotonic() < deadline and view["state"] == "running", view
        time.sleep(0.3)
    studio.post(f"/api/train/{started['id']}/stop")
    page.reload()
    page.wait_for_selector("#train-resume:not([hidden])", timeout=60_000)
    assert page.input_value("#train-from") == "tiny" and page.is_disabled("#train-preset")
    assert "resumable: stopped" in page.inner_text("#train-status")
    page.click("#train-resume")
    page.wait_for_selector("#train-stop:not([hidden])")
    assert page.inner_text("#train-status").startswith("resumable: running")
    # the resumed process reads its corpus again (that it trains on is test_studio.py's check)
    page.wait_for_function("(document.querySelector('#train-log')?.textContent ?? '').includes('corpus: 12 files')",
                           timeout=120_000)
    page.click("#train-stop")
    page.wait_for_selector("#train-resume:not([hidden])", timeout=60_000)
    assert "resumable: stopped" in page.inner_text("#train-status")
    assert page.input_value("#train-from") == "tiny"  # the list was refreshed when it ended
    page.select_option("#train-from", "")
    assert page.is_enabled("#train-preset")
    if os.environ.get("CADENZA_STUDIO_SCREENSHOT"):  # how docs/studio.png is made
        page.screenshot(path=os.environ["CADENZA_STUDIO_SCREENSHOT"], full_page=True)


def test_progress_and_cancel(page):
    page.locator(".model[data-id=tiny]").click()
    page.fill("#bars", "64")
    page.fill("#num", "8")
    page.click("#generate")
    page.wait_for_selector("#cancel:not([hidden])")
    assert page.is_visible("#progress")
    page.click("#cancel")
    page.wait_for_function("(document.querySelector('#gen-status')?.textContent ?? '') === 'cancelled'", timeout=30_000)
    assert page.is_hidden("#cancel") and page.is_enabled("#generate")


def test_key_and_tempo_reach_the_candidates_file(page, tmp_path):
    """The key, tempo and density fields go through the API's checks (a bad key, a density for a
    model without controls, are refused beside their field) and into the written piece: every
    tempo event the asked bpm, the asked key's signature."""
    page.wait_for_selector("#generate:not([disabled])", timeout=120_000)
    page.click("#prompt-clear")  # a prompt sets the key
    page.locator(".model[data-id=tiny]").click()
    page.fill("#bars", "2")
    page.fill("#num", "1")
    page.fill("#key", "H:major")
    page.click("#generate")
    page.wait_for_function("(document.querySelector('#options-section .field-error')?.textContent ?? '')"
                           ".includes(\"unknown key 'H:major'\")")
    page.fill("#key", "A:minor")
    page.select_option("#density", "high")  # the tiny model was trained without density controls
    page.click("#generate")
    page.wait_for_function("(document.querySelector('#options-section .field-error')?.textContent ?? '')"
                           ".includes('not trained with density controls')")
    page.select_option("#density", "")
    page.fill("#tempo", "90")
    page.click("#generate")
    wait_status(page, "^1 candidate, no prompt$", timeout=120_000)
    check_candidates(page, 1).nth(0).locator("button.keep").click()
    page.wait_for_function("(document.querySelector('#piece .piece h3')?.textContent ?? '').includes('2 bars')")
    with page.expect_download() as download:
        page.click("#piece a.midi")
    path = tmp_path / "steered.mid"
    download.value.save_as(path)
    piece = Score(str(path))
    assert piece.note_num() > 0 and [round(t.qpm, 3) for t in piece.tempos] == [90.0]
    assert [(k.key, k.tonality) for k in piece.key_signatures] == [(0, 1)]  # A minor: no sharps, minor
    page.fill("#key", "")
    page.fill("#tempo", "")


def _notes(track) -> list[tuple]:
    return sorted((n.time, n.duration, n.pitch, n.velocity) for n in track.notes)


def test_accompany_a_melody(page, tmp_path):
    """Issue 26.2: a melody file of two tracks is a one-line error beside the melody track field;
    one track is accompanied: the candidate is drawn and plays, is kept, and its MIDI holds the
    melody note for note under an accompaniment."""
    page.wait_for_selector("#generate:not([disabled])", timeout=120_000)
    page.locator(".model[data-id=base]").click()
    page.fill("#num", "1")
    page.fill("#seed", "2")
    page.set_input_files("#melody-file", str(write_melody(tmp_path / "two.mid", bass=True)))
    page.click("#accompany")
    note = page.locator("#accompany-section .field-error")
    note.wait_for()
    assert note.inner_text() == ("two.mid has 2 tracks with notes ('Melody', 'Bass'); say which is the melody "
                                 "in the melody track field")
    assert page.get_attribute("#melody-track", "aria-invalid") == "true"
    tune = write_melody(tmp_path / "tune.mid")
    page.set_input_files("#melody-file", str(tune))
    page.click("#accompany")
    wait_status(page, "^1 candidate, accompanying tune.mid$", timeout=120_000)
    assert page.locator("#accompany-section .field-error").count() == 0
    card = check_candidates(page, 1).nth(0)
    assert card.locator("h3").inner_text().endswith("· accompanying tune.mid")
    assert "accompanying tune.mid" in page.locator("#rounds li").first.inner_text()
    card.locator("button.keep").click()
    page.wait_for_function("(document.querySelector('#piece .piece h3')?.textContent ?? '')"
                           ".includes('accompanying tune.mid')")
    with page.expect_download() as download:
        page.click("#piece a.midi")
    path = tmp_path / "accompanied.mid"
    download.value.save_as(path)
    score = Score(str(path))
    assert [t.name for t in score.tracks] == ["Melody", "Accompaniment"] and len(score.tracks[1].notes) > 0
    assert _notes(score.tracks[0]) == _notes(Score(str(tune)).tracks[0])


def test_regenerate_bars_needs_an_infill_model(page):
    """Issue 26.1: a drag across a candidate's roll fills its span fields and shows the span over
    the roll; with a model not trained for infill, Regenerate bars is a one-line error on that card."""
    card = page.locator("#candidates .candidate").nth(0)
    assert "8 bars" in card.locator("h3").inner_text()
    box = card.locator("canvas.roll").bounding_box()
    at = lambda bar: box["x"] + 30 + (bar - 0.5) / 8 * (box["width"] - 30)  # noqa: E731 (30: the pitch labels)
    page.mouse.move(at(4), box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(at(3.6), box["y"] + 20, steps=3)
    page.mouse.move(at(3), box["y"] + 20, steps=3)
    page.mouse.up()
    assert card.locator("input.first").input_value() == "3" and card.locator("input.last").input_value() == "4"
    shade = card.locator(".selection")
    assert shade.is_visible()
    assert abs(shade.bounding_box()["width"] - 2 / 8 * (box["width"] - 30)) < 4
    card.locator("input.last").fill("5")  # typed: the shade follows
    page.wait_for_function("Math.abs(document.querySelector('.candidate .selection').getBoundingClientRect().width"
                           f" - {3 / 8 * (box['width'] - 30)}) < 4")
    page.locator(".model[data-id=tiny]").click()
    card.locator("button.regen-bars").click()
    error = card.locator(".section-error")
    error.wait_for()
    assert error.inner_text().startswith("model tiny was not trained for infill: pick a model fine-tuned with infill")
    assert page.inner_text("#gen-status") == "not started" and page.is_enabled("#generate")
    card.locator("input.first").fill("")
    card.locator("button.regen-bars").click()  # a field of the card: its error beside it
    page.wait_for_function("(document.querySelector('.candidate .field-error')?.textContent ?? '')"
                           ".startsWith('First bar is needed')")
    assert card.locator("input.first").get_attribute("aria-invalid") == "true" and error.is_hidden()


def test_regenerate_bars_of_the_kept_piece(page, studio, infill_model):
    """Issue 26.1 with a model fine-tuned with infill: bars 3-4 of the kept piece regenerated,
    the candidate drawn with the span shaded and playable, every note outside the span kept."""
    page.reload()
    page.locator(f".model[data-id={infill_model}]").click()
    page.fill("#num", "1")
    page.fill("#seed", "5")
    piece = page.locator("#piece .piece")
    piece.locator("input.first").fill("3")
    piece.locator("input.last").fill("4")
    piece.locator("button.regen-bars").click()
    wait_status(page, "^1 candidate, bars 3-4 regenerated$", timeout=180_000)
    card = check_candidates(page, 1).nth(0)
    assert "bars 3-4 regenerated, shaded" in card.locator("canvas").get_attribute("aria-label")
    source = studio.get(f"/api/pieces/{piece.get_attribute('data-id')}.json")[1]
    new = studio.get(f"/api/pieces/{card.get_attribute('data-id')}.json")[1]
    start, end = source["bars"][2], source["bars"][4]
    assert new["span"] == [start, end]
    assert sorted(n for n in new["notes"] if not start <= n[0] < end) == \
        sorted(n for n in source["notes"] if not start <= n[0] < end)
