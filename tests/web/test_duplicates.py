"""The same file uploaded twice (issue 17.2): the API and the pages say it is already stored and link to
it, `store_again=1` stores it anyway, and the report counts each distinct file (content sha256) once.

Real SQLite files in tmp_path and real uploads through Flask's test client; photos go through the
shipped model, clips through the deterministic RedPredictor of tests/media_helpers.py."""

from __future__ import annotations

import io
import re
from datetime import datetime

import pytest

from closetai.storage.store import NewAnalysis, NewDetection, Store, default_sqlite_url
from tests.media_helpers import AppRedPredictor, panned_frames, write_clip
from tests.web_helpers import jpeg_of_person, upload


@pytest.fixture
def app(make_app, shipped_predictor):
    return make_app(shipped_predictor)


def test_photo_uploaded_twice_is_refused_with_a_link_and_stored_again_on_request(app):
    client = app.test_client()
    photo = jpeg_of_person()
    first = upload(client, photo, "a.jpg", source="street")
    assert first.status_code == 201
    first_id = first.get_json()["id"]

    again = upload(client, photo, "renamed.jpg", source="street")
    assert again.status_code == 409
    body = again.get_json()
    assert body["already_stored"] == {"id": first_id, "kind": "photo", "url": f"/analyses/{first_id}",
                                      "api_url": f"/api/v1/analyses/{first_id}"}
    assert f"already stored (photo analysis {first_id})" in body["error"] and "store_again=1" in body["error"]
    store = app.extensions["closetai.storage.store"]
    assert store.count_analyses() == 1  # nothing stored, nothing analysed

    forced = upload(client, photo, "again.jpg", source="street", store_again="1")
    assert forced.status_code == 201 and forced.get_json()["id"] != first_id
    by_query = client.post("/api/v1/analyses?store_again=true", data={"file": (io.BytesIO(photo), "q.jpg")},
                           content_type="multipart/form-data")
    assert by_query.status_code == 201
    assert store.count_analyses() == 3

    # The report counts the file once: one analysis, its garments once.
    report = client.get("/report.json").get_json()
    assert report["analyses"] == 1
    single = first.get_json()["detections"]
    assert report["garments"] == len(single)
    assert {p["label"]: p["analyses_with"] for p in report["popular"]} == {d["label"]: 1 for d in single}
    csv = client.get("/report.csv").get_data(as_text=True)
    assert csv.count("popular,") == len({d["label"] for d in single})


def test_bad_store_again_value_is_a_400(app):
    res = upload(app.test_client(), jpeg_of_person(), "a.jpg", store_again="maybe")
    assert res.status_code == 400 and res.get_json() == {"error": "store_again must be 1 or 0, got 'maybe'"}


def test_form_upload_of_a_stored_photo_shows_a_page_linking_to_it(app):
    client = app.test_client()
    first_id = upload(client, jpeg_of_person(), "a.jpg").get_json()["id"]
    page = upload(client, jpeg_of_person(), "a.jpg", url="/upload")
    assert page.status_code == 409
    html = page.get_data(as_text=True)
    assert "Already stored" in html
    assert re.search(rf'<a id="already-stored" href="/analyses/{first_id}">Open the stored photo</a>', html)
    # the upload form offers the flag; ticked, the form stores it again and redirects to the new result
    assert 'name="store_again"' in client.get("/").get_data(as_text=True)
    forced = upload(client, jpeg_of_person(), "a.jpg", url="/upload", store_again="1")
    assert forced.status_code == 303 and forced.headers["Location"] != f"/analyses/{first_id}"


