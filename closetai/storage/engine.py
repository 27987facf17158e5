"""The engine and the media folder: SQLite pragmas, Alembic migrations, the Store base (connections,
temporary paths and the sweep of a dead process's leftovers) and store_from_env for the CLI and workers."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine

from closetai.storage.errors import StoreError

if TYPE_CHECKING:
    from closetai.storage.store import Store

# The name this module logged under before the storage split: operators' log filters know it.
log = logging.getLogger("closetai.storage.store")

_HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Is process `pid` alive on this host?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _owner_gone(name: str) -> bool:
    """True when a Store.tmp_path name says it was made on this host by a process that has exited."""
    parts = name.rsplit("~", 2)
    if len(parts) != 3 or parts[1] != _HOST or not parts[2].isdigit():
        return False
    return int(parts[2]) != os.getpid() and not pid_alive(int(parts[2]))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # foreign_keys: SQLite ignores ON DELETE CASCADE without it. WAL + busy_timeout: the web server's
    # threads, a job worker and `closetai ingest` may write at once; readers never block the writer.
    # busy_timeout first: the journal_mode pragma itself needs a lock, and without a timeout a
    # connection opened while another process writes failed at once with "database is locked".
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class StoreBase:
    """The engine and media folder every part of Store (closetai.storage.store) works on."""

    def __init__(self, url: str, media_root: str | os.PathLike):
        self.url = url
        self.media_root = Path(media_root).resolve()
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    # -- schema -----------------------------------------------------------------------------------
    def init_schema(self) -> None:
        """Bring the schema to the newest migration (idempotent) and create the media folder."""
        self.media_root.mkdir(parents=True, exist_ok=True)
        migrate(self.engine)
        self.sweep_leftovers()

    def tmp_path(self, prefix: str = "") -> Path:
        """A fresh path under media_root/.tmp whose name records this process (host and pid), so a
        restart can tell a dead process's leftovers from a live writer's (sweep_leftovers)."""
        return self.media_root / ".tmp" / f"{prefix}{uuid.uuid4().hex}~{_HOST}~{os.getpid()}"

    def sweep_leftovers(self, older_than_s: float = 3600) -> int:
        """Remove temp/trash folders a killed process left behind: at once when the process that made it
        (tmp_path) ran on this host and is gone, otherwise only old ones, since another process (a worker,
        `closetai ingest`) may be writing a fresh one right now."""
        import time

        removed = 0
        for parent in (self.media_root / ".tmp", self.media_root / ".trash"):
            if not parent.is_dir():
                continue
            for child in parent.iterdir():
                try:
                    if _owner_gone(child.name) or time.time() - child.stat().st_mtime > older_than_s:
                        shutil.rmtree(child, ignore_errors=True)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        from sqlalchemy.exc import OperationalError

        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(f"database unavailable ({exc.orig}); try again shortly") from exc


MIGRATIONS = Path(__file__).with_name("migrations")
_PRE_MIGRATION_REVISION = "0001"  # the schema metadata.create_all made before migrations existed


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations in closetai/storage/migrations up to `revision` (idempotent).

    A database made before migrations existed (tables, no alembic_version) is stamped with 0001 first.
    Several processes may start at once (web + workers): PostgreSQL serialises them with an advisory
    lock, SQLite with BEGIN IMMEDIATE; the later ones find the schema upgraded and carry on.
    """
    import time

    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import DBAPIError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    for attempt in range(5):
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(72620011)"))
                elif engine.dialect.name == "sqlite":
                    # The write lock before the first read: otherwise a process that read "no revision"
                    # just before another committed the schema would stamp it as pre-migration.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                current = MigrationContext.configure(conn).get_current_revision()
                if current == head and revision == "head":
                    return
                config.attributes["connection"] = conn
                if current is None and "analyses" in inspect(conn).get_table_names():
                    command.stamp(config, _PRE_MIGRATION_REVISION)
                    current = _PRE_MIGRATION_REVISION
                command.upgrade(config, revision)
            log.info("database schema %s to revision %s (%s)", "created" if current is None else
                     f"upgraded from revision {current}", revision if revision != "head" else head,
                     engine.url.render_as_string(hide_password=True))
            return
        except DBAPIError as exc:
            # Another process created the same tables a moment earlier ("already exists") or holds the
            # SQLite write lock: look again.
            if attempt == 4:
                raise StoreError(f"cannot migrate the database schema ({exc.orig})") from exc
            time.sleep(0.2 * (attempt + 1))


def store_from_env(instance: str | os.PathLike | None = None, database_url: str | None = None) -> Store:
    """The database and media folder the web app uses (app.py), for the CLI and the workers: `instance`
    or $CLOSETAI_INSTANCE, else instance/ beside app.py; `database_url` or $CLOSETAI_DATABASE_URL, else
    the SQLite file in it; $CLOSETAI_MEDIA_ROOT, else instance/media. Opens it; creates nothing."""
    from closetai import settings
    from closetai.storage.store import Store  # the facade imports this module


    cfg = settings.load()
    folder = Path(instance or cfg["INSTANCE"] or Path(__file__).resolve().parents[2] / "instance")
    url = database_url or cfg["DATABASE_URL"] or default_sqlite_url(folder)
    return Store(url, cfg["MEDIA_ROOT"] or folder / "media")


def default_sqlite_url(instance_path: str | os.PathLike) -> str:
    return f"sqlite:///{Path(instance_path).resolve() / 'closetai.sqlite'}"
