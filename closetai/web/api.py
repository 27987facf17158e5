"""JSON API under /api/v1. Errors are {"error": "..."} with a 4xx status (see closetai.web.register)."""

from __future__ import annotations

import hashlib

from flask import Blueprint, current_app, jsonify, request, url_for
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import NotFound

from closetai import ClosetAIError, boolean
from closetai.analysis.photo import analyse_photo, clean_text
from closetai.storage.store import AlreadyStored
from closetai.web import analysis_json, analysis_summary, inference_lock, predictor, store

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_LIMIT = 100
SQLITE_MAX_INT = 2**63 - 1  # ids and offsets are SQLite 64-bit integers


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
    if value > SQLITE_MAX_INT:  # would overflow the database driver (a 500)
        raise BadRequest(f"{name} must be at most {SQLITE_MAX_INT}, got {value}")
    return value


@bp.app_url_value_preprocessor
def _ids_fit_the_database(endpoint, values) -> None:
    """An id in any URL larger than SQLite can hold names nothing: 404, not an OverflowError (500)."""
    if values and any(isinstance(v, int) and v > SQLITE_MAX_INT for v in values.values()):
        raise NotFound()


def upload_part(what: str) -> FileStorage:
    """The one multipart file of an upload, field `file`; `what` ("photo", "clip") names it in messages."""
    files = request.files
    if "file" not in files:
        if request.mimetype == "multipart/form-data" and (request.content_length or 0) > 0 and not files \
                and not request.form:  # werkzeug reads a body it cannot parse as an empty form
            raise BadRequest("malformed multipart/form-data body: no field could be read "
                             "(file names and fields must be UTF-8)")
        raise BadRequest(f"no file uploaded: send the {what} as multipart/form-data field 'file'")
    count = sum(len(files.getlist(key)) for key in files)
    if count > 1:
        raise BadRequest(f"one file per upload, got {count}: send each {what} in its own request")
    return files["file"]


def form_text(name: str, max_chars: int = 200) -> str:
    """A text field of an upload form, cleaned like file names (closetai.analysis.photo.clean_text)."""
    value = request.form.get(name) or ""
    if "\ufffd" in value:  # werkzeug decodes fields as UTF-8 and replaces what is not
        raise BadRequest(f"{name} must be UTF-8 text")
    return clean_text(value, max_chars)


def uploaded_photo() -> tuple[bytes, str]:
    """The multipart field `file` -> (bytes, client file name). Reading it enforces MAX_CONTENT_LENGTH."""
    upload = upload_part("photo")
    data = upload.read()
    if not data:
        name = upload.filename or "upload"
        raise BadRequest(f"empty file (0 bytes): {name}")
    return data, upload.filename or "upload"


def store_again() -> bool:
    """The `store_again` form or query field: 1/true/yes/on stores a file whose content is already stored."""
    raw = request.form.get("store_again") or request.args.get("store_again") or ""
    if not raw.strip():
        return False
    try:
        return boolean(raw)
    except ValueError:
        raise BadRequest(f"store_again must be 1 or 0, got {raw[:20]!r}") from None


def refuse_duplicate(sha256: str, what: str) -> None:
    """AlreadyStored (409) when this content is stored or queued, unless the upload asks to store it again."""
    if store_again():
        return
    where = store().same_file(sha256)
    if where is not None:
        place = (f"{where['kind']} analysis {where['analysis_id']}" if "analysis_id" in where
                 else f"{where['kind']} job {where['job_id']}, still being analysed")
        raise AlreadyStored(f"this {what} is already stored ({place}); send store_again=1 to store it again",
                            where)


def create_photo_analysis() -> int:
    data, filename = uploaded_photo()
    source = form_text("source")  # bad fields are a 400 before anything else
    refuse_duplicate(hashlib.sha256(data).hexdigest(), "photo")
    return analyse_photo(
        data, filename, predictor=predictor(), store=store(), source=source,
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
