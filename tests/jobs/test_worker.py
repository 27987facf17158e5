"""Jobs on Celery workers (closetai.jobs.worker): a real Redis, two real `closetai worker` processes on one
shared database (a SQLite file, then a real PostgreSQL); the ingest fan-out, a web video upload, and a
worker SIGKILLed mid-video whose job the other worker completes, counted once. The same paths on SQLite with in-process threads are
tests/test_ingest.py, tests/web/test_web_video.py and tests/jobs/test_jobs.py.

A tiny random-weight model (saved with closetai.vision.model.save_model) keeps the inference cheap: these
tests are about delivery, not detection; its score threshold is 0, so it finds "garments" that the
tracker follows through a clip.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from closetai.cli import main
from closetai.jobs.runner import (
    MAX_TAKEOVERS,
    WORKER,
    JobContext,
    VideoSettings,
    create_photo_job,
    create_video_job,
    run_delivered_job,
    save_upload,
    take_over,
)
from closetai.storage.store import Store
from tests.helpers import REPO, make_photo, tiny_model_file
from tests.media_helpers import NAMES, panned_frames, write_clip
from tests.services import needs_postgres, needs_redis, postgres_server, redis_server

WORKER_ENV = {
    "CLOSETAI_DEVICE": "cpu",
    "CLOSETAI_VIDEO_MIN_SIZE": "128",  # the tiny model's own short side
    # Short timeouts so a vanished worker's job moves within seconds (production: 30 min and 60 s).
    "CLOSETAI_BROKER_VISIBILITY_S": "5",
    "CLOSETAI_JOB_STALE_S": "10",
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """conftest's tiny model with the CCP classes, and without mask scoring: untrained, its class scores sit
    near chance (~0.1); mask scoring would halve them (its random masks are ~0.5 sure) to below the
    tracker's new-track score, and a clip would give no tracks to check."""
    return tiny_model_file(tmp_path_factory.mktemp("model") / "tiny.pt", NAMES, {"mask_scoring": False},
                           taxonomy="closetai-ccp-15")


