"""What the web tests upload and how: a generated photo of a person, multipart uploads of photos and
clips through Flask's test client, and polling a video job until it ends."""

from __future__ import annotations

import io
import time

import cv2
import numpy as np
from PIL import Image

RED, NAVY, BLACK, SKIN = (180, 30, 40), (40, 60, 120), (20, 20, 20), (225, 185, 160)


def person(h=480, w=320) -> np.ndarray:
    """A flat cartoon figure: red top, navy trousers, black shoes on a grey gradient (RGB uint8)."""
    img = np.repeat(np.linspace(170, 220, h)[:, None, None], w, 1).repeat(3, 2).astype(np.uint8)
    c = w // 2
    cv2.ellipse(img, (c, 60), (28, 36), 0, 0, 360, SKIN, -1)
    cv2.rectangle(img, (c - 12, 92), (c + 12, 110), SKIN, -1)
    cv2.fillPoly(img, [np.array([[c - 60, 110], [c + 60, 110], [c + 70, 250], [c - 70, 250]])], RED)
    cv2.rectangle(img, (c - 95, 115), (c - 65, 250), RED, -1)
    cv2.rectangle(img, (c + 65, 115), (c + 95, 250), RED, -1)
    cv2.fillPoly(img, [np.array([[c - 65, 250], [c + 65, 250], [c + 55, 420], [c + 10, 420], [c, 290],
                                 [c - 10, 420], [c - 55, 420]])], NAVY)
    cv2.ellipse(img, (c - 33, 430), (26, 10), 0, 0, 360, BLACK, -1)
    cv2.ellipse(img, (c + 33, 430), (26, 10), 0, 0, 360, BLACK, -1)
    return img


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def upload(client, data: bytes, name: str = "photo.jpg", url: str = "/api/v1/analyses", **form):
    return client.post(url, data={"file": (io.BytesIO(data), name), **form}, content_type="multipart/form-data")


def jpeg_of_person() -> bytes:
    return encode(Image.fromarray(person()), "JPEG", quality=90)


def upload_clip(client, data: bytes, name: str = "clip.mp4", **form):
    return client.post("/api/v1/videos", data={"file": (io.BytesIO(data), name), **form},
                       content_type="multipart/form-data")


def wait_done(client, job_id: int, timeout: float = 120.0) -> tuple[dict, list[dict]]:
    """Poll the job's JSON like the page does; returns the final body and every body seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = client.get(f"/api/v1/jobs/{job_id}")
        assert res.status_code == 200
        body = res.get_json()
        seen.append(body)
        if body["status"] in ("done", "failed"):
            return body, seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {seen[-1]}")


def media_files(app) -> list[str]:
    """Every file under the app's media folder, relative to it (what "nothing left behind" compares)."""
    root = app.extensions["closetai.storage.store"].media_root
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
