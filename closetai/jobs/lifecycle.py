"""The job lifecycle on the jobs table: claim and run a job, take over a dead worker's, recover
the ones a dead process left 'running', and the progress JSON.

A job is a row in the `jobs` table (closetai.storage.store) plus a job function `fn(job_id, ctx)` that reads its
params from that row and writes progress and results only through the store. Nothing in closetai.jobs holds state
a worker in another process could not rebuild, so a Celery task runs the same functions
(closetai.jobs.worker, when CLOSETAI_BROKER_URL is set):

    @celery.task
    def run(job_id): run_delivered_job(job_id, worker_context(), stale_after_s)   # context once per process

Kinds: 'video' (a web upload or an ingested clip) and 'photo' (one file of a fanned-out `closetai ingest`).

Lifecycle: queued -> running (claimed atomically, so two workers never run one job) -> done | failed.
Progress (done/total) and a heartbeat are written at most every `progress_interval_s`.

Restart policy (documented choice: FAIL, not resume). A job found 'running' whose worker is gone is
marked failed with "interrupted by a server restart; upload again"; its upload is deleted. Resuming was
rejected: analysis is not checkpointed (it would restart from frame 0 anyway), and a clip that crashes
the process (out of memory, a decoder bug) would crash every restart in a loop. A worker is gone when
  - it ran on this host and its process no longer exists (or this process has the pid but is a newer
    incarnation, as with pid 1 in a container), checked when the app is created; or
  - its heartbeat is older than `stale_after_s` (any host; also swept periodically by idle workers).
Jobs still 'queued' at a restart keep their upload and run when the workers start.
On Celery (closetai.jobs.worker) the broker hands a dead worker's task to another worker instead, and that
worker TAKES OVER the job (take_over: back to 'queued', claimed afresh, analysed from the start), at
most MAX_TAKEOVERS times: a clip that kills every worker that opens it is then failed, not looped on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from closetai import ClosetAIError
from closetai.jobs.photo_job import run_photo_job
from closetai.jobs.uploads import _remove_upload
from closetai.jobs.video_job import VideoSettings, run_video_job
from closetai.storage.store import JobNotRunning, Store, pid_alive, utcnow

log = logging.getLogger("closetai.jobs.runner")  # one logger name for the job path, as before the split

INTERRUPTED = "interrupted by a server restart; upload again"
SHUTDOWN = "cancelled: the server shut down while analysing; upload again"
INTERNAL = "internal error: the analysis failed; the details are in the server log"
MAX_TAKEOVERS = 2
CRASHED = "the analysis stopped its worker {n} times (out of memory?); not tried again"

# Who runs a job: stored in its params when claimed, so a later process can tell a dead worker's
# 'running' job from a live one. The token tells this process from an earlier one with the same pid.
WORKER = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex}


def _new_worker_identity() -> None:
    """A forked child (a Celery prefork process) is a worker of its own: it must not claim jobs under its
    parent's pid, or killing the child would leave its job looking alive. Updated in place: importers
    hold this very dict."""
    WORKER.update(pid=os.getpid(), token=uuid.uuid4().hex)


os.register_at_fork(after_in_child=_new_worker_identity)


@dataclass
class JobContext:
    """What a job function needs besides its row: built once per worker process."""

    store: Store
    predictor: Any
    lock: threading.Lock | None = None  # serialises inference with the web's photo uploads
    video: VideoSettings = field(default_factory=VideoSettings)
    progress_interval_s: float = 0.5
    should_stop: Callable[[], bool] = lambda: False


JobFunction = Callable[[int, JobContext], None]


class JobRunner(Protocol):
    """What the web layer needs from a runner: threads here, or closetai.jobs.worker.CeleryJobRunner (a task)."""

    def submit(self, job_id: int) -> None: ...

    def start(self) -> None: ...

    def stop(self, timeout: float | None = None) -> None: ...


# ---- running one job -------------------------------------------------------------------------------

def run_job(job_id: int, ctx: JobContext) -> str:
    """Claim a queued job and run it to done/failed. Returns the final status ('skipped' when another
    worker had claimed it). Failures are recorded on the row, never raised: a worker must keep going."""
    job = ctx.store.get_job(job_id)
    fn = JOB_FUNCTIONS.get(job["kind"])
    if fn is None:
        ctx.store.fail_job(job_id, f"unknown job kind {job['kind']!r}")
        return "failed"
    if not ctx.store.claim_job(job_id, {**job["params"], "worker": WORKER}):
        return "skipped"
    try:
        fn(job_id, ctx)
    except JobNotRunning:
        log.warning("job %d was failed by a sweep while it ran; its result was discarded", job_id)
        return "failed"
    except ClosetAIError as exc:
        from closetai.analysis.video import AnalysisCancelled

        ctx.store.fail_job(job_id, SHUTDOWN if isinstance(exc, AnalysisCancelled) else str(exc))
        return "failed"
    except Exception:
        log.exception("job %d (%s) failed", job_id, job["kind"])
        ctx.store.fail_job(job_id, INTERNAL)
        return "failed"
    finally:
        _remove_upload(ctx.store, job["params"])
    return ctx.store.get_job(job_id)["status"]


def take_over(store: Store, job_id: int, stale_after_s: float) -> str:
    """For a task delivered again (closetai.jobs.worker: acks late, so a killed worker's task comes back):
    the job's status as the caller should treat it.

      'done' / 'failed'  finished already: nothing to do (the redelivery of a finished job is a no-op)
      'busy'             running on a live worker: leave it alone, ask again later
      'queued'           ready to claim; a 'running' job whose worker is gone (worker_gone) is put back
                         to 'queued' first and the dead worker's half-written work removed

    The move back to 'queued' only happens while the row still names the worker found dead, so two
    workers that both see it dead take it over once; claim_job then picks exactly one runner. Should the
    "dead" worker only have been slow and finish after all, add_analysis(finish_job=...) commits for
    whichever finishes first and rolls the other back: the job is never stored twice.
    """
    job = store.get_job(job_id)
    status = job["status"]
    if status != "running":
        return status
    if not worker_gone(job, stale_after_s):
        return "busy"
    takeovers = int(job["params"].get("takeovers", 0))
    if takeovers >= MAX_TAKEOVERS:
        if store.fail_job(job_id, CRASHED.format(n=takeovers + 1), only_if=("running",)):
            _remove_upload(store, job["params"])
        return "failed"
    if store.requeue_job(job_id, job["params"].get("worker"), {**job["params"], "takeovers": takeovers + 1}):
        for work in (store.media_root / ".tmp").glob(f"job-{job_id}-*"):  # its half-written video
            shutil.rmtree(work, ignore_errors=True)
        store.sweep_leftovers()  # its half-stored analysis folder, when it ran on this host
        log.warning("job %d: its worker %s is gone; taken over by pid %d", job_id,
                    job["params"].get("worker"), WORKER["pid"])
    return "queued"


def run_delivered_job(job_id: int, ctx: JobContext, stale_after_s: float) -> str:
    """run_job for a queue's task, which may be a redelivery: take_over, then run_job when the job is
    ready. Returns run_job's outcome, or take_over's 'done' / 'failed' / 'busy' when there was nothing
    to run."""
    state = take_over(ctx.store, job_id, stale_after_s)
    return run_job(job_id, ctx) if state == "queued" else state


def worker_gone(job: dict[str, Any], stale_after_s: float, now: datetime | None = None) -> bool:
    """Is this 'running' job's worker dead (see the module docstring)?"""
    now = now or utcnow()
    beat = job.get("heartbeat_at") or job.get("started_at") or job["created_at"]
    if now - beat > timedelta(seconds=stale_after_s):
        return True
    params = job["params"] if isinstance(job["params"], dict) else json.loads(job["params"] or "{}")
    worker = params.get("worker")
    if not worker:
        return False  # no owner recorded (a foreign runner): only the heartbeat can tell
    if worker.get("host") != WORKER["host"]:
        return False
    if worker.get("token") == WORKER["token"]:
        return False  # ours, and we are alive
    pid = int(worker.get("pid", -1))
    return pid == WORKER["pid"] or not pid_alive(pid)


def recover_interrupted(store: Store, stale_after_s: float = 60.0) -> list[int]:
    """Fail every 'running' job whose worker is gone. Returns their ids."""
    failed = []
    for job in store.list_jobs(status="running"):
        params = json.loads(job["params"]) if job["params"] else {}
        if worker_gone({**job, "params": params}, stale_after_s) and store.fail_job(job["id"], INTERRUPTED,
                                                                                    only_if=("running",)):
            _remove_upload(store, params)
            for work in (store.media_root / ".tmp").glob(f"job-{job['id']}-*"):  # its half-written video
                shutil.rmtree(work, ignore_errors=True)
            failed.append(job["id"])
            log.warning("job %d was running in a process that is gone: marked failed", job["id"])
    return failed

JOB_FUNCTIONS: dict[str, JobFunction] = {"video": run_video_job, "photo": run_photo_job}


def job_status(job: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The JSON a progress page polls: status, stage, done/total, percent, elapsed and ETA in seconds."""
    now = now or utcnow()
    started, finished = job.get("started_at"), job.get("finished_at")
    elapsed = ((finished or now) - started).total_seconds() if started else 0.0
    done, total = int(job["done"] or 0), job["total"]
    status = job["status"]
    stage = {"queued": "waiting for the worker", "done": "done", "failed": "failed"}.get(status)
    eta = None
    if status == "running":
        if total and done >= total:
            stage = "writing the annotated video"
        else:
            stage = "analysing frames"
            if done > 0 and total:
                # Linear in frames analysed, which is where the time goes; +25 % for writing the video at
                # the clip's full rate (bench/bench_web_video.py: 7.5 s after 31 s of analysis).
                eta = round(elapsed / done * (total - done) * 1.25 + 1, 1)
    percent = 100.0 if status == "done" else (round(100.0 * done / total, 1) if total else 0.0)
    return {"id": job["id"], "kind": job["kind"], "status": status, "stage": stage, "done": done, "total": total,
            "percent": percent, "elapsed_s": round(max(elapsed, 0.0), 1), "eta_s": eta, "error": job["error"],
            "analysis_id": job["analysis_id"], "filename": (job["params"] or {}).get("filename"),
            "created_at": job["created_at"].isoformat(timespec="seconds") + "Z"}
