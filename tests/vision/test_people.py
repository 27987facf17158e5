"""closetai.vision.people: each garment goes to the person whose mask holds most of it, or to nobody."""

import numpy as np

from closetai.vision.detections import Detections
from closetai.vision.people import assign_garments, people_json, with_people


def _boxes_to_dets(rects, names, labels=None, scores=None, shape=(100, 100)):
    masks = np.zeros((len(rects), *shape), bool)
    for m, (y0, y1, x0, x1) in zip(masks, rects, strict=True):
        m[y0:y1, x0:x1] = True
    boxes = [[x0, y0, x1, y1] for y0, y1, x0, x1 in rects]
    return Detections(np.array(boxes).reshape(-1, 4), np.array(scores or [0.9] * len(rects)),
                      np.array(labels or [1] * len(rects)), names, masks=masks)


def test_garments_go_to_the_person_holding_most_of_them():
    people = _boxes_to_dets([(0, 100, 0, 45), (0, 100, 40, 100)], ("person",))
    garments = _boxes_to_dets([(10, 40, 5, 35),  # inside person 0
                               (10, 40, 42, 90),  # mostly person 1 (3 of 48 columns over person 0 too)
                               (60, 70, 30, 60),  # straddles: 15 columns in 0, 20 in 1 (5 in both) -> 1
                               (0, 10, 0, 100)], ("top", "jeans"), labels=[1, 2, 2, 1])
    garments.people = people
    owner = assign_garments(garments, people)
    assert owner.tolist() == [0, 1, 1, 1]
    off_everyone = _boxes_to_dets([(10, 20, 10, 20)], ("top",))
    assert assign_garments(off_everyone, _boxes_to_dets([(50, 100, 50, 100)], ("person",))).tolist() == [-1]
    half_on = _boxes_to_dets([(0, 10, 40, 60)], ("top",))  # 5 of 20 columns on person 0: 25 % < 50 %
    assert assign_garments(half_on, _boxes_to_dets([(0, 100, 0, 45)], ("person",))).tolist() == [-1]
    assert assign_garments(half_on, None).tolist() == [-1]


def test_photo_json_lists_people_with_their_garments_and_people_without_any():
    people = _boxes_to_dets([(0, 100, 0, 45), (0, 100, 55, 100)], ("person",), scores=[0.95, 0.7])
    garments = _boxes_to_dets([(10, 40, 5, 35), (50, 60, 5, 35)], ("top", "jeans"), labels=[1, 2])
    garments.people = people
    items, listed = with_people(garments)
    assert [it["person"] for it in items] == [0, 0]
    assert [p["garments"] for p in listed] == [[0, 1], []]  # person 1 wears nothing found: still listed
    assert listed[1]["score"] == 0.7 and listed[0]["mask"]["size"] == [100, 100]
    assert people_json(_boxes_to_dets([], ("top",))) == []


def _app_with_photo(tmp_path, predictor):
    """A real app (SQLite in tmp_path) with one 200x160 photo uploaded: (app, the upload's JSON)."""
    import io

    from PIL import Image

    from app import create_app

    app = create_app({"TESTING": True, "PREDICTOR": predictor, "INSTANCE_PATH": tmp_path / "i",
                      "REPORT_CHART_PROCESS": False})
    buf = io.BytesIO()
    Image.fromarray(np.full((160, 200, 3), 120, np.uint8)).save(buf, "PNG")
    res = app.test_client().post("/api/v1/analyses", data={"file": (io.BytesIO(buf.getvalue()), "two.png")},
                                 content_type="multipart/form-data")
    assert res.status_code == 201, res.get_json()
    return app, res.get_json()


class TwoPeoplePredictor:
    """Two people side by side on a 200x160 photo; a top and jeans on the left one, a bag on nobody."""

    class_names = ("top", "jeans", "bag")
    min_score = 0.5
    info = {"name": "fake-people", "taxonomy": "test", "device": "cpu", "classes": list(class_names)}
    meta = {"config": {"min_size": 448}}

    def __call__(self, rgb, min_score=None):
        h, w = rgb.shape[:2]
        garments = _boxes_to_dets([(20, 70, 10, 60), (80, 150, 15, 55), (10, 30, 170, 195)], self.class_names,
                                  labels=[1, 2, 3], scores=[0.9, 0.8, 0.7], shape=(h, w))
        garments.people = _boxes_to_dets([(0, 160, 0, 80), (0, 160, 100, 160)], ("person",),
                                         scores=[0.97, 0.9], shape=(h, w))
        return garments


