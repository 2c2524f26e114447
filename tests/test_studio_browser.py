"""The studio's page in a real browser: headless Chromium from the system's package (never a
downloaded one) driven by Playwright. Open the page, pick the tiny run, generate 2
candidates, see both piano rolls, check that each audio element loads a WAV that decodes
with a duration > 0, keep one and continue, download the piece's MIDI and read it back."""
from __future__ import annotations

import os
import shutil

import pytest
from symusic import Score

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


def test_generate_keep_continue_download(page, tmp_path):
    page.locator(".model[data-id=tiny]").click()
    assert page.locator(".model[data-id=tiny] input").is_checked()
    assert page.locator(".model[data-id=tiny] .facts").inner_text().startswith("corpus ")
    page.fill("#bars", "2")
    page.fill("#num", "2")
    page.fill("#seed", "4")
    page.click("#generate")
    cards = check_candidates(page, 2)
    first_bars = int(cards.nth(0).locator("h3").inner_text().split(" · ")[1].split()[0])
    assert first_bars == 2

    cards.nth(0).locator("button.keep").click()
    assert "kept piece" in page.inner_text("#prompt-status")
    page.click("#generate")
    page.wait_for_function("document.querySelector('#gen-status').textContent.endsWith(' candidates')"
                           " && document.querySelector('.candidate h3').textContent.includes('4 bars')")
    cards = check_candidates(page, 2)
    assert "4 bars" in cards.nth(1).locator("h3").inner_text()  # the kept 2 bars, then 2 new
    cards.nth(1).locator("button.keep").click()

    with page.expect_download() as download:
        page.click("#piece a.midi")
    path = tmp_path / "piece.mid"
    download.value.save_as(path)
    piece = Score(str(path))
    assert piece.note_num() > 0
    assert page.evaluate(DECODE, page.get_attribute("#piece a.wav", "href")) > 0
    if os.environ.get("CADENZA_STUDIO_SCREENSHOT"):  # how docs/studio.png is made
        page.screenshot(path=os.environ["CADENZA_STUDIO_SCREENSHOT"], full_page=True)


def test_bad_prompt_upload_shows_one_line(page, tmp_path):
    bad = tmp_path / "notes.mid"
    bad.write_text("not a MIDI file")
    page.set_input_files("#prompt-file", str(bad))
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == "notes.mid is not a MIDI file"


def test_progress_and_cancel(page):
    page.locator(".model[data-id=tiny]").click()
    page.fill("#bars", "64")
    page.fill("#num", "8")
    page.click("#generate")
    page.wait_for_selector("#cancel:not([hidden])")
    assert page.is_visible("#progress")
    page.click("#cancel")
    page.wait_for_function("document.querySelector('#gen-status').textContent === 'cancelled'", timeout=30_000)
    assert page.is_hidden("#cancel") and page.is_enabled("#generate")
