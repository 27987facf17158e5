"""Outfits (issue 21): one outfit per person (or per photo without people), counted from a real SQLite file,
estimated with the correction rates, and served as a page, CSV and JSON."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import numpy as np
import pytest

from closetai.insights.outfits import NOTHING, count_outfits, load_outfits
from closetai.insights.quantify import Rates, outfit_shares, score_bin, score_edges
from closetai.insights.report import OUTFIT_CLASSES, ReportFilters
from closetai.storage.store import NewAnalysis, NewDetection, Store


def _photo(store: Store, name: str, garments: list[tuple], people: int | None = None, source: str = "street",
           day: int = 1) -> int:
    """garments: (label, colour, score[, person])."""
    return store.add_analysis(
        NewAnalysis(kind="photo", filename=name, sha256=name.ljust(64, "0"), width=10, height=10, source=source,
                    captured_at=datetime(2026, 10, day),
                    people=[{"id": i, "box": [0, 0, 5, 5], "score": 0.9} for i in range(people)] if people else None),
        [NewDetection(label=g[0], score=g[2], box=(0, 0, 5, 5), colour_name=g[1], colour_hex="#000000",
                      person=g[3] if len(g) > 3 else None) for g in garments])


@pytest.fixture
def store(store) -> Store:
    """conftest's empty store with the five photos below (c.jpg with three people in it)."""
    s = store
    _photo(s, "a.jpg", [("top", "white", 0.9), ("jeans", "blue", 0.8)])
    _photo(s, "b.jpg", [("top", "white", 0.7), ("jeans", "black", 0.9), ("footwear", "black", 0.9),
                        ("bag", "red", 0.8), ("top", "grey", 0.6)])
    # two people: a dress on one, outerwear and trousers on the other, a bag on nobody; a third with nothing
    _photo(s, "c.jpg", [("dress", "red", 0.9, 0), ("outerwear", "black", 0.8, 1), ("trousers", "grey", 0.7, 1),
                        ("bag", "brown", 0.9)], people=3)
    _photo(s, "d.jpg", [], source="other", day=20)
    _photo(s, "e.jpg", [("bag", "black", 0.9)], source="other", day=21)
    return s


def test_one_outfit_per_person_and_per_photo_without_people(store):
    o = load_outfits(store)
    assert (o.n, o.people, o.photos_without_people, o.photos, o.basis) == (7, 3, 4, 5, "mixed")
    assert dict(zip(o.outfits["outfit"], o.outfits["found"], strict=True)) == {
        "top + jeans": 2, NOTHING: 3, "dress": 1, "outerwear + trousers": 1}
    assert o.outfits["outfit"].tolist()[:2] == [NOTHING, "top + jeans"]  # most common first
    assert o.outfits["share"].tolist()[1] == pytest.approx(2 / 7, abs=1e-4)
    # colours: each class's best garment (b.jpg's 0.7 white top beats its 0.6 grey one)
    colours = dict(zip(o.colour_outfits["outfit"], o.colour_outfits["found"], strict=True))
    assert colours["white top + blue jeans"] == 1 and colours["white top + black jeans"] == 1
    assert colours["black outerwear + grey trousers"] == 1 and "red dress" in colours
    assert not o.estimated and o.outfits["estimated_share"].isna().all()


def test_filters_apply_and_a_confidence_floor_drops_weak_garments(store):
    other = load_outfits(store, ReportFilters.parse(sources=["other"]))
    assert (other.n, other.basis) == (2, "photos") and other.outfits["outfit"].tolist() == [NOTHING]
    strict = load_outfits(store, ReportFilters.parse(sources=["street"], min_score="0.75"))
    found = dict(zip(strict.outfits["outfit"], strict.outfits["found"], strict=True))
    assert found["top + jeans"] == 1 and found["jeans"] == 1 and found["outerwear"] == 1  # trousers at 0.7 gone
    assert load_outfits(store, ReportFilters.parse(until="2026-09-30")).n == 0


def _rates(truth: np.ndarray, scores: np.ndarray) -> Rates:
    return Rates(OUTFIT_CLASSES, truth, scores, 0.5)


