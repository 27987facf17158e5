"""JSON API under /api/v1. Errors are {"error": "..."} with a 4xx status (see closetai.web.factory.register)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request, url_for
from werkzeug.exceptions import NotFound

from closetai.web.context import analysis_json, analysis_summary, predictor, store
from closetai.web.forms import SQLITE_MAX_INT, BadRequest, create_photo_analysis

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_LIMIT = 100


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
    if value > SQLITE_MAX_INT:  # would overflow the database driver (a 500)
        raise BadRequest(f"{name} must be at most {SQLITE_MAX_INT}, got {value}")
    return value


@bp.app_url_value_preprocessor
def _ids_fit_the_database(endpoint, values) -> None:
    """An id in any URL larger than SQLite can hold names nothing: 404, not an OverflowError (500)."""
    if values and any(isinstance(v, int) and v > SQLITE_MAX_INT for v in values.values()):
        raise NotFound()


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
