"""ClosetAI web app: `create_app(test_config=None)` (flaskr-style application factory).

Run it:   python app.py                      (waitress on 127.0.0.1:5000; CLOSETAI_HOST / CLOSETAI_PORT)
          flask --app app run                (Flask's development server)
Schema:   flask --app app init-db            (also created on first start)

Settings: defaults below < instance/config.py < environment (CLOSETAI_*) < test_config.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
from flask import Flask

from closetai import one_malloc_arena, quiet_libraries, settings
from closetai.jobs.runner import (
    JobContext,
    ThreadJobRunner,
    VideoSettings,
    recover_interrupted,
)
from closetai.storage.store import Store, default_sqlite_url
from closetai.web import LOOPBACK_HOSTS, allowed_hosts, register
from closetai.web.auth import access_from_config
from closetai.web.server import serve

log = logging.getLogger("closetai.app")


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


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app. test_config may set PREDICTOR (an already loaded Predictor, so tests load the model
    once), INSTANCE_PATH, DATABASE_URL, MAX_UPLOAD_MB, MAX_PIXELS, MIN_SCORE, ..."""
    test_config = dict(test_config or {})
    one_malloc_arena()  # before any worker thread exists (closetai.one_malloc_arena says why)
    instance_path = test_config.pop("INSTANCE_PATH", None) or _env_overrides().get("INSTANCE") or None
    app = Flask(__name__, instance_relative_config=True, instance_path=instance_path and str(Path(instance_path).resolve()))
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

    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    store = Store(app.config["DATABASE_URL"] or default_sqlite_url(app.instance_path),
                  app.config["MEDIA_ROOT"] or Path(app.instance_path) / "media")
    store.init_schema()
    app.extensions["closetai.storage.store"] = store
    app.extensions["closetai.lock"] = threading.Lock()

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

    # Background jobs (closetai.jobs.runner): jobs a dead process left 'running' are failed now; worker threads
    # start with the first upload (or main()), so `flask <command>` never starts work it would abandon.
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


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _stop_on_sigterm() -> None:
    """SIGTERM (docker stop, systemd) ends start-up like Ctrl-C: through the finally blocks, not at once."""
    def _interrupt(signum, frame):  # noqa: ANN001 (signal's)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries()
    _stop_on_sigterm()
    try:
        app = create_app()
    except KeyboardInterrupt:
        _shutdown(None)
        return
    app.logger.setLevel(logging.INFO)
    host, port = app.config["HOST"], app.config["PORT"]
    info = app.extensions["closetai.predictor"].info
    if host not in LOOPBACK_HOSTS and not app.extensions["closetai.access"].enabled:
        log.warning("listening on %s with access control off: anyone who can reach it can see and delete "
                    "every analysis (set CLOSETAI_PASSWORD and CLOSETAI_SECRET_KEY)", host)
    if host not in LOOPBACK_HOSTS and allowed_hosts(app.config["ALLOWED_HOSTS"]) == LOOPBACK_HOSTS:
        log.warning("listening on %s but answering only to the host names %s: set CLOSETAI_ALLOWED_HOSTS to "
                    "the name (or address) people type in their browser", host, ", ".join(LOOPBACK_HOSTS))
    log.info("ClosetAI serving on http://%s:%d (model %s on %s)", host, port, info["name"], info["device"])
    runner = app.extensions["closetai.jobs.runner"]
    try:
        runner.start()  # resume jobs left queued by the last run now, not at the first request
        serve(app, host=host, port=port, threads=4)
    except KeyboardInterrupt:
        pass
    finally:
        _shutdown(runner)


def _shutdown(runner) -> None:  # noqa: ANN001
    """Stop what the server started, so nothing outlives it: the job threads (a job cut short is marked
    failed: "cancelled: the server shut down ...") and the chart process."""
    from closetai.web.report import chart_process

    for sig in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl-C must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    if runner is not None:
        runner.stop(timeout=3.0)
    chart_process().stop()


if __name__ == "__main__":
    main()