def test_outfit_estimates_undo_a_class_the_detector_often_misses():
    """Half the people wear a top under their outerwear; the detector finds the top only half the time
    (never falsely): raw, 'outerwear' alone looks like 75 %; the estimate gets back to ~50 / 50."""
    rng = np.random.default_rng(0)
    top, outer = OUTFIT_CLASSES.index("top"), OUTFIT_CLASSES.index("outerwear")

    def sample(n):
        truth = np.zeros((n, len(OUTFIT_CLASSES)), bool)
        truth[:, outer] = True
        truth[: n // 2, top] = True
        scores = np.where(truth, 0.9, 0.0).astype(np.float32)
        scores[: n // 2, top] = np.where(rng.random(n // 2) < 0.5, 0.9, 0.1)  # found half the time
        return truth, scores

    cal_truth, cal_scores = sample(400)
    truth, scores = sample(2000)
    est = outfit_shares(score_bin(scores, score_edges(0.5)), _rates(cal_truth, cal_scores), top=5, n_boot=50)
    names = [" + ".join(np.array(OUTFIT_CLASSES)[o]) for o in est.outfits]
    assert names[:2] == ["outerwear", "top + outerwear"]
    assert est.raw[0] == pytest.approx(0.75, abs=0.03) and est.raw[1] == pytest.approx(0.25, abs=0.03)
    assert est.share[0] == pytest.approx(0.5, abs=0.05) and est.share[1] == pytest.approx(0.5, abs=0.05)
    assert (est.low <= est.share).all() and (est.share <= est.high).all()


def test_with_rates_the_outfits_get_estimated_shares(store):
    rng = np.random.default_rng(0)
    truth = rng.random((600, len(OUTFIT_CLASSES))) < 0.3
    # a perfect detector (every score bin above the threshold holds calibration photos): estimates = raw shares
    scores = np.where(truth, rng.uniform(0.5, 1.0, truth.shape), 0.0).astype(np.float32)
    o = load_outfits(store, rates=_rates(truth, scores))
    assert o.estimated
    for raw, estimate in zip(o.outfits["share"], o.outfits["estimated_share"], strict=True):
        assert estimate == pytest.approx(raw, abs=0.02)
    # a photo-level rates file that lacks a clothing class gives no estimates rather than wrong ones
    partial = Rates(("top",), truth[:, :1], scores[:, :1], 0.5)
    assert not count_outfits(store.outfit_garments()["garments"], store.outfit_garments()["photos"], partial).estimated


@pytest.fixture
def app(make_app):
    app = make_app()
    s = app.extensions["closetai.storage.store"]
    _photo(s, "a.jpg", [("top", "white", 0.9), ("jeans", "blue", 0.8)])
    _photo(s, "b.jpg", [("top", "black", 0.9), ("jeans", "blue", 0.8)], day=2)
    _photo(s, "c.jpg", [("dress", "red", 0.9, 0), ("outerwear", "black", 0.8, 1)], people=2)
    return app


def test_outfits_page_csv_and_json(client):
    page = client.get("/report/outfits")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="table-outfits"' in html and "top + jeans" in html and "white top + blue jeans" in html
    assert "2 people found, each one outfit" in html.replace("\n", " ").replace("  ", " ")
    body = client.get("/report/outfits.json").get_json()
    assert body["outfits_counted"] == 4 and body["basis"] == "mixed"
    assert {r["outfit"]: r["found"] for r in body["outfits"]} == {"top + jeans": 2, "dress": 1, "outerwear": 1}
    rows = list(csv.DictReader(io.StringIO(client.get("/report/outfits.csv").get_data(as_text=True))))
    assert {r["table"] for r in rows} == {"outfits", "colour_outfits"} and len(rows) == 3 + 4
    assert client.get("/report/outfits.csv").headers["Content-Disposition"].endswith('"closetai-outfits.csv"')
    assert "/report/outfits" in client.get("/report").get_data(as_text=True)  # linked from the report


def test_outfits_follow_new_and_deleted_photos(app, client):
    s = app.extensions["closetai.storage.store"]
    assert client.get("/report/outfits.json").get_json()["outfits_counted"] == 4
    new = _photo(s, "f.jpg", [("dress", "red", 0.9)], day=3)
    body = client.get("/report/outfits.json").get_json()  # not the cached answer
    assert body["outfits_counted"] == 5 and {r["outfit"]: r["found"] for r in body["outfits"]}["dress"] == 2
    s.delete_analysis(new)
    assert client.get("/report/outfits.json").get_json()["outfits_counted"] == 4


def test_outfits_bad_filter_is_a_400_with_its_message(client):
    page = client.get("/report/outfits?since=2026-13-01")
    assert page.status_code == 400 and "since" in page.get_data(as_text=True)
    r = client.get("/report/outfits.json?min_score=2")
    assert r.status_code == 400 and "between 0 and 1" in r.get_json()["error"]


@pytest.mark.parametrize("width", [1280, 390])
def test_outfits_page_in_a_browser(app, browser, width):
    from tests.helpers import REPO, served

    with served(app) as base:
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(base + "/report")
        page.click("#outfits-link a")
        page.wait_for_url(base + "/report/outfits")
        rows = page.locator("#table-outfits tbody tr")
        assert rows.count() == 3 and rows.first.locator("td").first.inner_text() == "top + jeans"
        bars = [page.locator("#table-outfits .bar").nth(i).bounding_box()["width"] for i in range(3)]
        assert bars[0] == pytest.approx(2 * bars[1], rel=0.05) and bars[1] == pytest.approx(bars[2], rel=0.05)
        assert "2 people found" in page.inner_text("#basis")
        assert page.get_attribute("nav a[href='/report']", "aria-current") == "true"  # under Report
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        if width == 1280:
            page.screenshot(path=str(REPO / "docs" / "screenshots" / "outfits.png"), full_page=True)
        page.close()
