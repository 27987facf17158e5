"""Helpers the command modules share: the web app's store and settings, the store options."""

from __future__ import annotations

import argparse
from pathlib import Path

from closetai import settings


def settings_load() -> dict:
    return settings.load()


def video_settings():
    """How `closetai ingest` analyses clips: the web app's and the workers' CLOSETAI_VIDEO_* settings
    (limits, rate, cuts, re-identification), so a clip means the same wherever it is analysed."""
    from closetai.jobs.runner import VideoSettings

    return VideoSettings.from_config(settings_load())


def _open_store(a: argparse.Namespace):
    """The same database and media folder the web app uses (app.py): --instance / $CLOSETAI_INSTANCE,
    else instance/ beside app.py; $CLOSETAI_DATABASE_URL and $CLOSETAI_MEDIA_ROOT override as there."""
    from closetai.storage.store import store_from_env

    store = store_from_env(a.instance, a.database_url)
    if store.engine.dialect.name == "sqlite" and store.engine.url.database:  # its folder before the first connect
        Path(store.engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    store.init_schema()
    return store


def _add_store_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--instance", help="instance folder of the web app (default $CLOSETAI_INSTANCE or ./instance)")
    s.add_argument("--database-url", help="SQLAlchemy URL (default $CLOSETAI_DATABASE_URL or <instance>/closetai.sqlite)")
