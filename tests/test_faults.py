"""Load and faults against real processes on loopback (issue 6): 50 concurrent uploads to a real server,
a bulk ingest killed with SIGKILL and resumed, concurrent writers in separate processes.

The video job killed mid-analysis is tests/jobs/test_jobs.py::test_sigkill_mid_job_then_restart.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from closetai.storage.store import NewAnalysis, NewDetection, Store, default_sqlite_url
from tests.helpers import REPO, SHIPPED_MODEL, run_processes

needs_model = pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="models/closetai-ccp15.pt not present")
sys.path.insert(0, str(REPO / "bench"))
from bench_load import synthetic_photo  # noqa: E402  (the load benchmark's photo generator)


@pytest.mark.slow
@needs_model
def test_fifty_concurrent_uploads_to_a_real_server(tmp_path):
    out = tmp_path / "load.json"
    proc = subprocess.run([sys.executable, "bench/bench_load.py", "--n", "50", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    print(proc.stdout)  # p50/p95 in the test log
    r = json.loads(out.read_text())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert r["created"] == r["distinct_ids"] == r["stored_rows"] == r["stored_distinct_sha256"] == 50
    assert r["server_errors_5xx"] == 0 and r["other_failures"] == 0
    assert r["integrity_check"] == "ok" and r["tmp_leftovers"] == [] and r["server_alive_after"]
    assert not r["database_locked_in_log"]


def _db(instance: Path) -> sqlite3.Connection:
    return sqlite3.connect(instance / "closetai.sqlite", timeout=10)


def _count(instance: Path) -> int:
    try:
        db = _db(instance)
        try:
            return db.execute("SELECT count(*) FROM analyses").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def _ingest(folder: Path, instance: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "closetai", "ingest", str(folder), "--instance", str(instance),
                             "--device", "cpu", "--threads", "1", "--quiet", "--source", "killed"],
                            cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _media_dirs(instance: Path) -> set[str]:
    media = instance / "media"
    return {str(p.relative_to(media)) for p in media.glob("photos/*/*/*/*") if p.is_dir()}


@pytest.mark.slow
@needs_model
def test_sigkill_mid_ingest_then_resume(tmp_path):
    folder, instance, log = tmp_path / "photos", tmp_path / "instance", tmp_path / "ingest.log"
    folder.mkdir()
    n = 14
    for i in range(n):
        (folder / f"p{i:02d}.jpg").write_bytes(synthetic_photo(100 + i, size=(360, 480)))

    proc = _ingest(folder, instance, log)
    try:
        deadline = time.monotonic() + 180
        while _count(instance) < 3:  # killed for real mid-run: some photos stored, others not
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done_before = _count(instance)
    assert 3 <= done_before < n, "the kill must land mid-run"

    # what the killed run left: a consistent database; maybe a temp folder of the photo in flight
    db = _db(instance)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()

    # the same command again resumes: only the rest is analysed
    proc = _ingest(folder, instance, log)
    assert proc.wait(300) == 0, log.read_text()[-2000:]
    last_line = log.read_text().strip().splitlines()[-1]
    assert f"{n - done_before} ingested (" in last_line and f"{done_before} already ingested" in last_line, last_line

    db = _db(instance)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT count(*), count(DISTINCT sha256) FROM analyses").fetchone()
        assert rows == (n, n)  # nothing lost, nothing analysed twice
        stored_dirs = {r[0] for r in db.execute("SELECT media_dir FROM analyses")}
        orphan_dets = db.execute("SELECT count(*) FROM detections WHERE analysis_id NOT IN "
                                 "(SELECT id FROM analyses)").fetchone()[0]
    finally:
        db.close()
    assert orphan_dets == 0
    assert _media_dirs(instance) == stored_dirs  # no orphan media folder, none missing
    tmp = instance / "media" / ".tmp"
    assert not tmp.exists() or not any(tmp.iterdir())  # the killed run's temp folder was swept at restart


def _writer(url: str, media: str, worker: int, count: int, errors) -> None:
    store = Store(url, media)
    try:
        for i in range(count):
            store.add_analysis(
                NewAnalysis(kind="photo", filename=f"w{worker}-{i}.jpg", sha256=f"{worker:02d}{i:062d}", width=10,
                            height=10, model_name="m", taxonomy="t", min_score=0.5, files={"photo": b"x" * 2000}),
                [NewDetection(label="top", score=0.9, box=(0, 0, 5, 5), mask_rle=None) for _ in range(20)])
    except Exception as exc:  # noqa: BLE001  (reported to the parent, which asserts there were none)
        import traceback

        errors.put(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    finally:
        store.dispose()


def test_concurrent_writer_processes_never_see_database_is_locked(tmp_path):
    instance = tmp_path / "instance"
    store = Store(default_sqlite_url(instance), instance / "media")
    instance.mkdir()
    store.init_schema()
    found = run_processes(_writer, [(store.url, str(store.media_root), w, 40) for w in range(4)])
    assert found == [], "\n".join(found)
    assert store.count_analyses() == 160
    assert os.path.getsize(instance / "closetai.sqlite") > 0


def test_a_dead_processs_temp_folders_are_swept_at_once_a_live_ones_kept(store):
    from tests.jobs_helpers import dead_pid

    mine = store.tmp_path("analysis-")  # this (live) process's: a writer may be mid-way
    dead = mine.with_name(mine.name.rsplit("~", 1)[0] + f"~{dead_pid()}")
    foreign = mine.with_name(mine.name.replace(mine.name.rsplit("~", 2)[1], "another-host"))  # can't tell
    for folder in (mine, dead, foreign):
        folder.mkdir(parents=True)
        (folder / "photo.jpg").write_bytes(b"half written")
    assert store.sweep_leftovers() == 1
    assert mine.is_dir() and foreign.is_dir() and not dead.exists()
