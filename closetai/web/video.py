"""Video pages and API: upload a clip -> a background job -> progress -> annotated video, tracks, timeline.

A video's public id is its JOB id: the upload answers 202 with URLs that are valid at once
(/videos/<job_id>, /api/v1/videos/<job_id>), before an analysis row exists; the analysis row (and its
id, used by /history and the report) is written only when the job finishes, atomically.
"""

from __future__ import annotations

import json
import shutil
from pathlib import PurePosixPath
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from closetai import ClosetAIError, sha256_file
from closetai.analysis.photo import display_name
from closetai.insights.videochart import timeline_alt, timeline_svg
from closetai.jobs.runner import create_video_job, job_status, save_upload
from closetai.storage.store import NotFound
from closetai.web.context import class_colours, send_private, store
from closetai.web.forms import form_text, refuse_duplicate, upload_part

pages = Blueprint("video", __name__)
api = Blueprint("video_api", __name__, url_prefix="/api/v1")

ACCEPT = "video/mp4,video/quicktime,video/webm,video/x-msvideo,.mp4,.mov,.m4v,.webm,.avi"


class BadUpload(ClosetAIError):
    status = 400


def runner():
    return current_app.extensions["closetai.jobs.runner"]


def _video_job(job_id: int) -> dict[str, Any]:
    job = store().get_job(job_id)
    if job["kind"] != "video":
        raise NotFound(f"video {job_id} not found")
    return job


def _urls(job_id: int) -> dict[str, str]:
    return {"status": url_for("video_api.get_job", job_id=job_id),
            "video": url_for("video_api.get_video", job_id=job_id),
            "page": url_for("video.video_page", job_id=job_id)}


def submit_upload() -> int:
    """The multipart `file` -> saved upload -> probed -> queued job id. Bad input raises its 4xx now
    (nothing kept); what probing cannot see (corruption later in the file) fails the job instead."""
    request.max_content_length = int(current_app.config["VIDEO_MAX_UPLOAD_MB"] * 1_000_000)
    upload = upload_part("clip")
    source = form_text("source")
    name = display_name(upload.filename or "clip")
    path = save_upload(store(), upload.stream, name)
    if path.stat().st_size == 0:
        path.unlink()
        path.parent.rmdir()
        raise BadUpload(f"empty file (0 bytes): {name}")
    sha = sha256_file(path)
    try:
        refuse_duplicate(sha, "clip")
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise
    job_id = create_video_job(store(), path, name, source, current_app.extensions["closetai.video_settings"],
                              sha256=sha)
    runner().submit(job_id)
    return job_id


# ---- API -------------------------------------------------------------------------------------------

@api.post("/videos")
def create_video():
    job_id = submit_upload()
    urls = _urls(job_id)
    response = jsonify(job_id=job_id, status="queued", status_url=urls["status"], video_url=urls["video"],
                       page_url=urls["page"])
    response.status_code = 202
    response.headers["Location"] = urls["status"]
    return response


@api.get("/jobs/<int:job_id>")
def get_job(job_id: int):
    job = store().get_job(job_id)
    body = job_status(job)
    if job["kind"] == "video":
        body["urls"] = _urls(job_id)
    return jsonify(body)


def video_json(job: dict[str, Any]) -> dict[str, Any]:
    """A finished video: the CLI's per-track JSON (closetai video --json, minus frames) with the stored
    track ids, crops and colours, the timeline, and links."""
    analysis = store().get_analysis_row(job["analysis_id"])
    summary = json.loads(store().media_path(f"{analysis['media_dir']}/summary.json").read_text())
    rows = {t["track_no"]: t for t in store().get_analysis(job["analysis_id"])["tracks"]}
    tracks = []
    for t in summary["tracks"]:
        row = rows.get(t["track_id"])
        tracks.append({**t, "crop": url_for("video.track_crop", job_id=job["id"], track_no=t["track_id"])
                       if row and row["crop_path"] else None})
    return {"id": job["id"], "analysis_id": analysis["id"], "status": job["status"], "filename": analysis["filename"],
            "source": analysis["source"], "complete": job["error"] is None, "error": job["error"],
            "video": summary["video"], "analysis": summary["analysis"], "tracks": tracks,
            "timeline": summary["timeline"],
            "urls": {**_urls(job["id"]), "annotated": url_for("video.annotated", job_id=job["id"]),
                     "timeline_svg": url_for("video.timeline_chart", job_id=job["id"])}}


