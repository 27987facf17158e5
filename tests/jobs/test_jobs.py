"""The job runner: atomic claims, the restart policy (running jobs of a dead process are FAILED with
"interrupted by a server restart; upload again", queued ones run), and a real server SIGKILLed mid-job."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from closetai.jobs.runner import (
    INTERRUPTED,
    WORKER,
    JobContext,
    recover_interrupted,
    run_job,
)
from closetai.storage.store import JobNotRunning, NewAnalysis, jobs, utcnow
from tests.helpers import REPO, SHIPPED_MODEL
from tests.jobs_helpers import dead_pid, queued_video, set_running, uploads
from tests.media_helpers import AppRedPredictor as Predictor
from tests.media_helpers import panned_frames, write_clip


@pytest.fixture
def instance(store, tmp_path) -> Path:
    """The folder of conftest's `store` (closetai.sqlite, media/): an app made on it opens that store."""
    return tmp_path


@pytest.fixture
def predictor():
    return Predictor()


# ---- claims and completion ----------------------------------------------------------------------

def test_a_job_is_claimed_once(store, tmp_path):
    job_id = queued_video(store, tmp_path)
    assert store.claim_job(job_id) is True
    assert store.claim_job(job_id) is False
    job = store.get_job(job_id)
    assert job["status"] == "running" and job["started_at"] is not None and job["heartbeat_at"] is not None


def test_finishing_a_job_that_was_failed_meanwhile_stores_nothing(store, tmp_path):
    job_id = queued_video(store, tmp_path)
    store.claim_job(job_id)
    assert store.fail_job(job_id, INTERRUPTED)
    new = NewAnalysis(kind="video", filename="c.mp4", sha256="0" * 64, width=8, height=8, files={"video": b"x"})
    with pytest.raises(JobNotRunning):
        store.add_analysis(new, [], [], finish_job=job_id)
    assert store.count_analyses() == 0
    assert not list(store.media_root.glob("videos/**/*")) and not list(store.media_root.glob(".tmp/*"))
    assert store.get_job(job_id)["status"] == "failed"
    assert not store.fail_job(job_id, "again")  # a finished job is never overwritten


def test_run_job_records_an_unknown_kind_as_failed(store):
    job_id = store.create_job("transcode", params={})
    assert run_job(job_id, JobContext(store=store, predictor=Predictor())) == "failed"
    assert "unknown job kind" in store.get_job(job_id)["error"]


def test_a_job_whose_upload_vanished_fails_with_a_message(store, tmp_path):
    job_id = queued_video(store, tmp_path)
    for p in reversed(uploads(store)):
        p.unlink() if p.is_file() else p.rmdir()
    assert run_job(job_id, JobContext(store=store, predictor=Predictor())) == "failed"
    assert "uploaded clip is gone" in store.get_job(job_id)["error"]


# ---- the restart policy --------------------------------------------------------------------------

def test_stale_running_job_is_failed_when_the_app_starts(store, instance, make_app, tmp_path):
    job_id = queued_video(store, tmp_path)
    set_running(store, job_id, worker=None, heartbeat_age_s=600)  # no owner recorded, no heartbeat for 10 min
    assert uploads(store)
    make_app(INSTANCE_PATH=instance)
    job = store.get_job(job_id)
    assert job["status"] == "failed" and job["error"] == INTERRUPTED and job["finished_at"] is not None
    assert uploads(store) == []  # nothing left behind


def test_running_job_of_a_dead_process_on_this_host_is_failed_at_once(store, instance, make_app, tmp_path):
    job_id = queued_video(store, tmp_path)
    set_running(store, job_id, {"host": WORKER["host"], "pid": dead_pid(), "token": "old"}, heartbeat_age_s=1)
    make_app(INSTANCE_PATH=instance)
    assert store.get_job(job_id)["status"] == "failed"


def test_same_pid_but_an_earlier_process_counts_as_dead(store, tmp_path):
    # pid 1 in a container: the restarted server has the same pid as the one that died
    job_id = queued_video(store, tmp_path)
    set_running(store, job_id, {"host": WORKER["host"], "pid": os.getpid(), "token": "earlier"}, heartbeat_age_s=1)
    assert recover_interrupted(store, stale_after_s=60) == [job_id]


