"""`closetai settings`, `worker`, `reindex`: running the service and its stored data."""

from __future__ import annotations

import argparse

from closetai import ClosetAIError, settings
from closetai.cli.common import _add_store_options, _open_store, settings_load


def _cmd_settings(a: argparse.Namespace) -> int:
    if not a.values:
        print(settings.markdown_table())
        return 0
    cfg = settings.load()
    for s in settings.SETTINGS:
        value = cfg[s.key]
        secret = s.key in ("PASSWORD", "PASSWORD_HASH", "API_TOKENS", "SECRET_KEY") and value not in (None, "dev")
        print(f"{s.env}={'(set)' if secret else ('' if value is None else value)}")
    return 0


def _cmd_worker(a: argparse.Namespace) -> int:
    """A Celery worker (closetai.jobs.worker) on the shared database: --concurrency processes, each loading the
    model on its first job."""
    import os

    broker = a.broker_url or settings_load()["BROKER_URL"]
    if not broker:
        raise ClosetAIError("no broker: set CLOSETAI_BROKER_URL (e.g. redis://127.0.0.1:6379/0) or --broker-url")
    if a.concurrency < 1:
        raise ClosetAIError("--concurrency must be at least 1")
    store = _open_store(a)  # the schema and the media folder exist before any process takes a job
    # The pool processes are forked from this one and read their settings from the environment.
    os.environ.update(CLOSETAI_BROKER_URL=broker, CLOSETAI_DATABASE_URL=store.url,
                      CLOSETAI_MEDIA_ROOT=str(store.media_root))
    for var, value in (("CLOSETAI_THREADS", a.threads), ("CLOSETAI_MODEL", a.model), ("CLOSETAI_DEVICE", a.device)):
        if value:
            os.environ[var] = str(value)
    store.dispose()  # no pooled connection may cross the fork

    from closetai.jobs.worker import celery, configure

    configure(celery, broker)
    celery.worker_main(["worker", "--pool=prefork", f"--concurrency={a.concurrency}", f"--loglevel={a.loglevel}",
                        "--without-gossip", "--without-mingle", f"--hostname=closetai-{os.getpid()}@%h"])
    return 0


def _cmd_reindex(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from closetai.insights.similar import reindex
    from closetai.vision.predict import Predictor

    store = _open_store(a)
    predictor = Predictor(a.model, device=a.device, threads=a.threads)

    def progress(items, total):
        return tqdm(items, total=total, unit="analysis", desc="reindex", disable=a.quiet)

    counts = reindex(store, predictor, everything=a.all, progress=progress)
    print(f"reindex: {counts['garments']} garments embedded in {counts['analyses']} analyses "
          f"({predictor.embedding_model}); {counts['skipped']} skipped (media file missing)")
    return 0


def _add_settings_command(sub) -> None:
    s = sub.add_parser("settings", help="print every CLOSETAI_* setting: default, meaning (a Markdown table), "
                       "and the values this environment gives")
    s.add_argument("--values", action="store_true", help="the values in effect here instead of the table")
    s.set_defaults(func=_cmd_settings)


def _add_worker_command(sub) -> None:
    s = sub.add_parser("worker", help="run queued jobs (videos, ingested photos) from CLOSETAI_BROKER_URL (Celery)")
    s.add_argument("--concurrency", type=int, default=1, help="worker processes, each with its own model")
    s.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's)")
    s.add_argument("--broker-url", help="default $CLOSETAI_BROKER_URL, e.g. redis://127.0.0.1:6379/0")
    s.add_argument("--model")
    s.add_argument("--device", help="cpu, cuda or auto (default $CLOSETAI_DEVICE or auto)")
    s.add_argument("--loglevel", default="INFO")
    _add_store_options(s)
    s.set_defaults(func=_cmd_worker)


def _add_reindex_command(sub) -> None:
    s = sub.add_parser("reindex", help="(re)compute the similar-items embedding of every stored garment")
    s.add_argument("--all", action="store_true", help="re-embed every garment, not only those without a current vector")
    s.add_argument("--model")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_store_options(s)
    s.set_defaults(func=_cmd_reindex)