class Cluster:
    """Redis + a shared database + `closetai worker` processes (each in its own process group)."""

    def __init__(self, tmp: Path, broker: str, database_url: str, model: Path):
        self.tmp, self.broker, self.database_url, self.model = tmp, broker, database_url, model
        self.instance = tmp / "instance"
        self.workers: list[tuple[subprocess.Popen, Path]] = []

    @property
    def store(self) -> Store:
        return Store(self.database_url, self.instance / "media")

    def cli_args(self) -> list[str]:
        return ["--instance", str(self.instance), "--database-url", self.database_url]

    def start_worker(self) -> subprocess.Popen:
        log = self.tmp / f"worker{len(self.workers)}.log"
        env = {**os.environ, **WORKER_ENV, "CLOSETAI_BROKER_URL": self.broker}
        proc = subprocess.Popen([sys.executable, "-m", "closetai", "worker", "--concurrency", "1", "--threads", "1",
                                 "--model", str(self.model), *self.cli_args()], cwd=REPO, env=env,
                                stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append((proc, log))
        return proc

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        for proc, log in self.workers:
            while proc.poll() is None and " ready." not in log.read_text(errors="replace"):
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)

    def owner(self, pool_pid: int) -> subprocess.Popen:
        """The `closetai worker` whose pool process is `pool_pid`."""
        ppid = int(Path(f"/proc/{pool_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        return next(proc for proc, _ in self.workers if proc.pid == ppid)

    def stop(self) -> None:
        for proc, _ in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # a warm shutdown would wait for running jobs
            proc.wait(30)


@contextlib.contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'shared.sqlite'}"
    else:
        with postgres_server() as url:
            yield url


# ---- take-over rules, in this process (no broker) ---------------------------------------------------

def test_a_redelivered_job_of_a_dead_worker_is_taken_over_and_stored_once(store, tmp_path):
    from tests.jobs_helpers import dead_pid, queued_video, set_running
    from tests.media_helpers import AppRedPredictor as Predictor

    job_id = queued_video(store, tmp_path)
    dead = {"host": WORKER["host"], "pid": dead_pid(), "token": "dead"}
    set_running(store, job_id, dead, heartbeat_age_s=1)
    leftover = store.media_root / ".tmp" / f"job-{job_id}-half"
    leftover.mkdir(parents=True)
    ctx = JobContext(store=store, predictor=Predictor())
    assert run_delivered_job(job_id, ctx, stale_after_s=60) == "done"
    job = store.get_job(job_id)
    assert job["params"]["takeovers"] == 1 and job["params"]["worker"]["pid"] == os.getpid()
    assert not leftover.exists() and store.count_analyses() == 1
    assert run_delivered_job(job_id, ctx, stale_after_s=60) == "done"  # delivered again: nothing happens
    assert store.count_analyses() == 1


def test_a_live_workers_job_is_busy_and_only_one_of_two_takers_requeues(store, tmp_path):
    from tests.jobs_helpers import dead_pid, queued_video, set_running

    job_id = queued_video(store, tmp_path)
    set_running(store, job_id, {"host": WORKER["host"], "pid": os.getppid(), "token": "live"}, heartbeat_age_s=1)
    assert take_over(store, job_id, stale_after_s=60) == "busy"
    assert store.get_job(job_id)["status"] == "running"
    other = queued_video(store, tmp_path)
    dead = {"host": WORKER["host"], "pid": dead_pid(), "token": "dead"}
    set_running(store, other, dead, heartbeat_age_s=1)
    params = store.get_job(other)["params"]
    assert store.requeue_job(other, dead, {**params, "takeovers": 1}) is True
    assert store.requeue_job(other, dead, {**params, "takeovers": 1}) is False  # the second taker lost
    assert store.get_job(other)["status"] == "queued"


def test_a_job_that_killed_its_worker_too_often_is_failed(store, tmp_path):
    from tests.jobs_helpers import dead_pid, queued_video, set_running, uploads

    job_id = queued_video(store, tmp_path)
    params = {**store.get_job(job_id)["params"], "takeovers": MAX_TAKEOVERS}
    store.update_job(job_id, params=params)
    set_running(store, job_id, {"host": WORKER["host"], "pid": dead_pid(), "token": "dead"}, heartbeat_age_s=1)
    assert take_over(store, job_id, stale_after_s=60) == "failed"
    job = store.get_job(job_id)
    assert job["status"] == "failed" and "stopped its worker 3 times" in job["error"] and uploads(store) == []


def test_a_photo_job_stores_its_photo_once(store, tmp_path):
    from tests.helpers import ColourDetector

    make_photo(tmp_path / "p.jpg", seed=1)
    job_id = create_photo_job(store, tmp_path / "p.jpg", "street")
    ctx = JobContext(store=store, predictor=ColourDetector())
    assert run_delivered_job(job_id, ctx, stale_after_s=60) == "done"
    job = store.get_job(job_id)
    analysis = store.get_analysis(job["analysis_id"])
    assert (analysis["filename"], analysis["source"]) == ("p.jpg", "street")
    assert sorted(d["label"] for d in analysis["detections"]) == ["jeans", "top"]
    assert run_delivered_job(job_id, ctx, stale_after_s=60) == "done" and store.count_analyses() == 1
    assert not [p for p in (store.media_root / "uploads").rglob("*") if p.is_file()]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a photo")
    bad_job = create_photo_job(store, bad)
    assert run_delivered_job(bad_job, ctx, stale_after_s=60) == "failed"
    assert "not an image" in store.get_job(bad_job)["error"]


# ---- two real workers -------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def cluster(request, tmp_path_factory, tiny_model) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp(f"cluster-{request.param}")
    with redis_server(tmp / "redis") as broker, database(request.param, tmp) as url:
        c = Cluster(tmp, broker, url, tiny_model)
        try:
            c.start_worker()
            c.start_worker()
            c.wait_ready()
            yield c
        finally:
            c.stop()


def wait_job(store: Store, job_id: int, timeout: float = 120, until=("done", "failed")) -> dict:
    deadline = time.monotonic() + timeout
    while (job := store.get_job(job_id))["status"] not in until:
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


def garments_stored(store: Store) -> int:
    """Photos count each detection, videos each track: what the report should total. A file stored
    again (copy_of set: the tests here upload one clip several times) counts once (issue 17.2)."""
    total = 0
    for row in store.list_analyses(limit=10_000):
        if row.get("copy_of") is not None:
            continue
        analysis = store.get_analysis(row["id"])
        total += len(analysis["tracks"]) if analysis["kind"] == "video" else len(analysis["detections"])
    return total


def report_total(store: Store) -> int:
    return int(store.report_counts()["cells"]["count"].sum())


# ---- bulk ingest fans out ------------------------------------------------------------------------

@needs_redis
@pytest.mark.slow
def test_ingest_fans_out_to_both_workers_and_matches_the_in_process_ingest(cluster, tmp_path, tiny_model, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(8):
        make_photo(folder / f"p{i}.jpg", seed=i)
    shutil.copy(folder / "p0.jpg", folder / "z-dup-of-p0.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")

    # The same folder in-process (no broker), for the expected summary.
    expected_args = ["ingest", str(folder), "--quiet", "--model", str(tiny_model), "--device", "cpu", "--threads", "1",
                     "--instance", str(tmp_path / "alone")]
    assert main(expected_args) == 0
    expected = re.search(r": (.*) in \d+ s;", capsys.readouterr().out).group(1)
    assert expected.startswith("8 ingested (") and expected.endswith("1 already ingested, 1 unreadable")

    args = ["ingest", str(folder), "--quiet", "--broker-url", cluster.broker, *cluster.cli_args()]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert re.search(r": (.*) in \d+ s;", captured.out).group(1) == expected  # same photos, same garments
    assert "unreadable: " in captured.err and "broken.jpg" in captured.err

    store = cluster.store
    photo_jobs = [j for j in store.list_jobs() if j["kind"] == "photo"]
    assert len(photo_jobs) == 9 and sum(j["status"] == "done" for j in photo_jobs) == 8
    ran_in = {store.get_job(j["id"])["params"]["worker"]["pid"] for j in photo_jobs}
    assert len({cluster.owner(pid).pid for pid in ran_in if Path(f"/proc/{pid}").exists()}) == 2  # both worked
    assert not list((store.media_root / "uploads").rglob("*.jpg"))  # the queued copies are cleaned up

    # A re-run queues nothing new but the unreadable file; --no-wait returns at once.
    assert main(args) == 0
    assert re.search(r": (.*) in \d+ s;", capsys.readouterr().out).group(1) == \
        "0 ingested (0 garments), 9 already ingested, 1 unreadable"
    assert main([*args, "--no-wait"]) == 0
    assert "1 files queued for the workers" in capsys.readouterr().out
    assert store.count_analyses(kind="photo") == 8
    assert report_total(store) == garments_stored(store)


# ---- the web app submits to the workers ---------------------------------------------------------

@needs_redis
@pytest.mark.slow
def test_web_video_upload_runs_on_a_worker_with_live_progress(cluster, tmp_path):
    from app import create_app
    from closetai.jobs.worker import CeleryJobRunner
    from tests.media_helpers import AppRedPredictor as Predictor

    app = create_app({"TESTING": True, "PREDICTOR": Predictor(), "INSTANCE_PATH": cluster.instance,
                      "DATABASE_URL": cluster.database_url, "BROKER_URL": cluster.broker})
    assert isinstance(app.extensions["closetai.jobs.runner"], CeleryJobRunner)
    client = app.test_client()
    clip = write_clip(tmp_path / "walk.mp4", panned_frames(40, step=2), fps=10)
    res = client.post("/api/v1/videos", data={"file": (io.BytesIO(clip.read_bytes()), "walk.mp4"), "source": "web"},
                      content_type="multipart/form-data")
    assert res.status_code == 202
    job_id = res.get_json()["job_id"]
    seen = []
    deadline = time.monotonic() + 120
    while (body := client.get(f"/api/v1/jobs/{job_id}").get_json())["status"] not in ("done", "failed"):
        seen.append(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    assert body["status"] == "done", body
    assert any(b["status"] == "running" and 0 < b["done"] < b["total"] for b in seen)  # the bar moved
    video = client.get(f"/api/v1/videos/{job_id}").get_json()
    assert video["filename"] == "walk.mp4" and video["source"] == "web" and video["tracks"]
    assert client.get(f"/videos/{job_id}/annotated.mp4").status_code == 200
    assert client.get(f"/videos/{job_id}").status_code == 200
    store = cluster.store
    assert store.get_job(job_id)["params"]["worker"]["pid"] != os.getpid()  # not a thread of the web app
    assert not [p for p in (store.media_root / "uploads").rglob("*") if p.is_file()]


# ---- a worker killed mid-video --------------------------------------------------------------------

def running_video(cluster: Cluster, tmp_path: Path, source: str) -> tuple[int, int]:
    """Submit a 30-frame clip and wait until a worker has analysed 3 frames: (job id, its pool pid)."""
    from closetai.jobs.worker import CeleryJobRunner

    store = cluster.store
    clip = write_clip(tmp_path / f"{source}.mp4", panned_frames(60, step=1), fps=10)  # 30 frames at 5 fps
    with open(clip, "rb") as f:
        upload = save_upload(store, f, f"{source}.mp4")
    job_id = create_video_job(store, upload, f"{source}.mp4", source, VideoSettings())
    CeleryJobRunner(cluster.broker).submit(job_id)
    deadline = time.monotonic() + 120
    while (job := store.get_job(job_id))["done"] < 3:
        assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.05)
    return job_id, job["params"]["worker"]["pid"]


@needs_redis
@pytest.mark.slow
def test_a_pool_process_killed_mid_video_hands_its_job_back_at_once(cluster, tmp_path):
    # Its worker's parent process sees it die and requeues the task (reject_on_worker_lost).
    store = cluster.store
    job_id, first = running_video(cluster, tmp_path, "child-kill")
    os.kill(first, signal.SIGKILL)
    job = wait_job(store, job_id, timeout=150)
    assert job["status"] == "done", job
    assert job["params"]["takeovers"] == 1 and job["params"]["worker"]["pid"] != first
    assert len([a for a in store.list_analyses(limit=100, kind="video") if a["source"] == "child-kill"]) == 1


@needs_redis
@pytest.mark.slow
def test_worker_killed_mid_video_the_other_completes_it_once(cluster, tmp_path):
    store = cluster.store
    job_id, first = running_video(cluster, tmp_path, "kill")
    victim = cluster.owner(first)
    os.killpg(victim.pid, signal.SIGKILL)  # the whole worker, as if its machine went away
    victim.wait(10)

    job = wait_job(store, job_id, timeout=150)
    assert job["status"] == "done", job
    assert job["params"]["takeovers"] == 1
    finisher = job["params"]["worker"]["pid"]
    assert finisher != first and cluster.owner(finisher) is not victim
    assert take_over(store, job_id, 10) == "done"  # a late redelivery finds nothing to do
    videos = [a for a in store.list_analyses(limit=100, kind="video") if a["source"] == "kill"]
    assert len(videos) == 1  # stored once
    assert not list((store.media_root / ".tmp").glob(f"job-{job_id}-*"))  # the dead worker's work is gone
    assert not [p for p in (store.media_root / "uploads").rglob("*") if p.is_file()]
    assert report_total(store) == garments_stored(store)  # nothing counted twice