def test_a_live_workers_job_is_left_running_until_its_heartbeat_stops(store, tmp_path):
    job_id = queued_video(store, tmp_path)
    live = {"host": WORKER["host"], "pid": os.getppid(), "token": "another-server"}
    set_running(store, job_id, live, heartbeat_age_s=5)
    assert recover_interrupted(store, stale_after_s=60) == []
    assert store.get_job(job_id)["status"] == "running"
    with store.engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=120)))
    assert recover_interrupted(store, stale_after_s=60) == [job_id]  # hung or gone: failed, not stuck


def test_queued_jobs_left_by_a_dead_process_run_when_workers_start(store, instance, make_app, tmp_path):
    job_id = queued_video(store, tmp_path)
    app = make_app(INSTANCE_PATH=instance)
    runner = app.extensions["closetai.jobs.runner"]
    try:
        assert store.get_job(job_id)["status"] == "queued"  # creating the app starts no work
        runner.start()
        deadline = time.monotonic() + 60
        while store.get_job(job_id)["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        runner.stop()
    job = store.get_job(job_id)
    assert job["status"] == "done" and job["analysis_id"] and uploads(store) == []


# ---- a real server, killed mid-job ---------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(instance: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "CLOSETAI_INSTANCE": str(instance), "CLOSETAI_PORT": str(port), "CLOSETAI_DEVICE": "cpu",
           "CLOSETAI_THREADS": "2", "CLOSETAI_VIDEO_MIN_SIZE": "320"}
    return subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _wait_up(base: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            _get(base + "/api/v1/health")
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("server did not start:\n" + log.read_text()[-2000:])


def _post_clip(url: str, data: bytes, name: str) -> dict:
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    body.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
               f"Content-Type: video/mp4\r\n\r\n".encode())
    body.write(data)
    body.write(f"\r\n--{boundary}--\r\n".encode())
    req = urllib.request.Request(url, data=body.getvalue(), method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 202
        return json.loads(r.read())


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="models/closetai-ccp15.pt not present")
def test_sigkill_mid_job_then_restart(tmp_path):
    instance, log = tmp_path / "instance", tmp_path / "server.log"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    clip = write_clip(tmp_path / "long.mp4", panned_frames(120, h=240, w=320, step=1), fps=10)  # 60 frames at 5 fps
    proc = _serve(instance, port, log)
    try:
        _wait_up(base, proc, log)
        job_id = _post_clip(base + "/api/v1/videos", clip.read_bytes(), "long.mp4")["job_id"]
        deadline = time.monotonic() + 120
        while (job := _get(f"{base}/api/v1/jobs/{job_id}"))["done"] < 2:
            assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "running" and job["done"] < job["total"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    proc = _serve(instance, port, log)
    try:
        _wait_up(base, proc, log)
        job = _get(f"{base}/api/v1/jobs/{job_id}")
        assert job["status"] == "failed" and job["error"] == INTERRUPTED, job
        videos = _get(f"{base}/api/v1/analyses?kind=video")
        assert videos["total"] == 0  # nothing half-stored
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    db = sqlite3.connect(instance / "closetai.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT count(*) FROM jobs WHERE status = 'running'").fetchone()[0] == 0
    finally:
        db.close()
    media = instance / "media"
    assert not [p for p in (media / "uploads").rglob("*") if p.is_file()]  # the killed job's upload is gone
    assert not list((media / ".tmp").glob(f"job-{job_id}-*"))  # and its half-written annotated video
    assert not (media / "videos").exists() or not list((media / "videos").rglob("*.mp4"))


# ---- `closetai ingest` of clips goes through the same job path ------------------------------------

def test_ingest_video_stores_once_and_refuses_bad_files(store, tmp_path):
    from closetai.jobs.runner import ingest_video
    from closetai.media.video import NotAVideo

    clip = write_clip(tmp_path / "walk.mp4", panned_frames(20), fps=10)
    outcome, job_id, error = ingest_video(store, clip, Predictor(), source="street")
    assert (outcome, error) == ("done", None)
    job = store.get_job(job_id)
    analysis = store.get_analysis(job["analysis_id"])
    assert analysis["kind"] == "video" and analysis["source"] == "street" and analysis["filename"] == "walk.mp4"
    assert [t["label"] for t in analysis["tracks"]] == ["top"] and len(analysis["detections"]) == 10
    assert ingest_video(store, clip, Predictor()) == ("already", None, None)  # a re-run skips it
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a clip")
    with pytest.raises(NotAVideo, match="notes.mp4"):
        ingest_video(store, bad, Predictor())
    assert store.count_analyses() == 1 and len(store.list_jobs()) == 1 and uploads(store) == []
