"""Web layer: blueprints `pages` (HTML) and `api` (JSON under /api/v1), shared helpers and error pages.

Nothing in closetai imports this package; app.py wires it to the store and the predictor.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app, jsonify, render_template, request, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from closetai import ClosetAIError
from closetai.storage.store import AlreadyStored, Store
from closetai.vision.annotate import class_colour

# Friendlier words than werkzeug's defaults for the statuses a user can meet.
_HTTP_MESSAGES = {
    404: "not found",
    405: "method not allowed",
}


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


def register(app: Flask) -> None:
    from closetai.web import auth
    from closetai.web.api import bp as api_bp
    from closetai.web.pages import bp as pages_bp
    from closetai.web.report import bp as report_bp
    from closetai.web.similar import api as similar_api_bp
    from closetai.web.similar import pages as similar_bp
    from closetai.web.video import api as video_api_bp
    from closetai.web.video import pages as video_bp

    app.register_blueprint(pages_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(report_bp)
    app.register_blueprint(video_bp)
    app.register_blueprint(video_api_bp)
    app.register_blueprint(similar_bp)
    app.register_blueprint(similar_api_bp)
    _register_security(app)
    auth.init_app(app)  # after the cross-site guard: a forged POST /login is refused before any check

    @app.errorhandler(ClosetAIError)
    def _closetai_error(exc: ClosetAIError):
        status = int(getattr(exc, "status", 400))
        if status >= 500:
            app.logger.error("%s: %s", request.path, exc)
        if isinstance(exc, AlreadyStored):
            return error_response(str(exc), status, already_stored=already_stored_json(exc.where))
        return error_response(str(exc), status)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc):
        # request.max_content_length: the video upload raises the app-wide (photo) limit for itself
        limit = request.max_content_length or app.config.get("MAX_CONTENT_LENGTH") or 0
        if request.content_length is not None and limit and request.content_length <= limit:
            # Werkzeug raises the same 413 for a form over its part or text-field limits: a small body
            # that is not a big file.
            return error_response(f"form refused: more than {request.max_form_parts:,} fields, or a text "
                                  f"field over {(request.max_form_memory_size or 0) / 1e3:.0f} kB; send one "
                                  "file and the documented fields only", 413)
        return error_response(f"upload too large: the limit is {limit / 1e6:.3g} MB per file", 413)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        message = exc.description if exc.code not in _HTTP_MESSAGES else _HTTP_MESSAGES[exc.code]
        if exc.code == 404 and not wants_json():
            message = f"page not found: {request.path}"
        return error_response(message, exc.code or 500)

    @app.errorhandler(FileNotFoundError)
    def _file_gone(exc: FileNotFoundError):
        # a media file that existed when its row was read and was deleted before it was opened
        return error_response("no such media file: it was deleted", 404)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # The server stays up; the user gets one line, the log gets the traceback.
        app.logger.exception("unhandled error on %s", request.path)
        return error_response("internal error: the analysis failed; the details are in the server log", 500)


# Pages only load our own scripts (no inline ones); inline style attributes and the <style> inside
# matplotlib's SVGs need 'unsafe-inline' for styles. Uploaded media is never HTML, and nosniff stops a
# browser from guessing otherwise.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def allowed_hosts(raw: str | None) -> tuple[str, ...]:
    """CLOSETAI_ALLOWED_HOSTS ("closet.example.com,.internal", "*" for any) -> lower-case names; a name
    starting with a dot also allows its subdomains. Empty or None: the loopback names."""
    names = tuple(n.strip().lower() for n in (raw or "").split(",") if n.strip())
    return names or LOOPBACK_HOSTS


def host_allowed(host_header: str, allowed: tuple[str, ...]) -> bool:
    """Is the Host header (name[:port], [v6][:port]) one of the allowed names?

    Written here rather than Flask's TRUSTED_HOSTS because werkzeug's check refuses a bracketed IPv6
    host ("[::1]:5000", what a browser sends for http://[::1]:5000) and is case-sensitive.
    """
    if "*" in allowed:
        return True
    try:
        name = urlsplit("//" + host_header).hostname  # lower-cased, brackets and port removed
    except ValueError:  # "[::1" and other malformed hosts
        return False
    if not name:
        return False
    return any(name == ref or (ref.startswith(".") and (name.endswith(ref) or name == ref[1:]))
               for ref in allowed)


def _register_security(app: Flask) -> None:
    hosts = allowed_hosts(app.config.get("ALLOWED_HOSTS"))

    @app.before_request
    def _known_host_only():
        """DNS rebinding guard: a page on attacker.example whose name an attacker points at 127.0.0.1 makes
        the browser send `Host: attacker.example`; answering it would let that page read every photo and
        delete analyses, and the Origin check below would compare with that same host. So only the
        configured names are answered (loopback by default), whatever the method."""
        host = request.headers.get("Host", "")
        if not host_allowed(host, hosts):
            shown = host[:100]
            return error_response(f"unknown host {shown!r}: this server answers only to {', '.join(hosts)} "
                                  "(set CLOSETAI_ALLOWED_HOSTS to add the name people use)", 400)
        return None

    @app.before_request
    def _same_origin_only():
        """Cross-site request forgery guard for state-changing requests.

        Browsers send Origin (and Sec-Fetch-Site) on every POST/DELETE; a page on another site posting a
        form or a fetch to this server is refused. Clients that send neither (curl, scripts) are not
        browsers acting for a visitor and pass. This is OWASP's standard-header check, chosen over
        per-form tokens so the JSON API stays usable from scripts without a session.
        """
        if request.method not in _STATE_CHANGING:
            return None
        site = request.headers.get("Sec-Fetch-Site")
        origin = request.headers.get("Origin")
        if site in ("cross-site", "same-site"):
            return error_response("cross-site request refused: submit the form from this site", 403)
        if origin and origin != "null" and origin.rstrip("/") != request.host_url.rstrip("/"):
            return error_response("cross-site request refused: submit the form from this site", 403)
        if origin == "null":
            return error_response("cross-site request refused: submit the form from this site", 403)
        return None

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
