"""Schema migrations (Alembic, closetai/storage/migrations) and the same store code on SQLite and PostgreSQL
(issue 8). PostgreSQL is a real throw-away server on loopback (tests/services.py)."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from closetai.storage.store import (
    NewAnalysis,
    NewDetection,
    NewTrack,
    Store,
    default_sqlite_url,
    metadata,
    migrate,
)
from tests.helpers import run_processes
from tests.services import needs_postgres, postgres_server


def _schema_diff(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def _revision(engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from closetai.storage.store import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def _fill(store: Store) -> None:
    """Two photos and a clip whose garments give a known report."""
    when = datetime(2026, 10, 3, 12, 0)
    for i, labels in enumerate((["top", "jeans", "top"], ["jeans", "footwear"])):
        store.add_analysis(
            NewAnalysis(kind="photo", filename=f"p{i}.jpg", sha256=f"{i:064d}", width=10, height=10,
                        captured_at=when, source="street", files={"photo": b"jpeg"}),
            [NewDetection(label=lb, score=0.9, box=(0, 0, 5, 5), colour_name="blue", colour_hex="#0000ff")
             for lb in labels])
    store.add_analysis(
        NewAnalysis(kind="video", filename="c.mp4", sha256="v" * 64, width=10, height=10, captured_at=when,
                    source="street"),
        [NewDetection(label="top", score=0.8, box=(0, 0, 5, 5), frame_index=k, time_s=k / 5, track_no=1)
         for k in range(4)],
        [NewTrack(track_no=1, label="top", colour_name="white", colour_hex="#ffffff", first_s=0, last_s=0.6,
                  frames_seen=4, best_score=0.8)])


def _report(store: Store) -> tuple:
    counts = store.report_counts()
    cells = sorted((r.label, r.colour_name, int(r.count)) for r in counts["cells"].itertuples())
    sets = sorted((tuple(sorted(r.labels)), int(r.analyses)) for r in counts["label_sets"].itertuples())
    return cells, sets


EXPECTED_REPORT = (
    [("footwear", "blue", 1), ("jeans", "blue", 2), ("top", "blue", 2), ("top", "white", 1)],
    [(("footwear", "jeans"), 1), (("jeans", "top"), 1), (("top",), 1)],
)


def test_a_fresh_sqlite_database_is_migrated_to_exactly_the_models_schema(tmp_path):
    store = Store(default_sqlite_url(tmp_path), tmp_path / "media")
    store.init_schema()
    assert _revision(store.engine) == _head()
    assert _schema_diff(store.engine) == []  # migrations and closetai.storage.store's tables agree
    store.init_schema()  # idempotent
    _fill(store)
    assert _report(store) == EXPECTED_REPORT


def test_a_database_from_before_migrations_is_stamped_then_upgraded_keeping_its_rows(tmp_path):
    url = default_sqlite_url(tmp_path)
    engine = create_engine(url)
    migrate(engine, "0001")  # the tables create_all used to make, without the later index
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))  # as it was: no record of migrations
    # Rows as the old schema holds them: written by today's code into another file, then copied over
    # column by column (the old tables lack the later columns, e.g. analyses.copy_of).
    (tmp_path / "new").mkdir()
    new = Store(default_sqlite_url(tmp_path / "new"), tmp_path / "media")
    new.init_schema()
    _fill(new)
    new.dispose()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ATTACH DATABASE '{tmp_path / 'new' / 'closetai.sqlite'}' AS new")
        for table in ("analyses", "tracks", "detections"):
            cols = ", ".join(c["name"] for c in inspect(conn).get_columns(table))
            conn.exec_driver_sql(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM new.{table}")
    with engine.connect() as conn:
        conn.exec_driver_sql("DETACH DATABASE new")
    assert "ix_detections_report" not in {ix["name"] for ix in inspect(engine).get_indexes("detections")}

    store = Store(url, tmp_path / "media")
    store.init_schema()
    assert _revision(store.engine) == _head()
    assert "ix_detections_report" in {ix["name"] for ix in inspect(store.engine).get_indexes("detections")}
    assert store.count_analyses() == 3 and _report(store) == EXPECTED_REPORT


def _start(url: str, media: str, errors) -> None:
    try:
        Store(url, media).init_schema()
    except Exception as exc:  # noqa: BLE001  (reported to the parent)
        errors.put(f"{type(exc).__name__}: {exc}")


def test_processes_starting_together_migrate_once(tmp_path):
    url = default_sqlite_url(tmp_path)
    found = run_processes(_start, [(url, str(tmp_path / "media"))] * 6)
    assert found == [], "\n".join(found)
    assert _revision(create_engine(url)) == _head()


@pytest.mark.slow
@needs_postgres
def test_postgresql_runs_the_same_store_code(tmp_path):
    with postgres_server() as url:
        store = Store(url, tmp_path / "media")
        store.init_schema()
        try:
            assert _revision(store.engine) == _head()
            assert _schema_diff(store.engine) == []
            _fill(store)
            assert _report(store) == EXPECTED_REPORT  # string_agg instead of SQLite's group_concat
            assert store.report_count_analyses(sources=["street"], kind="photo") == 2
            listed = store.list_analyses(limit=10)
            assert [a["filename"] for a in listed] == ["c.mp4", "p1.jpg", "p0.jpg"]
            first = store.get_analysis(listed[-1]["id"])
            assert [d["label"] for d in first["detections"]] == ["top", "jeans", "top"]
            job = store.create_job("video", params={"upload": "x"})
            assert store.claim_job(job) and not store.claim_job(job)  # claimed once
            store.delete_analysis(first["id"])
            assert store.count_analyses() == 2
            assert not (store.media_root / first["media_dir"]).exists()
        finally:
            store.dispose()
