"""Result page details through Flask's test client with the shipped model on a CCP photo: the annotated
PNG follows the page's slider and toggles, private media is revalidated (never served stale after a
delete), the favicon, the current page in the nav, the too-small photo hint (issue 20.15)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.helpers import CCP, needs_model

PHOTO = CCP / "photos" / "0005.jpg"

pytestmark = [needs_model, pytest.mark.skipif(not PHOTO.is_file(), reason="needs ../shared/data/ccp/photos")]


@pytest.fixture
def predictor(shipped_predictor):
    return shipped_predictor


def upload(client, data: bytes, name: str) -> dict:
    r = client.post("/api/v1/analyses", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def png(client, url: str) -> np.ndarray:
    r = client.get(url)
    assert r.status_code == 200 and r.mimetype == "image/png", r.data[:200]
    return np.asarray(Image.open(io.BytesIO(r.data)).convert("RGB")).astype(int)


def test_annotated_png_draws_what_the_slider_and_toggles_show(client):
    a = upload(client, PHOTO.read_bytes(), PHOTO.name)
    scores = sorted(d["score"] for d in a["detections"])
    assert len(scores) >= 3
    url = a["urls"]["annotated"]
    photo = np.asarray(Image.open(io.BytesIO(client.get(a["urls"]["photo"]).data)).convert("RGB")).astype(int)
    everything = png(client, url)
    # above the best score nothing is drawn: the photo itself (JPEG decoded the same way)
    assert np.abs(png(client, url + "?min_score=1") - photo).max() == 0
    # a middle threshold draws less than all, more than none
    middle = png(client, url + f"?min_score={scores[len(scores) // 2]:.4f}")
    changed = lambda img: int((np.abs(img - photo).sum(axis=2) > 0).sum())  # noqa: E731
    assert 0 < changed(middle) < changed(everything)
    # the toggles: no masks leaves boxes and labels only; neither draws nothing
    boxes_only = png(client, url + "?masks=0")
    assert 0 < changed(boxes_only) < changed(everything)
    assert changed(png(client, url + "?masks=0&boxes=0")) == 0
    for bad in ("min_score=abc", "min_score=1.5", "min_score=nan", "masks=yes", "boxes=2"):
        r = client.get(url + "?" + bad)
        assert r.status_code == 400 and "must be" in r.get_data(as_text=True), bad


def test_private_media_is_revalidated_and_gone_after_delete(client):
    a = upload(client, PHOTO.read_bytes(), PHOTO.name)
    urls = [a["urls"]["photo"], a["urls"]["thumb"], a["detections"][0]["crop"]]
    for url in urls:
        r = client.get(url)
        assert r.status_code == 200
        assert r.headers["Cache-Control"] == "private, no-cache", url
        etag = r.headers["ETag"]
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(a["urls"]["annotated"]).headers["Cache-Control"] == "private, no-cache"
    assert client.delete(a["urls"]["self"]).status_code == 204
    for url in urls:  # what a browser's revalidation gets after the delete
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 404


def test_favicon_is_linked_and_served(client):
    page = client.get("/").get_data(as_text=True)
    assert '<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">' in page
    r = client.get("/static/favicon.svg")
    assert r.status_code == 200 and r.mimetype == "image/svg+xml" and b"<svg" in r.data
    r = client.get("/favicon.ico")
    assert r.status_code == 301 and r.headers["Location"].endswith("/static/favicon.svg")


@pytest.mark.parametrize("path, current", [("/", "Upload"), ("/videos", "Videos"), ("/history", "History"),
                                           ("/search", "Search"), ("/report", "Report")])
def test_nav_marks_the_current_page(client, path, current):
    html = client.get(path).get_data(as_text=True)
    nav = html[html.index("<nav>"):html.index("</nav>")]
    assert f'aria-current="page">{current}</a>' in nav
    assert nav.count("aria-current") == 1


def test_nav_marks_the_section_of_a_result_page(client):
    a = upload(client, PHOTO.read_bytes(), PHOTO.name)
    nav = client.get(a["urls"]["page"]).get_data(as_text=True).split("</nav>")[0]
    assert 'aria-current="true">History</a>' in nav and nav.count("aria-current") == 1


def test_tiny_photo_says_it_is_too_small(client):
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(buf, format="PNG")
    a = upload(client, buf.getvalue(), "tiny.png")
    html = client.get(a["urls"]["page"]).get_data(as_text=True)
    assert 'id="too-small"' in html and "40&times;40 pixels: too small for reliable" in html
    big = upload(client, PHOTO.read_bytes(), PHOTO.name)
    assert 'id="too-small"' not in client.get(big["urls"]["page"]).get_data(as_text=True)
