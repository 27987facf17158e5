"""A real browser (Debian chromium via Playwright) uploads two CCP photos, opens a garment's similar items
and finds the other photo in the grid; then searches by upload on /search."""

from __future__ import annotations

import re

import pytest

from tests.helpers import CCP, REPO, browser_test_with_photos, served

PHOTOS = [CCP / "photos" / "0003.jpg", CCP / "photos" / "0005.jpg"]
SCREENSHOT = REPO / "docs" / "screenshots" / "similar.png"

pytestmark = browser_test_with_photos(PHOTOS)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from app import create_app
    from closetai.vision.predict import Predictor

    app = create_app({"PREDICTOR": Predictor(device="cpu"), "INSTANCE_PATH": tmp_path_factory.mktemp("instance")})
    with served(app) as base:
        yield base


def test_similar_items_link_to_the_other_photo(server, browser):
    base = server
    page = browser.new_context(viewport={"width": 1280, "height": 1100}).new_page()
    result_paths = []
    for photo in PHOTOS:
        page.goto(base + "/")
        page.set_input_files("#file", str(photo))
        page.wait_for_url(base + "/analyses/*", timeout=60_000)
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        result_paths.append(page.url.replace(base, ""))
    first_id = re.search(r"/analyses/(\d+)", result_paths[0]).group(1)

    button = page.locator("#items .item .similar-button").first
    button.wait_for(state="visible", timeout=10_000)
    button.click()
    page.wait_for_selector("body[data-similar-ready='1']", timeout=10_000)
    page.uncheck("#same-class")  # any class: the other photo's garments all qualify
    page.wait_for_selector("body[data-similar-ready='2']", timeout=10_000)
    links = page.locator("#similar-grid a")
    assert links.count() >= 1
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert all(h.startswith(f"/analyses/{first_id}#item-") for h in hrefs), hrefs  # only the other photo
    shown = page.locator("#similar-grid .similarity").first
    assert re.fullmatch(r"\d{1,3}% match", shown.inner_text())  # the shipped match scale (issue 20.11)
    assert "different garments" in shown.get_attribute("title")
    assert page.locator("#similar-grid img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.locator("#similar").screenshot(path=str(SCREENSHOT))
    links.first.click()
    page.wait_for_url(re.compile(rf".*/analyses/{first_id}#item-\d+"), timeout=10_000)

    # search by upload: the photo is not stored, its garments are listed, matches come from both photos
    page.goto(base + "/search")
    page.uncheck("#same-class")
    page.set_input_files("#search-file", str(PHOTOS[0]))
    page.wait_for_selector("body[data-search-ready='1']", timeout=60_000)
    assert page.locator("#search-garments li").count() >= 1
    assert page.locator("#similar-grid a").count() >= 1
    page.context.close()