@api.get("/videos/<int:job_id>")
def get_video(job_id: int):
    job = _video_job(job_id)
    if job["status"] == "done":
        return jsonify(video_json(job))
    if job["status"] == "failed":
        return jsonify(error=job["error"], status="failed", id=job_id), 422
    # Not ready: 202 + where to watch, like the upload's answer.
    response = jsonify(status=job["status"], id=job_id, status_url=_urls(job_id)["status"])
    response.status_code = 202
    response.headers["Retry-After"] = "2"
    return response


# ---- pages -----------------------------------------------------------------------------------------

@pages.get("/videos")
def videos():
    jobs = store().recent_jobs("video", limit=20)
    return render_template("videos.html", accept=ACCEPT, jobs=[{**job_status(j), "n_tracks": j["n_tracks"]}
                                                               for j in jobs],
                           max_mb=current_app.config["VIDEO_MAX_UPLOAD_MB"],
                           max_s=current_app.extensions["closetai.video_settings"].limits.max_duration_s)


@pages.post("/videos")
def upload_form():
    """Form fallback when JavaScript is off; the page's script posts to the API instead."""
    return redirect(url_for("video.video_page", job_id=submit_upload()), code=303)


@pages.get("/videos/<int:job_id>")
def video_page(job_id: int):
    job = _video_job(job_id)
    status = job_status(job)
    data = chart = alt = None
    if job["status"] == "done":
        data = video_json(job)
        alt = timeline_alt(data["timeline"], data["filename"])
        chart = timeline_svg(data["timeline"], class_colours(), title=f"Garments on screen: {data['filename']}",
                             alt=alt)
    return render_template("video.html", job=status, v=data, chart=chart, chart_alt=alt, colours=class_colours(),
                           urls=_urls(job_id), download_name=annotated_name(data["filename"]) if data else None)


def _finished_analysis(job_id: int) -> dict[str, Any]:
    job = _video_job(job_id)
    if job["status"] != "done" or job["analysis_id"] is None:
        raise NotFound(f"video {job_id} is not analysed yet ({job['status']})")
    return store().get_analysis_row(job["analysis_id"])


def annotated_name(filename: str | None) -> str:
    """"street walk.MOV" -> "street walk-annotated.mp4": the name a download of the annotated clip gets."""
    stem = PurePosixPath(filename or "clip").stem.strip() or "clip"
    return f"{stem}-annotated.mp4"


@pages.get("/videos/<int:job_id>/annotated.mp4")
def annotated(job_id: int):
    """?download=1 saves it (Content-Disposition: attachment) under the uploaded clip's name; without it the
    <video> plays it. ETag, If-None-Match and Range -> 206, so browsers can seek."""
    analysis = _finished_analysis(job_id)
    return send_private(store().media_path(analysis["video_path"]), "video/mp4",
                        as_attachment=request.args.get("download") == "1",
                        download_name=annotated_name(analysis["filename"]))


@pages.get("/videos/<int:job_id>/tracks/<int:track_no>.jpg")
def track_crop(job_id: int, track_no: int):
    analysis = _finished_analysis(job_id)
    rows = [t for t in store().get_analysis(analysis["id"])["tracks"] if t["track_no"] == track_no]
    if not rows:
        raise NotFound(f"track {track_no} of video {job_id} not found")
    return send_private(store().media_path(rows[0]["crop_path"]), "image/jpeg")


@pages.get("/videos/<int:job_id>/timeline.svg")
def timeline_chart(job_id: int):
    job = _video_job(job_id)
    if job["status"] != "done":
        raise NotFound(f"video {job_id} is not analysed yet ({job['status']})")
    data = video_json(job)
    svg = timeline_svg(data["timeline"], class_colours(), title=f"Garments on screen: {data['filename']}",
                       alt=timeline_alt(data["timeline"], data["filename"]))
    return Response('<?xml version="1.0" encoding="utf-8"?>\n' + svg, mimetype="image/svg+xml")


@pages.get("/videos/by-analysis/<int:analysis_id>")
def by_analysis(analysis_id: int):
    """History and the report link analyses by analysis id; a video's page is under its job id."""
    job_id = store().job_for_analysis(analysis_id)
    if job_id is None:
        raise NotFound(f"no video page for analysis {analysis_id}")
    return redirect(url_for("video.video_page", job_id=job_id))
