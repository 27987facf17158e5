"""Alembic environment. Store.init_schema runs `upgrade head` in-process with its own connection
(config.attributes["connection"]); the `alembic` command line (alembic.ini at the repository root)
connects to $CLOSETAI_DATABASE_URL, else the SQLite file in instance/.
"""

from __future__ import annotations

from pathlib import Path

from alembic import context
from sqlalchemy import create_engine

from closetai import settings
from closetai.storage.store import default_sqlite_url, metadata

config = context.config


def _run(connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead.
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
elif context.is_offline_mode():
    raise SystemExit("closetai migrations run online only (they need the database)")
else:
    cfg = settings.load()
    url = cfg["DATABASE_URL"] or default_sqlite_url(cfg["INSTANCE"] or Path(__file__).resolve().parents[3] / "instance")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
