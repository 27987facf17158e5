"""A real browser (Debian chromium via Playwright) uploads a clip on /videos, watches the progress bar
finish, and sees the annotated video, the track rows and the timeline; saves docs/screenshots/video.png.

The clip is a CCP photo (Apache-2.0) panned into a clip: the screenshot is committed, and the street
clips in ../shared may not be redistributed, not even as a still."""

from __future__ import annotations

import pytest

from tests.helpers import REPO, needs_chromium, served
from tests.media_helpers import CCP_PHOTO as PHOTO
from tests.media_helpers import ccp_photo_clip

SCREENSHOT = REPO / "docs" / "screenshots" / "video.png"
SECONDS = 3.0

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.shared,
    needs_chromium,
    pytest.mark.skipif(not PHOTO.is_file(), reason="needs ../shared CCP photos"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from app import create_app
    from closetai.vision.predict import Predictor

    app = create_app({"PREDICTOR": Predictor(device="cpu", threads=2),
                      "INSTANCE_PATH": tmp_path_factory.mktemp("instance")})
    with served(app) as base:
        yield base, app
        app.extensions["closetai.jobs.runner"].stop()


def test_upload_clip_watch_progress_and_see_tracks(server, browser, tmp_path):
    base, app = server
    clip = ccp_photo_clip(tmp_path / "street.mp4")
    page = browser.new_context(viewport={"width": 1280, "height": 1100}).new_page()
    page.goto(base + "/")
    page.click("nav >> text=Videos")
    # click() returns once the navigation commits; wait for "load" so the deferred upload script has
    # attached its change listener before the file is picked (CI lost this race once)
    page.wait_for_url(base + "/videos", wait_until="load")
    page.set_input_files("#file", str(clip))
    page.wait_for_url(base + "/videos/*", timeout=30_000)
    job_path = page.url.replace(base, "")

    # the live bar: moves while analysing (frames done / total, elapsed, time left)
    page.wait_for_selector("#job-progress", timeout=10_000)
    page.wait_for_function("() => Number(document.getElementById('job-progress').value) > 0", timeout=120_000)
    frames_text = page.locator("#frames").inner_text()
    done, total = (int(v) for v in frames_text.split("/"))
    assert 0 < done <= total == int(SECONDS * 5)
    assert page.locator("#elapsed").inner_text().endswith(" s")
    page.reload()  # survives a reload: the bar is rendered again, not lost
    # then the page reloads itself with the result once the job is done
    page.wait_for_selector("video#annotated", timeout=240_000)
    assert page.url == base + job_path
    assert page.locator("#partial").count() == 0

    # the annotated video plays in the browser (metadata loaded: H.264 decodable by chromium)
    page.wait_for_function("() => document.getElementById('annotated').readyState >= 1", timeout=30_000)
    size = page.evaluate("() => [document.getElementById('annotated').videoWidth, "
                         "document.getElementById('annotated').videoHeight]")
    assert size[1] > size[0]  # the portrait street clip stays portrait
    rows = page.locator("#tracks tr.track")
    assert rows.count() >= 1
    first = rows.first
    assert first.locator(".label").inner_text() in app.extensions["closetai.predictor"].class_names
    assert first.locator(".colour-name").inner_text() not in ("", "unknown")
    assert first.locator("img.crop").evaluate("img => img.complete && img.naturalWidth > 0")
    chart = page.locator("#timeline svg[role='img']")
    assert "Timeline of street.mp4" in chart.get_attribute("aria-label")
    assert page.locator("#timeline").inner_text().count("Garments on screen") >= 1

    page.locator("#timeline").scroll_into_view_if_needed()
    page.evaluate("() => window.scrollTo(0, 0)")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # the list shows it as done
    page.goto(base + "/videos")
    row = page.locator("tr.job").first
    assert "done" in row.inner_text() and "street.mp4" in row.inner_text()
    page.context.close()
