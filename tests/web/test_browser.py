"""A real browser (Debian chromium via Playwright) uploads a CCP photo to a real server on loopback."""

from __future__ import annotations

import pytest

from tests.helpers import CCP, REPO, needs_chromium, served

PHOTO = CCP / "photos" / "0003.jpg"
SCREENSHOT = REPO / "docs" / "screenshots" / "photo.png"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.shared,
    needs_chromium,
    pytest.mark.skipif(not PHOTO.is_file(), reason="needs ../shared/data/ccp/photos (not present)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app served by waitress on 127.0.0.1 and a free port, in a background thread."""
    from app import create_app
    from closetai.vision.predict import Predictor

    app = create_app({"PREDICTOR": Predictor(device="cpu"), "INSTANCE_PATH": tmp_path_factory.mktemp("instance")})
    with served(app) as base:
        yield base, app


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    p = context.new_page()
    yield p
    context.close()


def overlay_pixels(page) -> int:
    """How many canvas pixels are painted (alpha > 0)."""
    return page.evaluate("""() => {
        const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
        return n; }""")


def test_upload_photo_and_see_items(server, page):
    base, app = server
    page.goto(base + "/")
    page.set_input_files("#file", str(PHOTO))
    page.wait_for_url(base + "/analyses/*", timeout=60_000)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    result_path = page.url.replace(base, "")

    items = page.locator("#items .item")
    assert items.count() >= 1
    first = items.first
    assert first.locator(".label").inner_text() in app.extensions["closetai.predictor"].class_names
    colour_name = first.locator(".colour-name").inner_text()
    assert colour_name and colour_name != "unknown"
    swatch = first.locator(".swatch").evaluate("el => getComputedStyle(el).backgroundColor")
    assert swatch.startswith("rgb(")
    assert first.locator("img.crop").evaluate("img => img.complete && img.naturalWidth > 0")

    # masks drawn on the overlay; the toggle hides them; the slider filters items client-side
    with_masks = overlay_pixels(page)
    assert with_masks > 1000
    page.uncheck("#show-masks")
    assert overlay_pixels(page) < with_masks / 2
    page.check("#show-masks")
    total = items.count()
    page.locator("#min-score").evaluate("el => { el.value = el.max; el.dispatchEvent(new Event('input')); }")
    assert int(page.inner_text("#shown-count")) < total
    assert page.locator("#items .item:visible").count() == int(page.inner_text("#shown-count"))
    page.locator("#min-score").evaluate("el => { el.value = el.min; el.dispatchEvent(new Event('input')); }")
    assert int(page.inner_text("#shown-count")) == total

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # the history lists it with a thumbnail and a permanent link
    page.goto(base + "/history")
    assert page.locator(f".history a[href='{result_path}']").count() >= 1
    assert page.locator(".history img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    page.click(f".history a[href='{result_path}'] >> nth=0")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert page.locator("#items .item").count() == total

    # delete from the result page: confirmed, gone from the store and from the history
    store = app.extensions["closetai.storage.store"]
    before = store.count_analyses()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    page.wait_for_url(base + "/history", timeout=30_000)
    assert store.count_analyses() == before - 1
    assert page.locator(f".history a[href='{result_path}']").count() == 0
    assert page.request.get(base + result_path).status == 404


def test_bad_upload_shows_message_and_server_stays_up(server, page, tmp_path):
    base, app = server
    before = app.extensions["closetai.storage.store"].count_analyses()
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is a text file pretending to be a photo\n" * 10)
    page.goto(base + "/")
    page.set_input_files("#file", str(fake))
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=30_000)
    assert error.inner_text() == "not an image (unrecognised content): notes.jpg"
    assert page.url == base + "/"
    assert app.extensions["closetai.storage.store"].count_analyses() == before
    assert page.request.get(base + "/api/v1/health").ok


def test_the_same_photo_again_links_to_the_stored_one_and_store_again_stores_it(server, page):
    """Issue 17.2 through the upload page's script: the second upload says it is stored and links to it;
    with "Store again" ticked it is stored, and the report still counts the file once."""
    base, app = server
    store = app.extensions["closetai.storage.store"]
    page.goto(base + "/")
    page.set_input_files("#file", str(PHOTO))
    page.wait_for_url(base + "/analyses/*", timeout=60_000)
    first_path = page.url.replace(base, "")
    before = store.count_analyses()

    page.goto(base + "/")
    page.set_input_files("#file", str(PHOTO))
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=30_000)
    assert "is already stored" in error.inner_text()
    link = page.locator("#error a#already-stored")
    assert link.get_attribute("href") == first_path and link.inner_text() == "Open the stored photo"
    assert page.url == base + "/" and store.count_analyses() == before

    page.check("#store-again")
    page.set_input_files("#file", [])  # the same file again is no change to the input: clear it first
    page.set_input_files("#file", str(PHOTO))
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Analysing')"
                           " || !document.getElementById('error').hidden", timeout=10_000)
    assert page.locator("#error").is_hidden(), page.locator("#error").inner_text()
    page.wait_for_url(lambda url: "/analyses/" in url and not url.endswith(first_path), timeout=90_000)
    assert store.count_analyses() == before + 1
    report = page.request.get(base + "/report.json").json()
    assert report["analyses"] == before  # the copy is not counted again
