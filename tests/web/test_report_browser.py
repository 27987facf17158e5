"""A real browser (Debian chromium via Playwright) opens /report after `ingest` of a few CCP photos."""

from __future__ import annotations

import pytest

from tests.helpers import CCP, REPO, needs_chromium, served

PHOTOS = CCP / "photos"
SCREENSHOT = REPO / "docs" / "screenshots" / "report.png"
NAMES = ["1005.jpg", "1006.jpg", "1007.jpg", "1008.jpg"]  # unlabelled CCP ids: the report's own data

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.shared,
    needs_chromium,
    pytest.mark.skipif(not all((PHOTOS / n).is_file() for n in NAMES),
                       reason="needs ../shared/data/ccp/photos (not present)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Ingest 4 CCP photos with the shipped model, then serve the app on 127.0.0.1 with waitress."""
    from app import create_app
    from closetai.ingest import ingest_folder
    from closetai.vision.predict import Predictor

    folder = tmp_path_factory.mktemp("photos")
    for name in NAMES:
        (folder / name).symlink_to(PHOTOS / name)
    predictor = Predictor(device="cpu")
    app = create_app({"PREDICTOR": predictor, "INSTANCE_PATH": tmp_path_factory.mktemp("instance")})
    summary = ingest_folder(folder, app.extensions["closetai.storage.store"], lambda: predictor, source="CCP street")
    assert len(summary.ingested) == len(NAMES) and summary.garments > 0
    with served(app) as base:
        yield base, app, summary


def test_report_shows_charts_and_tables(server, browser):
    base, app, summary = server
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(base + "/")
    page.click("nav >> text=Report")
    page.wait_for_url(base + "/report")
    assert f"{summary.garments} garments counted in" in page.locator("#summary").inner_text().replace(",", "")

    charts = page.locator("figure.chart svg[role='img']")
    assert charts.count() >= 4  # the pairs chart only when two classes share a photo
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100  # drawn, not collapsed
    assert page.locator("#chart-popular svg title").text_content().startswith("Bar chart of garments per class")
    rows = page.locator("#table-popular tbody tr")
    classes = set(app.extensions["closetai.predictor"].class_names)
    assert rows.count() >= 1 and rows.first.locator("td").first.inner_text() in classes
    assert page.locator("#top-swatches li").count() >= 1

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # The filters travel in the URL: a media filter with no clips gives the explained empty state.
    page.select_option("select[name=kind]", "video")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**/report?*kind=video*")
    assert "No garments to count" in page.locator("#empty-state").inner_text() or \
        "No photos or clips match" in page.locator("#empty-state").inner_text()
    page.goto(base + "/report?min_score=7")
    assert "between 0 and 1" in page.locator("#error-message").inner_text()
    page.close()
