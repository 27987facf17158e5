"""closetai.storage.store on a real SQLite file: round trips, cascades, atomic writes, path safety."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from sqlalchemy import func, select, text

from closetai.storage.store import (
    NewAnalysis,
    NewDetection,
    NewTrack,
    NotFound,
    Store,
    StoreError,
    default_sqlite_url,
    detections,
    jobs,
    tracks,
)
from closetai.vision.detections import decode_mask, encode_mask


def files_under(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def table_count(store, table):
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def photo(sha="a" * 64, **kw):
    return NewAnalysis(kind="photo", filename="street.jpg", sha256=sha, width=40, height=30,
                       model_name="m", taxonomy="t", min_score=0.5,
                       files={"photo": b"\xff\xd8photo", "thumb": b"\xff\xd8thumb"}, **kw)


def two_detections():
    m1 = np.zeros((30, 40), bool)
    m1[5:20, 10:30] = True
    m2 = np.zeros((30, 40), bool)
    m2[22:28, 2:8] = True
    return [
        NewDetection("jeans", 0.91, (10, 5, 30, 20), encode_mask(m1), "denim", "#4a6f9c", 0.8, m1.mean(),
                     crop_jpeg=b"crop0"),
        NewDetection("footwear", 0.62, (2, 22, 8, 28), encode_mask(m2), "black", "#1a1a1a", 0.9, m2.mean()),
    ], (m1, m2)


def test_sqlite_pragmas(store):
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10000


def test_photo_round_trip(store, tmp_path):
    dets, masks = two_detections()
    taken = datetime(2025, 6, 1, 14, 30, 5)
    aid = store.add_analysis(photo(captured_at=taken, source="Milan"), dets)
    a = store.get_analysis(aid)
    assert (a["kind"], a["filename"], a["width"], a["height"], a["source"]) == ("photo", "street.jpg", 40, 30, "Milan")
    assert a["captured_at"] == taken and a["captured_from"] == "exif"
    assert a["created_at"] >= taken
    assert [d["label"] for d in a["detections"]] == ["jeans", "footwear"]
    d0 = a["detections"][0]
    assert d0["box"] == [10, 5, 30, 20] and d0["score"] == pytest.approx(0.91)
    assert (d0["colour_name"], d0["colour_hex"]) == ("denim", "#4a6f9c")
    assert d0["area_share"] == pytest.approx(masks[0].mean())
    for d, m in zip(a["detections"], masks, strict=True):
        np.testing.assert_array_equal(decode_mask(d["mask_rle"]), m)
    # files: under media_root, at the paths the row names, with the bytes given
    assert store.media_path(a["photo_path"]).read_bytes() == b"\xff\xd8photo"
    assert store.media_path(a["thumb_path"]).read_bytes() == b"\xff\xd8thumb"
    assert store.media_path(d0["crop_path"]).read_bytes() == b"crop0"
    assert a["detections"][1]["crop_path"] is None
    assert a["video_path"] is None
    assert not any(part.startswith(".") for f in files_under(store.media_root) for part in f.split("/"))
    assert store.find_by_sha256("a" * 64) == [aid]
    assert store.get_detection(aid, 1)["label"] == "footwear"


def test_upload_time_when_no_exif(store):
    aid = store.add_analysis(photo(), [])
    a = store.get_analysis(aid)
    assert a["captured_from"] == "upload" and a["captured_at"] == a["created_at"]
    assert a["detections"] == [] and a["tracks"] == []


def test_list_count_and_order(store):
    ids = [store.add_analysis(photo(sha=str(i) * 64), two_detections()[0] if i % 2 else []) for i in range(5)]
    assert store.count_analyses() == 5 and store.count_analyses("video") == 0
    rows = store.list_analyses(limit=2, offset=1)
    assert [r["id"] for r in rows] == [ids[3], ids[2]]  # newest first
    assert rows[0]["n_detections"] == 2 and rows[0]["labels"] == ["footwear", "jeans"]
    assert rows[1]["n_detections"] == 0 and rows[1]["labels"] == []


def test_delete_removes_rows_and_files(store):
    aid = store.add_analysis(photo(), two_detections()[0])
    keep = store.add_analysis(photo(sha="b" * 64), two_detections()[0])
    store.delete_analysis(aid)
    with pytest.raises(NotFound):
        store.get_analysis(aid)
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(detections)
                            .where(detections.c.analysis_id == aid)).scalar_one() == 0
    kept = store.get_analysis(keep)
    assert sorted(files_under(store.media_root)) == sorted(
        [kept["photo_path"], kept["thumb_path"], kept["detections"][0]["crop_path"]])
    with pytest.raises(NotFound):
        store.delete_analysis(aid)


def test_ids_are_never_reused(store):
    first = store.add_analysis(photo(), [])
    store.delete_analysis(first)
    assert store.add_analysis(photo(), []) > first


def test_failed_insert_leaves_no_row_and_no_file(store):
    dets, _ = two_detections()
    dets[1].label = None  # NOT NULL violation on the second row, after files and the analysis row
    with pytest.raises(Exception):  # noqa: B017  (the driver's IntegrityError)
        store.add_analysis(photo(), dets)
    assert store.count_analyses() == 0 and table_count(store, detections) == 0
    assert files_under(store.media_root) == []


def test_failed_file_write_leaves_nothing(store, monkeypatch):
    import closetai.storage.analyses as analyses_module  # add_analysis (its os.replace) lives there

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(analyses_module.os, "replace", broken_replace)
    with pytest.raises(StoreError, match="No space left"):
        store.add_analysis(photo(), two_detections()[0])
    assert store.count_analyses() == 0 and table_count(store, detections) == 0
    assert files_under(store.media_root) == []


def test_unknown_media_kind_rejected_without_leftovers(store):
    bad = photo()
    bad.files["../../evil"] = b"x"
    with pytest.raises(ValueError, match="unknown media file kind"):
        store.add_analysis(bad, [])
    assert files_under(store.media_root) == [] and store.count_analyses() == 0


def test_media_path_refuses_escapes(store, tmp_path):
    (tmp_path / "secret.txt").write_text("no")
    for rel in ("../secret.txt", str(tmp_path / "secret.txt"), "", None, "photos/none.jpg"):
        with pytest.raises(NotFound):
            store.media_path(rel)


def test_video_tracks_and_jobs_round_trip(store):
    new = NewAnalysis(kind="video", filename="clip.mp4", sha256="c" * 64, width=720, height=1280,
                      files={"video": b"mp4", "thumb": b"jpg"}, duration_s=12.5, fps=30.0, frame_count=375)
    trks = [NewTrack(1, "jeans", 0.0, 4.2, 21, 0.93, "denim", "#4a6f9c", crop_jpeg=b"t1"),
            NewTrack(2, "bag", 1.0, 2.0, 6, 0.71)]
    mask = np.zeros((1280, 720), bool)
    mask[100:200, 100:200] = True
    dets = [NewDetection("jeans", 0.9, (1, 2, 3, 4), encode_mask(mask), frame_index=f, time_s=f / 5, track_no=1)
            for f in range(3)] + [NewDetection("bag", 0.7, (5, 6, 7, 8), None, frame_index=5, time_s=1.0, track_no=2)]
    aid = store.add_analysis(new, dets, trks)
    a = store.get_analysis(aid)
    assert (a["kind"], a["duration_s"], a["fps"], a["frame_count"]) == ("video", 12.5, 30.0, 375)
    assert store.media_path(a["video_path"]).read_bytes() == b"mp4"
    assert [(t["track_no"], t["label"], t["frames_seen"]) for t in a["tracks"]] == [(1, "jeans", 21), (2, "bag", 6)]
    assert store.media_path(a["tracks"][0]["crop_path"]).read_bytes() == b"t1"
    by_no = {t["track_no"]: t["id"] for t in a["tracks"]}
    assert [d["track_id"] for d in a["detections"]] == [by_no[1]] * 3 + [by_no[2]]
    assert [d["frame_index"] for d in a["detections"]] == [0, 1, 2, 5]
    assert a["detections"][3]["mask_rle"] is None

    job = store.create_job("video", analysis_id=aid, total=375, params={"fps": 5})
    j = store.get_job(job)
    assert (j["status"], j["done"], j["total"], j["params"]) == ("queued", 0, 375, {"fps": 5})
    assert j["started_at"] is None
    store.update_job(job, status="running")
    store.update_job(job, done=100)
    j = store.get_job(job)
    assert j["status"] == "running" and j["done"] == 100 and j["started_at"] and j["heartbeat_at"] >= j["started_at"]
    store.update_job(job, status="failed", error="stream corrupted at frame 101")
    j = store.get_job(job)
    assert j["finished_at"] and j["error"] == "stream corrupted at frame 101"
    assert [x["id"] for x in store.list_jobs("failed")] == [job]
    with pytest.raises(ValueError):
        store.update_job(job, status="exploded")
    with pytest.raises(NotFound):
        store.update_job(job + 99, done=1)

    store.delete_analysis(aid)
    assert table_count(store, tracks) == 0 and table_count(store, jobs) == 0
    assert table_count(store, detections) == 0 and files_under(store.media_root) == []


def test_detection_with_unknown_track_rejected(store):
    with pytest.raises(ValueError, match="unknown track_no"):
        store.add_analysis(photo(), [NewDetection("bag", 0.5, (0, 0, 1, 1), track_no=7)])
    assert files_under(store.media_root) == []


def test_schema_is_idempotent_and_persistent(tmp_path):
    url = default_sqlite_url(tmp_path)
    s1 = Store(url, tmp_path / "media")
    s1.init_schema()
    aid = s1.add_analysis(photo(), two_detections()[0])
    s1.dispose()
    s2 = Store(url, tmp_path / "media")
    s2.init_schema()  # a second start must not wipe or fail
    assert len(s2.get_analysis(aid)["detections"]) == 2
    s2.dispose()