def test_people_are_stored_served_in_the_api_and_grouped_on_the_result_page(tmp_path):
    """issue 21: POST /api/v1/analyses gains "people" (garments as detection indices) and each
    detection "person"; they survive the database (a real SQLite file) and the page groups by person."""
    app, posted = _app_with_photo(tmp_path, TwoPeoplePredictor())
    client = app.test_client()
    for body in (posted, client.get(posted["urls"]["self"]).get_json()):
        assert [d["person"] for d in body["detections"]] == [0, 0, None]
        assert [(p["id"], p["garments"]) for p in body["people"]] == [(0, [0, 1]), (1, [])]
        assert body["people"][0]["box"] == [0.0, 0.0, 80.0, 160.0] and body["people"][0]["mask"]["size"] == [160, 200]
    page = client.get(posted["urls"]["page"]).get_data(as_text=True)
    assert 'id="people"' in page and "<b>Person 1</b>" in page and "<b>Person 2</b>" in page
    assert "no garment recognised" in page and "worn by nobody found" in page
    app.extensions["closetai.jobs.runner"].stop(timeout=10)


def test_a_model_without_people_gives_an_empty_list_and_no_people_section(tmp_path):
    from tests.helpers import FakePredictor

    app, body = _app_with_photo(tmp_path, FakePredictor())
    client = app.test_client()
    assert body["people"] == [] and [d["person"] for d in body["detections"]] == [None]
    assert 'id="people"' not in client.get(body["urls"]["page"]).get_data(as_text=True)
    app.extensions["closetai.jobs.runner"].stop(timeout=10)


def test_hovering_a_person_outlines_them_in_the_browser(tmp_path, browser):
    from tests.helpers import served

    app, body = _app_with_photo(tmp_path, TwoPeoplePredictor())
    try:
        with served(app) as base:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + body["urls"]["page"])
            page.wait_for_function("document.getElementById('overlay').dataset.person === '-1'")
            page.hover("#person-0")
            page.wait_for_function("document.getElementById('overlay').dataset.person === '0'")
            # the outline is white, dashed, along the person's box (x 0-80 of 200): sample its right edge
            white = page.evaluate("""() => { const c = document.getElementById('overlay');
                const d = c.getContext('2d').getImageData(78, 0, 4, 160).data; let n = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] > 200 && d[i + 2] > 200 && d[i + 3] > 100) n++;
                return n; }""")
            assert white > 20, white
            assert page.inner_text("#person-0").startswith("Person 1:")
            page.close()
    finally:
        app.extensions["closetai.jobs.runner"].stop(timeout=10)


def test_worn_together_pairs_garments_of_one_person_not_of_one_photo(store):
    """issue 21: in a photo of two people, one's top and jeans are a pair; the other's coat is not
    paired with either. A photo without people still pairs everything in it."""
    from datetime import datetime

    from closetai.insights.report import GarmentCounts, ReportFilters, load_report
    from closetai.storage.store import NewAnalysis, NewDetection

    box = (0.0, 0.0, 10.0, 10.0)

    def photo(name, garments, people):
        store.add_analysis(NewAnalysis(kind="photo", filename=name, sha256=name, width=10, height=10,
                                       captured_at=datetime(2026, 11, 1), people=people,
                                       files={"photo": b"x"}),
                           [NewDetection(label=label, score=0.9, box=box, person=person) for label, person in garments])

    people = [{"id": 0, "box": [0, 0, 5, 10], "score": 0.9, "mask": None},
              {"id": 1, "box": [5, 0, 10, 10], "score": 0.9, "mask": None}]
    photo("two.jpg", [("top", 0), ("jeans", 0), ("outerwear", 1), ("bag", None)], people)
    photo("one.jpg", [("skirt", None), ("bag", None)], None)  # a model without people: per photo
    report = load_report(store, ReportFilters.parse())
    pairs = {(r.label_a, r.label_b): r.analyses for r in report.pairs.itertuples()}
    assert pairs == {("jeans", "top"): 1, ("bag", "skirt"): 1}
    # presence per photo is unchanged: outerwear is in 1 of 2 photos
    popular = report.popular.set_index("label")
    assert popular.loc["outerwear", "analyses_with"] == 1 and popular.loc["bag", "analyses_with"] == 2
    assert GarmentCounts.__dataclass_fields__["pair_sets"].default is None
