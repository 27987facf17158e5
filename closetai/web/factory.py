"""The application factory, `create_app(test_config=None)` (flaskr-style): settings, the store, the model
(loaded once, warmed up), the job runner, the blueprints and the error pages.

Settings: defaults (closetai.settings) < instance/config.py < environment (CLOSETAI_*) < test_config.
Templates and static files live at the repository's top level (templates/, static/), beside app.py.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
from flask import Flask, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from closetai import ClosetAIError, one_malloc_arena, settings
from closetai.jobs.runner import JobContext, ThreadJobRunner, VideoSettings, recover_interrupted
from closetai.storage.store import AlreadyStored, Store, default_sqlite_url
from closetai.web.auth import access_from_config
from closetai.web.context import already_stored_json, error_response, wants_json
from closetai.web.security import register_security

REPO = Path(__file__).resolve().parents[2]  # templates/, static/ and the default instance/ folder


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app. test_config may set PREDICTOR (an already loaded Predictor, so tests load the model
    once), INSTANCE_PATH, DATABASE_URL, MAX_UPLOAD_MB, MAX_PIXELS, MIN_SCORE, ..."""
    test_config = dict(test_config or {})
    one_malloc_arena()  # before any worker thread exists (closetai.one_malloc_arena says why)
    instance_path = test_config.pop("INSTANCE_PATH", None) or _env_overrides().get("INSTANCE") or REPO / "instance"
    app = Flask("closetai", root_path=str(REPO), instance_relative_config=True,
                instance_path=str(Path(instance_path).resolve()))
    _configure(app, test_config)
    store = _open_store(app)
    predictor = _load_predictor(app)
    _start_job_runner(app, store, predictor)
    register(app)
    if app.config["REPORT_CHART_PROCESS"]:
        from closetai.web.report import chart_process

        chart_process().start()

    @app.cli.command("init-db")
    def init_db_command() -> None:
        """Create the database tables and the media folder (idempotent)."""
        store.init_schema()
        click.echo(f"initialised the database: {_redact(store.url)}; media in {store.media_root}")

    return app


def _configure(app: Flask, test_config: dict[str, Any]) -> None:
    app.config.from_mapping(settings.defaults())  # every CLOSETAI_* setting (closetai.settings)
    app.config.from_mapping(
        # Not settings a user changes: limits and hooks the tests and benchmarks set.
        LOGIN_MAX_FAILURES=5,  # failed logins per client address within LOGIN_WINDOW_S, then 429
        LOGIN_WINDOW_S=300.0,
        PREDICTOR=None,  # an already loaded Predictor (tests load the model once)
        HEIC_SUPPORTED=_heic_supported(),
        VIDEO_BATCH_SIZE=None,  # frames per forward pass; None: 1 on a CPU, 8 on a GPU (closetai.analysis.video)
        JOB_PROGRESS_INTERVAL_S=0.5,
    )
    app.config.from_pyfile("config.py", silent=True)
    app.config.update(_env_overrides())
    app.config.update(test_config)
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_UPLOAD_MB"] * 1_000_000)
    # Checked before the model loads: a server that would start insecurely stops at once, with one line.
    app.extensions["closetai.access"] = access_from_config(app.config)
    if not app.testing:
        app.logger.setLevel(logging.INFO)  # the startup line (model, device) must show under `flask run`


def _open_store(app: Flask) -> Store:
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    store = Store(app.config["DATABASE_URL"] or default_sqlite_url(app.instance_path),
                  app.config["MEDIA_ROOT"] or Path(app.instance_path) / "media")
    store.init_schema()
    app.extensions["closetai.storage.store"] = store
    app.extensions["closetai.lock"] = threading.Lock()
    return store


def _load_predictor(app: Flask):  # noqa: ANN202 (a Predictor, or the test's stand-in)
    predictor = app.config.pop("PREDICTOR", None)
    if predictor is None:
        from closetai.vision.predict import Predictor

        started = time.perf_counter()
        predictor = Predictor(app.config["MODEL_PATH"], device=app.config["DEVICE"], threads=app.config["THREADS"])
        # One pass on a blank photo-sized image: the first real upload should not pay for lazy kernel set-up.
        predictor(np.zeros((832, 550, 3), dtype=np.uint8))
        info = predictor.info
        app.logger.info("model %s (%s, %d classes) loaded on %s in %.1f s", info["name"], info["taxonomy"],
                        len(info["classes"]), info["device"], time.perf_counter() - started)
    app.extensions["closetai.predictor"] = predictor
    return predictor


def _start_job_runner(app: Flask, store: Store, predictor) -> None:  # noqa: ANN001
    """Background jobs (closetai.jobs.runner): jobs a dead process left 'running' are failed now; worker
    threads start with the first upload (or main()), so `flask <command>` never starts work it would abandon."""
    video = VideoSettings.from_config(app.config)
    app.extensions["closetai.video_settings"] = video
    ctx = JobContext(store=store, predictor=predictor, lock=app.extensions["closetai.lock"], video=video,
                     progress_interval_s=app.config["JOB_PROGRESS_INTERVAL_S"])
    if app.config["BROKER_URL"]:
        # Jobs run on Celery workers. No restart sweep here: a job whose worker died is redelivered and
        # taken over by another worker (closetai.jobs.worker), which failing it from here would pre-empt.
        from closetai.jobs.worker import CeleryJobRunner

        app.extensions["closetai.jobs.runner"] = CeleryJobRunner(app.config["BROKER_URL"])
    else:
        recover_interrupted(store, app.config["JOB_STALE_S"])
        app.extensions["closetai.jobs.runner"] = ThreadJobRunner(ctx, workers=app.config["JOB_WORKERS"],
                                                                 stale_after_s=app.config["JOB_STALE_S"])


# Friendlier words than werkzeug's defaults for the statuses a user can meet.
_HTTP_MESSAGES = {
    404: "not found",
    405: "method not allowed",
}


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
    register_security(app)
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



def _heic_supported() -> bool:
    try:
        import pillow_heif  # noqa: F401  (closetai.media.imageio registers it with Pillow)
    except ImportError:
        return False
    return True


def _env_overrides() -> dict[str, Any]:
    try:
        return settings.from_env()
    except settings.BadSetting as exc:
        raise SystemExit(f"closetai: {exc}") from None


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
