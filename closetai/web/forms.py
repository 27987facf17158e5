"""Reading an upload request: the one file part, text fields, the store-again flag, the duplicate check,
and the photo upload use case shared by the page and the API. Each refusal is a BadRequest (400) or
AlreadyStored (409) with a message the error handlers show as it is."""

from __future__ import annotations

import hashlib

from flask import current_app, request
from werkzeug.datastructures import FileStorage

from closetai import ClosetAIError, boolean
from closetai.analysis.photo import analyse_photo, clean_text
from closetai.storage.store import AlreadyStored
from closetai.web.context import inference_lock, predictor, store

SQLITE_MAX_INT = 2**63 - 1  # ids and offsets are SQLite 64-bit integers


class BadRequest(ClosetAIError):
    status = 400


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


def accepted_types() -> str:
    """The file picker's accept list of the photo upload and /search (HEIC when pillow-heif is there)."""
    types = ["image/jpeg", "image/png", "image/webp", ".jpg", ".jpeg", ".png", ".webp"]
    if current_app.config.get("HEIC_SUPPORTED"):
        types += ["image/heic", "image/heif", ".heic", ".heif"]
    return ",".join(types)
