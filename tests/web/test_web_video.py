"""The video path through the Flask client: upload -> job -> progress -> stored tracks -> annotated H.264
with Range support; rotation; every bad input; failures leave nothing behind.

Clips are generated here with PyAV. Most tests use `RedPredictor` (tests/media_helpers.py: the red blob is
a 'top'), which makes decoding, tracking, storage and output exact; the shipped model runs end to end
on a CCP photo panned into a clip.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from closetai.storage.store import analyses, detections, jobs, tracks
from closetai.vision.detections import decode_mask
from tests.helpers import SHIPPED_MODEL, write_audio_only
from tests.media_helpers import CCP_PHOTO, panned_frames, write_clip
from tests.media_helpers import AppRedPredictor as Predictor
from tests.web_helpers import media_files, wait_done
from tests.web_helpers import upload_clip as upload


@pytest.fixture
def predictor():
    return Predictor()


def counts(app) -> dict[str, int]:
    store = app.extensions["closetai.storage.store"]
    with store.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (analyses, tracks, detections, jobs)}


def decode(data: bytes):
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.video[0]
        return s.codec_context.name, [f.to_ndarray(format="rgb24") for f in c.decode(s)]


# ---- the whole path ---------------------------------------------------------------------------------

def test_upload_progress_tracks_and_playable_annotated_video(app, client, tmp_path):
    clip = write_clip(tmp_path / "pan.mp4", panned_frames(30, h=96, w=128), fps=10)  # 3 s, the blob moving right
    res = upload(client, clip.read_bytes(), "pan.mp4", source="studio")
    assert res.status_code == 202, res.get_json()
    body = res.get_json()
    job_id = body["job_id"]
    assert body["status_url"] == f"/api/v1/jobs/{job_id}" and body["video_url"] == f"/api/v1/videos/{job_id}"
    assert res.headers["Location"] == body["status_url"]

    final, seen = wait_done(client, job_id)
    assert final["status"] == "done" and final["error"] is None, final
    assert (final["done"], final["total"], final["percent"]) == (15, 15, 100.0)  # 3 s at 5 fps
    dones = [b["done"] for b in seen]
    assert dones == sorted(dones)  # progress never goes backwards
    assert final["elapsed_s"] >= 0 and final["eta_s"] is None

    video = client.get(body["video_url"]).get_json()
    assert video["filename"] == "pan.mp4" and video["source"] == "studio" and video["complete"]
    assert video["video"]["width"] == 128 and video["video"]["height"] == 96
    assert video["analysis"]["frames_analysed"] == 15
    # a garment that stays in view is one track, seen in every analysed frame
    assert len(video["tracks"]) == 1
    t = video["tracks"][0]
    assert (t["track_id"], t["label"], t["frames_seen"]) == (1, "top", 15)
    assert t["first_seen_s"] == 0.0 and t["last_seen_s"] == pytest.approx(2.8, abs=0.01)
    assert t["colour"]["name"] == "red"
    assert video["timeline"]["counts"] == {"top": [1] * 15} and len(video["timeline"]["times_s"]) == 15

    # stored: analysis (kind video), the track, one detection per analysed frame with an RLE mask
    store = app.extensions["closetai.storage.store"]
    analysis = store.get_analysis(video["analysis_id"])
    assert analysis["kind"] == "video" and (analysis["width"], analysis["height"]) == (128, 96)
    assert analysis["fps"] == pytest.approx(10) and analysis["frame_count"] == 30
    assert [r["label"] for r in analysis["tracks"]] == ["top"] and analysis["tracks"][0]["colour_name"] == "red"
    dets = analysis["detections"]
    assert len(dets) == 15 and {d["track_id"] for d in dets} == {analysis["tracks"][0]["id"]}
    assert [d["frame_index"] for d in dets] == list(range(0, 30, 2))
    mask = decode_mask(dets[5]["mask_rle"])
    assert mask.shape == (96, 128) and mask[50, 20 + 10 * 3 + 5]  # frame 10: the blob starts at x=50
    assert store.report_items(kind="video")["label"].tolist() == ["top"]  # the report counts the track once

    # the annotated video: H.264 mp4, every frame of the clip (not only the analysed ones), with Range support
    res = client.get(video["urls"]["annotated"])
    assert res.status_code == 200 and res.mimetype == "video/mp4"
    assert res.headers["Accept-Ranges"] == "bytes"
    codec, frames = decode(res.data)
    assert codec == "h264" and len(frames) == 30 and frames[0].shape == (96, 128, 3)
    part = client.get(video["urls"]["annotated"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.data) == 100 and part.data == res.data[:100]
    assert part.headers["Content-Range"] == f"bytes 0-99/{len(res.data)}"

    crop = client.get(t["crop"])
    assert crop.status_code == 200 and crop.mimetype == "image/jpeg" and crop.data[:2] == b"\xff\xd8"

    page = client.get(f"/videos/{job_id}").get_data(as_text=True)
    assert f'src="{video["urls"]["annotated"]}"' in page and "<video" in page
    assert page.count('class="track"') == 1 and "red" in page
    assert 'role="img"' in page and "Garments on screen" in page and "time in the clip (s)" in page
    assert "Timeline of pan.mp4" in page and "top 0.0-2.8 s" in page
    svg = client.get(video["urls"]["timeline_svg"])
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data

    listing = client.get("/videos").get_data(as_text=True)
    assert f'href="/videos/{job_id}"' in listing and "pan.mp4" in listing and "done" in listing
    # history links the analysis; its page redirects to the video page
    res = client.get(f"/analyses/{video['analysis_id']}", follow_redirects=True)
    assert res.request.path == f"/videos/{job_id}"
    # the upload was working material: only the stored analysis' media remain
    files = media_files(app)
    assert not [f for f in files if f.startswith(("uploads/", ".tmp/"))], files
    assert {Path(f).name for f in files} == {"video.mp4", "thumb.jpg", "summary.json", "t1.jpg"}


@pytest.mark.parametrize("shot_cuts, tracks", [(True, 2), (False, 1)])
def test_shot_cuts_setting_decides_whether_a_cut_ends_the_tracks(make_app, tmp_path, shot_cuts, tracks):
    from tests.media_helpers import two_shots

    config = {} if shot_cuts else {"VIDEO_SHOT_CUTS": False}  # on by default
    client = make_app(**config).test_client()
    job_id = upload(client, two_shots(tmp_path / "cut.mp4").read_bytes()).get_json()["job_id"]
    assert wait_done(client, job_id)[0]["status"] == "done"
    assert len(client.get(f"/api/v1/videos/{job_id}").get_json()["tracks"]) == tracks


@pytest.mark.parametrize("reid, tracks", [(True, 1), (False, 2)])
def test_reid_setting_decides_whether_a_garment_seen_again_after_a_cut_keeps_its_track(make_app, tmp_path, reid,
                                                                                        tracks):
    from tests.media_helpers import LookingRedPredictor, two_shots

    config = {} if reid else {"VIDEO_REID": False}  # on by default
    client = make_app(LookingRedPredictor(), **config).test_client()
    job_id = upload(client, two_shots(tmp_path / "cut.mp4").read_bytes()).get_json()["job_id"]
    assert wait_done(client, job_id)[0]["status"] == "done"
    assert len(client.get(f"/api/v1/videos/{job_id}").get_json()["tracks"]) == tracks


def test_a_clip_with_sound_plays_back_with_it(client, tmp_path):
    from tests.media_helpers import write_clip_with_sound

    clip = write_clip_with_sound(tmp_path / "talk.mp4", panned_frames(24), fps=12)
    job_id = upload(client, clip.read_bytes(), "talk.mp4").get_json()["job_id"]
    assert wait_done(client, job_id)[0]["status"] == "done"
    video = client.get(f"/api/v1/videos/{job_id}").get_json()
    assert video["analysis"]["annotated"] == {"frames": "all", "audio": "copied aac"}
    data = client.get(video["urls"]["annotated"]).data
    with av.open(io.BytesIO(data)) as c:
        assert {s.type: s.codec_context.name for s in c.streams} == {"video": "h264", "audio": "aac"}
        assert float(c.streams.video[0].average_rate) == pytest.approx(12)
    page = client.get(f"/videos/{job_id}").get_data(as_text=True)
    assert "every frame, at 12 fps" in page and "with the clip’s sound" in page
    assert "<video id=\"annotated\" controls playsinline" in page  # not muted: the sound is the clip's


def test_rotated_clip_comes_out_upright(client, tmp_path):
    upright = list(panned_frames(10, h=128, w=96))  # portrait, red blob at x 20-50, y 30-70 (moving right)
    stored = [np.ascontiguousarray(np.rot90(f, k=1)) for f in upright]  # the sensor's landscape
    clip = write_clip(tmp_path / "phone.mov", stored, fps=5, rotation=-90, fmt="mov")
    job_id = upload(client, clip.read_bytes(), "phone.mov").get_json()["job_id"]
    assert wait_done(client, job_id)[0]["status"] == "done"
    video = client.get(f"/api/v1/videos/{job_id}").get_json()
    assert (video["video"]["width"], video["video"]["height"], video["video"]["rotation"]) == (96, 128, 270)
    assert video["tracks"][0]["best_box"][:2] == pytest.approx([20, 30], abs=3)
    codec, frames = decode(client.get(video["urls"]["annotated"]).data)
    assert codec == "h264" and frames[0].shape == (128, 96, 3)  # portrait, as filmed
    # below the garment the annotated frame is the filmed street, not it turned over (8x8 block means:
    # per-pixel noise does not survive two H.264 encodes, its local averages do)
    def blocks(rgb):
        return rgb[80:128].reshape(6, 8, 12, 8, 3).mean(axis=(1, 3))

    diff = np.abs(blocks(frames[0]) - blocks(upright[0])).mean()
    turned = np.abs(blocks(frames[0]) - blocks(np.rot90(upright[0], 2))).mean()
    assert diff < 4 and turned > 2 * diff + 4, (diff, turned)


def test_clip_corrupted_midway_keeps_what_was_analysed(app, client, tmp_path):
    rng = np.random.default_rng(2)  # noise frames: every frame costs bytes, so the cut lands midway
    frames = [np.clip(f.astype(int) + rng.integers(-40, 40, f.shape), 0, 255).astype(np.uint8)
              for f in panned_frames(30)]
    data = write_clip(tmp_path / "full.mp4", frames, fps=10).read_bytes()
    job_id = upload(client, data[:len(data) // 2], "cut.mp4").get_json()["job_id"]
    final, _ = wait_done(client, job_id)
    assert final["status"] == "done" and "truncated" in final["error"] and "cut.mp4" in final["error"]
    video = client.get(f"/api/v1/videos/{job_id}").get_json()
    assert not video["complete"] and video["analysis"]["error"]
    n = video["analysis"]["frames_analysed"]
    assert 2 <= n < 15 and video["tracks"][0]["frames_seen"] == n
    assert counts(app)["detections"] == n
    page = client.get(f"/videos/{job_id}").get_data(as_text=True)
    assert 'id="partial"' in page and "truncated" in page


# ---- bad input ----------------------------------------------------------------------------------------

def _zero_frames(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    return path


def _jpeg(path: Path) -> Path:
    from PIL import Image

    Image.fromarray(next(panned_frames(1))).save(path, format="JPEG")
    return path


BAD = [
    # (id, make file, upload name, config, status, message pattern)
    ("text", lambda p: (p.write_text("my outfit today\n" * 50), p)[1], "notes.mp4", {}, 400, "not a video"),
    ("noise", lambda p: (p.write_bytes(np.random.default_rng(1).bytes(5000)), p)[1], "noise.mp4", {}, 400,
     "not a video.*noise.mp4"),
    ("image", _jpeg, "photo.jpg", {}, 400, "not a video"),
    ("zero-frames", _zero_frames, "zero.mp4", {}, 400, "no frames"),
    ("audio-only", write_audio_only, "voice.m4a", {}, 400, "audio only, no video stream"),
    ("resolution", lambda p: write_clip(p, panned_frames(10), fps=10), "big.mp4", {"VIDEO_MAX_PIXELS": 10_000}, 413,
     r"resolution 128x96 is above the limit of 10,000 pixels"),
    ("duration", lambda p: write_clip(p, panned_frames(30), fps=10), "long.mp4", {"VIDEO_MAX_DURATION_S": 1.0}, 413,
     "3 s long, above the limit of 1 s.*trim it"),
    ("upload-size", lambda p: write_clip(p, panned_frames(30), fps=10), "heavy.mp4", {"VIDEO_MAX_UPLOAD_MB": 0.001},
     413, "upload too large: the limit is 0.001 MB"),
    ("empty", lambda p: (p.write_bytes(b""), p)[1], "empty.mp4", {}, 400, r"empty file \(0 bytes\): empty.mp4"),
]


@pytest.mark.parametrize("make_file,name,config,status,pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_refused_at_upload_and_leaves_nothing(make_app, tmp_path, make_file, name, config, status,
                                                           pattern):
    import re

    app = make_app(**config)
    client = app.test_client()
    path = make_file(tmp_path / name)
    res = upload(client, path.read_bytes(), name)
    assert res.status_code == status, res.get_json()
    assert re.search(pattern, res.get_json()["error"]), res.get_json()
    assert counts(app) == {"analyses": 0, "tracks": 0, "detections": 0, "jobs": 0}
    assert media_files(app) == []
    # the form fallback answers the same error as a page, and the server stays up
    page = client.post("/videos", data={"file": (io.BytesIO(path.read_bytes()), name)},
                       content_type="multipart/form-data")
    assert page.status_code == status and "<html" in page.get_data(as_text=True)
    assert client.get("/api/v1/health").status_code == 200


def test_missing_file_field(client):
    res = client.post("/api/v1/videos", data={"source": "x"}, content_type="multipart/form-data")
    assert res.status_code == 400 and "field 'file'" in res.get_json()["error"]


def test_unknown_ids_are_404(client):
    for url in ("/api/v1/jobs/99", "/api/v1/videos/99", "/videos/99", "/videos/99/annotated.mp4",
                "/videos/99/tracks/1.jpg", "/videos/99/timeline.svg", "/videos/by-analysis/99"):
        res = client.get(url)
        assert res.status_code == 404, url
        if url.startswith("/api/"):
            assert "not found" in res.get_json()["error"]


class BrokenPredictor(Predictor):
    def predict_batch(self, frames, min_score=None, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")


def test_a_failing_job_is_failed_with_a_message_and_stores_nothing(make_app, tmp_path):
    app = make_app(BrokenPredictor())
    client = app.test_client()
    clip = write_clip(tmp_path / "c.mp4", panned_frames(10), fps=10)
    job_id = upload(client, clip.read_bytes(), "c.mp4").get_json()["job_id"]
    final, _ = wait_done(client, job_id)
    assert final["status"] == "failed" and final["error"].startswith("internal error")
    res = client.get(f"/api/v1/videos/{job_id}")
    assert res.status_code == 422 and res.get_json()["error"] == final["error"]
    assert client.get(f"/videos/{job_id}/annotated.mp4").status_code == 404
    page = client.get(f"/videos/{job_id}").get_data(as_text=True)
    assert "The analysis failed: internal error" in page
    assert {k: v for k, v in counts(app).items() if k != "jobs"} == {"analyses": 0, "tracks": 0, "detections": 0}
    assert media_files(app) == []


class SlowPredictor(Predictor):
    def predict_batch(self, frames, min_score=None, **kwargs):
        time.sleep(0.3)
        return super().predict_batch(frames, min_score, **kwargs)


def test_progress_is_visible_while_running_and_survives_a_page_reload(make_app, tmp_path):
    app = make_app(SlowPredictor(), VIDEO_BATCH_SIZE=1)
    client = app.test_client()
    clip = write_clip(tmp_path / "c.mp4", panned_frames(40), fps=10)  # 20 frames at 5 fps, ~6 s
    job_id = upload(client, clip.read_bytes(), "c.mp4").get_json()["job_id"]
    deadline = time.monotonic() + 30
    while (body := client.get(f"/api/v1/jobs/{job_id}").get_json())["done"] < 3:
        assert time.monotonic() < deadline and body["status"] in ("queued", "running")
        time.sleep(0.05)
    assert body["status"] == "running" and body["total"] == 20 and 0 < body["percent"] < 100
    assert body["stage"] == "analysing frames" and body["eta_s"] > 0 and body["elapsed_s"] > 0
    page = client.get(f"/videos/{job_id}").get_data(as_text=True)  # a reload renders the bar, not a blank
    assert 'id="job-progress"' in page and 'data-status-url="/api/v1/jobs/' in page
    assert client.get(f"/api/v1/videos/{job_id}").status_code == 202
    assert wait_done(client, job_id)[0]["status"] == "done"


def test_stopping_the_server_fails_the_running_job(make_app, tmp_path):
    app = make_app(SlowPredictor(), VIDEO_BATCH_SIZE=1)
    client = app.test_client()
    clip = write_clip(tmp_path / "c.mp4", panned_frames(40), fps=10)
    job_id = upload(client, clip.read_bytes(), "c.mp4").get_json()["job_id"]
    while client.get(f"/api/v1/jobs/{job_id}").get_json()["done"] < 2:
        time.sleep(0.05)
    app.extensions["closetai.jobs.runner"].stop(timeout=30)
    job = app.extensions["closetai.storage.store"].get_job(job_id)
    assert job["status"] == "failed" and "server shut down" in job["error"]
    assert counts(app)["analyses"] == 0 and media_files(app) == []


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.skipif(not CCP_PHOTO.is_file(), reason="../shared CCP photos not present")
@pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="models/closetai-ccp15.pt not present")
def test_shipped_model_end_to_end_on_a_ccp_clip(make_app, tmp_path):
    from closetai.media.imageio import load_rgb
    from closetai.vision.predict import Predictor as RealPredictor

    photo, _ = load_rgb(CCP_PHOTO)
    h, w = (photo.shape[0] - 40) // 2 * 2, (photo.shape[1] - 40) // 2 * 2
    frames = [np.ascontiguousarray(photo[i * 4:i * 4 + h, i * 4:i * 4 + w]) for i in range(8)]  # slow pan
    clip = write_clip(tmp_path / "ccp.mp4", frames, fps=5)
    predictor = RealPredictor(SHIPPED_MODEL, device="cpu", threads=2)
    first = predictor(frames[0])
    app = make_app(predictor, VIDEO_MIN_SIZE=None)  # the model's own short side, as `first` used
    client = app.test_client()
    job_id = upload(client, clip.read_bytes(), "ccp.mp4").get_json()["job_id"]
    final, _ = wait_done(client, job_id, timeout=180)
    assert final["status"] == "done" and final["percent"] == 100.0, final
    video = client.get(f"/api/v1/videos/{job_id}").get_json()
    assert 1 <= len(video["tracks"]) <= len(first)  # one track per garment, not one per frame
    assert max(t["frames_seen"] for t in video["tracks"]) == 8
    for t in video["tracks"]:
        assert t["label"] in predictor.class_names and t["colour"]["name"] and t["colour"]["name"] != "unknown"
    codec, out = decode(client.get(video["urls"]["annotated"]).data)
    assert codec == "h264" and len(out) == 8
    assert counts(app)["tracks"] == len(video["tracks"])


def test_video_nav_link_and_upload_form(client):
    page = client.get("/videos").get_data(as_text=True)
    assert 'href="/videos"' in client.get("/").get_data(as_text=True)
    assert 'accept="video/mp4' in page and ".webm" in page and ".avi" in page and ".mov" in page
    assert "No videos yet" in page




def test_annotated_mp4_downloads_under_the_clip_name_and_is_revalidated(app, client, tmp_path):
    """The download is "<clip>-annotated.mp4", not "video.mp4"; the player's URL stays inline; the clip's
    media is private and revalidated, so after a delete the browser gets a 404, not its copy (issue 20.15)."""
    clip = write_clip(tmp_path / "pan.mp4", panned_frames(20, h=96, w=128), fps=10)
    job_id = upload(client, clip.read_bytes(), "Milan walk.MOV").get_json()["job_id"]
    assert wait_done(client, job_id)[0]["status"] == "done"
    video = client.get(f"/api/v1/videos/{job_id}").get_json()
    url = video["urls"]["annotated"]
    r = client.get(url + "?download=1")
    assert r.status_code == 200 and r.headers["Content-Disposition"] == 'attachment; filename="Milan walk-annotated.mp4"'
    played = client.get(url)
    assert played.headers["Content-Disposition"].startswith("inline")
    page = client.get(f"/videos/{job_id}").get_data(as_text=True)
    assert f'href="{url}?download=1" download="Milan walk-annotated.mp4"' in page
    crop = video["tracks"][0]["crop"]
    for media in (url, crop):
        r = client.get(media)
        assert r.headers["Cache-Control"] == "private, no-cache", media
        assert client.get(media, headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    # the page's Delete button deletes the clip's analysis through the API
    assert f'data-api="/api/v1/analyses/{video["analysis_id"]}"' in page and 'id="delete"' in page
    assert client.delete(f"/api/v1/analyses/{video['analysis_id']}").status_code == 204
    for media in (url, crop, f"/videos/{job_id}"):
        assert client.get(media).status_code == 404, media


class PhotoAndVideoPredictor(Predictor):
    def __call__(self, rgb, min_score=None):  # photos: FakePredictor's one garment
        from tests.helpers import FakePredictor

        return FakePredictor.__call__(self, rgb, min_score)


def test_a_clip_has_one_count_and_one_id_on_every_page(make_app, tmp_path):
    """issue 18.2: history and the upload page said "15 items" (per-frame detections) and "#1" (the
    analysis id) for what the video page calls "1 garment, each counted once", video #<job id>."""
    client = make_app(PhotoAndVideoPredictor()).test_client()
    # a photo first, so the clip's analysis id (2) and its job id (1) differ
    photo = io.BytesIO()
    Image.fromarray(np.full((96, 128, 3), 200, np.uint8)).save(photo, "PNG")
    assert client.post("/api/v1/analyses", data={"file": (io.BytesIO(photo.getvalue()), "p.png")},
                       content_type="multipart/form-data").status_code == 201
    clip = write_clip(tmp_path / "pan.mp4", panned_frames(30, h=96, w=128), fps=10)
    job_id = upload(client, clip.read_bytes(), "pan.mp4").get_json()["job_id"]
    assert wait_done(client, job_id)[0]["status"] == "done"
    video = client.get(f"/api/v1/videos/{job_id}").get_json()
    n = len(video["tracks"])
    assert n == 1
    listed = {a["kind"]: a for a in client.get("/api/v1/analyses").get_json()["analyses"]}
    assert listed["video"]["detections"] == n and listed["video"]["video_id"] == job_id
    assert listed["video"]["id"] != job_id  # so the page must show the job id, not this one
    history = client.get("/history").get_data(as_text=True)
    assert f"video #{job_id}</b>" in history and "1 garment, each counted once" in history
    assert "15 items" not in history
    index = client.get("/").get_data(as_text=True)
    assert "1 garment</span>" in index
    page = client.get(f"/videos/{job_id}").get_data(as_text=True)
    assert f"video #{job_id}" in page and "1 garment, each counted once" in page