def test_clip_uploaded_twice_links_to_the_first_while_queued_and_once_stored(make_app, tmp_path):
    from tests.web_helpers import wait_done

    app = make_app(AppRedPredictor())
    try:
        client = app.test_client()
        clip = write_clip(tmp_path / "pan.mp4", panned_frames(10, h=96, w=128), fps=10).read_bytes()

        def send(**form):
            return client.post("/api/v1/videos", data={"file": (io.BytesIO(clip), "pan.mp4"), **form},
                               content_type="multipart/form-data")

        first = send()
        assert first.status_code == 202
        job_id = first.get_json()["job_id"]
        early = send()  # queued or running, or already done: either way it links to the first
        assert early.status_code == 409
        final, _ = wait_done(client, job_id)
        assert final["status"] == "done"
        store = app.extensions["closetai.storage.store"]
        analysis_id = store.get_job(job_id)["analysis_id"]

        late = send()
        assert late.status_code == 409
        assert late.get_json()["already_stored"] == {"id": analysis_id, "kind": "video",
                                                     "url": f"/videos/by-analysis/{analysis_id}",
                                                     "api_url": f"/api/v1/analyses/{analysis_id}"}
        uploads = store.media_root / "uploads"
        assert not uploads.exists() or not any(uploads.iterdir())  # the refused copies are deleted

        forced = send(store_again="1")
        assert forced.status_code == 202
        assert wait_done(client, forced.get_json()["job_id"])[0]["status"] == "done"
        assert store.count_analyses() == 2
        report = client.get("/report.json").get_json()
        assert report["analyses"] == 1 and report["garments"] == 1  # one clip, its one track, once
    finally:
        app.extensions["closetai.jobs.runner"].stop(timeout=30)


def _photo(store: Store, sha: str, source: str, day: int, labels: list[str]) -> int:
    return store.add_analysis(
        NewAnalysis(kind="photo", filename=f"{sha}.jpg", sha256=sha, width=10, height=10, source=source,
                    captured_at=datetime(2026, 11, day), files={"photo": b"x"}),
        [NewDetection(label=lab, score=0.9, box=(0, 0, 5, 5)) for lab in labels])


def test_report_counts_each_distinct_file_once_as_its_first_copy(store):
    first = _photo(store, "a" * 64, "north", 1, ["top"])
    _photo(store, "a" * 64, "south", 2, ["top"])  # the same file stored again, under another source
    _photo(store, "b" * 64, "north", 3, ["dress", "bag"])
    _photo(store, "", "north", 4, ["hat"])  # rows without a hash each count
    _photo(store, "", "north", 5, ["hat"])
    assert store.report_count_analyses() == 4
    counts = store.report_counts()
    assert dict(counts["cells"].groupby("label")["count"].sum()) == {"bag": 1, "dress": 1, "hat": 2, "top": 1}
    assert dict(store.report_counts()["label_sets"].set_index(
        counts["label_sets"]["labels"].map(tuple))["analyses"]) == {("bag", "dress"): 1, ("hat",): 2, ("top",): 1}
    # the file counts where it was first stored (its source, its date), not again under the copy's
    assert store.report_count_analyses(sources=["south"]) == 0
    assert store.report_count_analyses(sources=["north", "south"]) == 4
    # the first copy deleted: the next one is the file now, counted once
    store.delete_analysis(first)
    assert store.report_count_analyses(sources=["south"]) == 1 and store.report_count_analyses() == 4
    third = _photo(store, "a" * 64, "east", 6, ["top"])
    assert store.report_count_analyses() == 4 and store.same_file("a" * 64)["analysis_id"] < third


def test_migration_marks_the_copies_already_stored(tmp_path):
    """A database at revision 0003 holding the same file twice: upgraded, the later row is the copy."""
    from sqlalchemy import create_engine, text

    from closetai.storage.store import migrate

    url = default_sqlite_url(tmp_path)
    engine = create_engine(url)
    migrate(engine, "0003")
    with engine.begin() as conn:
        for i, sha in enumerate(["a" * 64, "b" * 64, "a" * 64, "", "", "a" * 64]):
            conn.execute(text("INSERT INTO analyses (kind, source, filename, sha256, width, height, captured_at, "
                              "captured_from, created_at, model_name, taxonomy, min_score, media_dir) VALUES "
                              "('photo', 's', :f, :sha, 10, 10, '2026-11-01 10:00:00', 'upload', "
                              "'2026-11-01 10:00:00', '', '', 0.5, :f)"), {"f": f"p{i}", "sha": sha})
    migrate(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, copy_of FROM analyses ORDER BY id")).all()
    assert [r[1] for r in rows] == [None, None, 1, None, None, 1]
    engine.dispose()
    store = Store(url, tmp_path / "media")
    assert store.report_count_analyses() == 4
