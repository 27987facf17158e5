"""What every blueprint reads from the running app (the store, the predictor, the inference lock), the
JSON shapes of a stored analysis, and the one error response (JSON under /api/, an HTML page elsewhere)."""

from __future__ import annotations

import threading
from typing import Any

from flask import Response, current_app, jsonify, render_template, request, send_file, url_for

from closetai.storage.store import Store
from closetai.vision.annotate import class_colour


def store() -> Store:
    return current_app.extensions["closetai.storage.store"]


def predictor():
    return current_app.extensions["closetai.predictor"]


def inference_lock() -> threading.Lock:
    return current_app.extensions["closetai.lock"]


def class_names() -> tuple[str, ...]:
    return tuple(predictor().class_names)


def class_colours() -> dict[str, str]:
    """Per-class display colour, the same one closetai.vision.annotate draws (ids are 1-based)."""
    return {name: "#{:02x}{:02x}{:02x}".format(*class_colour(i)) for i, name in enumerate(class_names(), 1)}


def analysis_json(a: dict[str, Any]) -> dict[str, Any]:
    """A stored analysis in the `closetai detect` schema plus ids, colours, dates and links."""
    aid = a["id"]
    return {
        "id": aid,
        "kind": a["kind"],
        "image": a["filename"],
        "width": a["width"],
        "height": a["height"],
        "model": {"name": a["model_name"], "taxonomy": a["taxonomy"]},
        "min_score": a["min_score"],
        "source": a["source"],
        "sha256": a["sha256"],
        "captured_at": a["captured_at"].isoformat(timespec="seconds") + "Z" if a["captured_from"] == "upload"
        else a["captured_at"].isoformat(timespec="seconds"),  # EXIF time is local, zone unknown
        "captured_from": a["captured_from"],
        "created_at": a["created_at"].isoformat(timespec="seconds") + "Z",
        "urls": {
            "self": url_for("api.get_analysis", analysis_id=aid),
            "page": url_for("pages.result", analysis_id=aid),
            "photo": url_for("pages.photo", analysis_id=aid),
            "thumb": url_for("pages.thumb", analysis_id=aid),
            "annotated": url_for("pages.annotated", analysis_id=aid),
            "json": url_for("pages.download_json", analysis_id=aid),
        },
        "detections": [{
            "id": d["id"],
            "label": d["label"],
            "score": d["score"],
            "box": d["box"],
            "mask": d["mask_rle"],
            "colour": {"name": d["colour_name"], "hex": d["colour_hex"], "share": d["colour_share"]},
            "area_share": d["area_share"],
            "crop": url_for("pages.crop", analysis_id=aid, idx=d["idx"]) if d["crop_path"] else None,
            "person": d.get("person"),
        } for d in a["detections"]],
        # issue 21: who wears what; empty for a model without the person class
        "people": [{"id": p["id"], "box": p["box"], "score": p["score"], "mask": p["mask"],
                    "garments": p["garments"]} for p in a.get("people") or []],
    }


def analysis_summary(a: dict[str, Any]) -> dict[str, Any]:
    """A row of the list endpoint and /history: no masks."""
    return {
        "id": a["id"], "kind": a["kind"], "image": a["filename"], "width": a["width"], "height": a["height"],
        "source": a["source"], "created_at": a["created_at"].isoformat(timespec="seconds") + "Z",
        "captured_at": a["captured_at"].isoformat(timespec="seconds"),
        "model": {"name": a["model_name"], "taxonomy": a["taxonomy"]},
        # photos: detections; videos: tracked garments, each counted once (its per-frame detections are not)
        "detections": a["n_detections"], "labels": a["labels"],
        **({"video_id": a.get("video_id")} if a["kind"] == "video" else {}),
        "urls": {"self": url_for("api.get_analysis", analysis_id=a["id"]),
                 "page": url_for("pages.result", analysis_id=a["id"]),
                 "thumb": url_for("pages.thumb", analysis_id=a["id"])},
    }


def wants_json() -> bool:
    return request.path.startswith("/api/")


def error_response(message: str, status: int, already_stored: dict[str, Any] | None = None):
    if wants_json():
        body = {"error": message} if already_stored is None else {"error": message, "already_stored": already_stored}
        return jsonify(body), status
    return render_template("error.html", message=message, status=status, already_stored=already_stored), status


def already_stored_json(where: dict[str, Any]) -> dict[str, Any]:
    """Store.same_file's answer -> {"id": analysis id (None while a clip's job runs), "kind", "url": its
    page, "api_url"}; a clip still being analysed also gets "job_id"."""
    if "analysis_id" in where:
        aid = where["analysis_id"]
        if where["kind"] == "video":
            page = url_for("video.by_analysis", analysis_id=aid)
        else:
            page = url_for("pages.result", analysis_id=aid)
        return {"id": aid, "kind": where["kind"], "url": page,
                "api_url": url_for("api.get_analysis", analysis_id=aid)}
    job_id = where["job_id"]
    if where["kind"] == "video":
        return {"id": None, "kind": "video", "job_id": job_id, "url": url_for("video.video_page", job_id=job_id),
                "api_url": url_for("video_api.get_job", job_id=job_id)}
    return {"id": None, "kind": where["kind"], "job_id": job_id, "url": url_for("video_api.get_job", job_id=job_id),
            "api_url": url_for("video_api.get_job", job_id=job_id)}


# Private media: the browser keeps a copy but asks again each time (ETag -> 304), so a deleted photo is
# gone at the next look (a 404) instead of showing from the cache for a day; no shared cache keeps any.
MEDIA_CACHE_CONTROL = "private, no-cache"


def send_private(path, mimetype: str, **kwargs) -> Response:
    """send_file with ETag/Range and MEDIA_CACHE_CONTROL: every media route of a stored analysis."""
    response = send_file(path, mimetype=mimetype, conditional=True, **kwargs)
    response.headers["Cache-Control"] = MEDIA_CACHE_CONTROL
    return response
