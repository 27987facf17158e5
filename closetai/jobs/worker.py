"""Jobs on Celery workers (CLOSETAI_BROKER_URL=redis://...): the queue side of closetai.jobs.runner.

    closetai worker --concurrency 2 --threads 1          # or: celery -A closetai.jobs.worker worker
    CLOSETAI_BROKER_URL=redis://host:6379/0 python app.py  # the web app submits here instead of threads

One task, `closetai.run_job(job_id)`, runs any job kind through closetai.jobs.runner.run_delivered_job, in a
worker process that loaded the model once (lazily, on its first task: a model load can outlast
Celery's limit for worker_process_init). The job row in the shared database is the truth; the message
only says "look at job N", so it may arrive twice:

  - acknowledged late (acks_late, reject_on_worker_lost, prefetch 1): a worker process killed mid-job
    gives its message back to the broker at once (its pool parent sees it die), a worker machine that
    vanishes gives it back after the visibility timeout, and another worker takes the job over
    (closetai.jobs.runner.take_over: a job whose worker is gone goes back to 'queued' and is claimed afresh);
  - a delivery for a finished job does nothing; one for a job still running on a LIVE worker is retried
    every `recheck_s` rather than dropped. Dropping would be wrong: the broker may already have handed
    the live worker's own message out again (a job longer than the visibility timeout), and if that
    worker died next, nothing would be left to take the job over.
  - rows are written only together with the job's 'done' (Store.add_analysis(finish_job=...)), so a
    job run twice in a race still stores one analysis.

Settings are read from the environment, as the web app's are (instance/config.py is the web app's
file and is not read here): CLOSETAI_BROKER_URL, CLOSETAI_DATABASE_URL / CLOSETAI_INSTANCE /
CLOSETAI_MEDIA_ROOT (the shared database and media folder), CLOSETAI_MODEL, CLOSETAI_DEVICE,
CLOSETAI_THREADS (torch threads per process), CLOSETAI_VIDEO_FPS, CLOSETAI_VIDEO_MIN_SIZE,
CLOSETAI_VIDEO_MAX_DURATION_S, CLOSETAI_VIDEO_MAX_PIXELS, CLOSETAI_VIDEO_SHOT_CUTS, CLOSETAI_VIDEO_REID,
CLOSETAI_JOB_STALE_S, CLOSETAI_BROKER_VISIBILITY_S.
"""

from __future__ import annotations

import logging
import os

from celery import Celery, signals

from closetai import quiet_libraries, settings
from closetai.jobs.runner import JobContext, VideoSettings, run_delivered_job
from closetai.storage.store import NotFound, StoreError, store_from_env

log = logging.getLogger("closetai.jobs.worker")

TASK = "closetai.run_job"
QUEUE = "closetai"

# Redis has no acknowledgements: a message a consumer took is restored to the queue when it was not
# acked within the visibility timeout, whether that consumer died or is just still busy. It must
# therefore exceed the longest job: a clip at the 300 s limit takes ~15 min on a 2-core CPU, so 30 min.
# It is also how long a job of a worker MACHINE that vanished waits before another worker takes it
# (a killed worker PROCESS is requeued at once by reject_on_worker_lost). A job that does run longer is
# redelivered while running and only causes a "busy, ask again later" retry, never a second run.
# (CLOSETAI_BROKER_VISIBILITY_S in closetai.settings.)


def configure(app: Celery, broker_url: str | None) -> Celery:
    """Broker and delivery settings (module docstring) for the worker and for submitting clients."""
    visibility = settings.load()["BROKER_VISIBILITY_S"]
    app.conf.update(
        broker_url=broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            # kombu scans for expired messages every interval x throttle seconds (default 10 x 10):
            # a fraction of the timeout keeps "vanished machine -> job taken over" close to it.
            "unacked_restore_interval": max(1, min(30, round(visibility / 20))),
            "unacked_restore_throttle": 1,
        },
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,  # progress and results live in the jobs table
        worker_prefetch_multiplier=1,  # a process reserves one job at a time; the rest wait for any worker
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


quiet_libraries()
celery = configure(Celery("closetai"), settings.load()["BROKER_URL"])


class CeleryJobRunner:
    """closetai.jobs.runner.JobRunner for the web app with a broker: submit sends the task; no threads here.

    It sends by task name, so the web process never imports the task or loads a worker context."""

    def __init__(self, broker_url: str):
        self.app = configure(Celery("closetai-web"), broker_url)

    def submit(self, job_id: int) -> None:
        self.app.send_task(TASK, args=[int(job_id)], queue=QUEUE)

    def start(self) -> None:
        """Nothing to start: the workers are `closetai worker` processes."""

    def stop(self, timeout: float | None = None) -> None:
        """Nothing to stop; a job in progress belongs to its worker."""


# ---- inside a worker process -----------------------------------------------------------------------

_context: JobContext | None = None
_context_pid: int | None = None


def worker_context() -> JobContext:
    """The store and the model of this worker process, built on its first task (after the fork: a
    database connection or torch thread pool made before it must not be shared with the parent)."""
    global _context, _context_pid
    if _context is None or _context_pid != os.getpid():
        from closetai.vision.predict import Predictor

        cfg = settings.load()
        threads = cfg["THREADS"]
        predictor = Predictor(cfg["MODEL_PATH"], device=cfg["DEVICE"], threads=threads)
        video = VideoSettings.from_config(cfg)
        _context = JobContext(store=store_from_env(), predictor=predictor, video=video)
        _context_pid = os.getpid()
        log.info("worker process %d: model %s on %s", os.getpid(), predictor.info["name"], predictor.info["device"])
    return _context


@signals.worker_init.connect
def _limit_opencv_threads(**_kwargs) -> None:
    """OpenCV (colours, resizes) would start a thread per core in every pool process. Set in the worker's
    main process, before the pool forks: opencv-python-headless 5.1 hangs in cv2.setNumThreads when a
    forked pool process calls it, and the children inherit the setting."""
    threads = settings.load()["THREADS"]
    if threads:
        import cv2

        cv2.setNumThreads(int(threads))


def stale_after_s() -> float:
    return settings.load()["JOB_STALE_S"]


@celery.task(name=TASK, bind=True, max_retries=None)
def run_job_task(self, job_id: int) -> str:
    """Run job `job_id` (any kind) to done/failed; see the module docstring for redeliveries."""
    try:
        outcome = run_delivered_job(job_id, worker_context(), stale_after_s())
    except NotFound:
        return "gone"  # deleted meanwhile (its analysis was removed)
    except StoreError as exc:  # database unreachable for a moment: the job is still queued, try again
        raise self.retry(exc=exc, countdown=10, max_retries=60) from exc
    if outcome == "busy":
        # Sooner than the visibility timeout, so this retry is not itself restored as "unacked".
        recheck_s = min(stale_after_s(), settings.load()["BROKER_VISIBILITY_S"] / 2)
        raise self.retry(countdown=recheck_s)
    return outcome
