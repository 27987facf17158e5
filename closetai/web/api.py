"""JSON API under /api/v1. Errors are {"error": "..."} with a 4xx status (see closetai.web.register)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, url_for

from closetai import ClosetAIError
from closetai.analyse import analyse_photo
from closetai.web import analysis_json, analysis_summary, inference_lock, predictor, store

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_LIMIT = 100


class BadRequest(ClosetAIError):
    status = 400


def _int_arg(name: str, default: int, lo: int, hi: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw[:20]!r}") from None
    if value < lo or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise BadRequest(f"{name} must be {bounds}, got {value}")
    return value


def uploaded_photo() -> tuple[bytes, str]:
    """The multipart field `file` -> (bytes, client file name). Reading it enforces MAX_CONTENT_LENGTH."""
    if "file" not in request.files:
        raise BadRequest("no file uploaded: send the photo as multipart/form-data field 'file'")
    upload = request.files["file"]
    data = upload.read()
    if not data:
        name = upload.filename or "upload"
        raise BadRequest(f"empty file (0 bytes): {name}")
    return data, upload.filename or "upload"


def create_photo_analysis() -> int:
    data, filename = uploaded_photo()
    return analyse_photo(
        data, filename, predictor=predictor(), store=store(), source=request.form.get("source", ""),
        max_pixels=current_app.config["MAX_PIXELS"], min_score=current_app.config.get("MIN_SCORE"),
        lock=inference_lock(), max_side=current_app.config["ANALYSIS_MAX_SIDE"])


@bp.post("/analyses")
def create_analysis():
    analysis_id = create_photo_analysis()
    body = analysis_json(store().get_analysis(analysis_id))
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_analysis", analysis_id=analysis_id)
    return response


@bp.get("/analyses/<int:analysis_id>")
def get_analysis(analysis_id: int):
    return jsonify(analysis_json(store().get_analysis(analysis_id)))


@bp.get("/analyses")
def list_analyses():
    limit = _int_arg("limit", 20, 1, MAX_LIMIT)
    offset = _int_arg("offset", 0, 0)
    kind = request.args.get("kind") or None
    if kind not in (None, "photo", "video"):
        raise BadRequest(f"kind must be 'photo' or 'video', got {kind[:20]!r}")
    rows = store().list_analyses(limit=limit, offset=offset, kind=kind)
    return jsonify(total=store().count_analyses(kind), limit=limit, offset=offset,
                   analyses=[analysis_summary(r) for r in rows])


@bp.delete("/analyses/<int:analysis_id>")
def delete_analysis(analysis_id: int):
    store().delete_analysis(analysis_id)
    return "", 204


@bp.get("/health")
def health():
    info = predictor().info
    return jsonify(status="ok", model=info["name"], taxonomy=info["taxonomy"], device=info["device"],
                   classes=info["classes"], analyses=store().count_analyses())
