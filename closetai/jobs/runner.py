"""Background jobs: what callers import, from one place. Each part lives in its own module:

  lifecycle.py  a job's lifecycle on the jobs table (claim, run, take over, recover, progress JSON),
                JobContext and the JobRunner interface; the restart policy is in its docstring
  threads.py    ThreadJobRunner, the in-process runner (closetai.jobs.worker holds the Celery one)
  video_job.py  VideoSettings and the video job (web uploads and `closetai ingest` clips)
  photo_job.py  the photo job (one file of a fanned-out `closetai ingest`)
  uploads.py    an upload saved under media_root/uploads/ as a job's working material

The web app keeps its runner under app.extensions["closetai.jobs.runner"], a name kept from when all of
this was one module.
"""

from __future__ import annotations

from closetai.jobs.lifecycle import (
    CRASHED,
    INTERNAL,
    INTERRUPTED,
    JOB_FUNCTIONS,
    MAX_TAKEOVERS,
    SHUTDOWN,
    WORKER,
    JobContext,
    JobFunction,
    JobRunner,
    _new_worker_identity,
    job_status,
    log,
    recover_interrupted,
    run_delivered_job,
    run_job,
    take_over,
    worker_gone,
)
from closetai.jobs.photo_job import create_photo_job, run_photo_job
from closetai.jobs.threads import _WAKE, ThreadJobRunner
from closetai.jobs.uploads import _remove_upload, save_upload
from closetai.jobs.video_job import (
    DEFAULT_VIDEO_MIN_SIZE,
    VideoSettings,
    _as_uploaded,
    _middle_frame_jpeg,
    _ProgressWriter,
    _SerialisedPredictor,
    create_video_job,
    ingest_video,
    run_video_job,
    video_records,
)

__all__ = ["INTERRUPTED", "JobContext", "JobRunner", "ThreadJobRunner", "VideoSettings", "create_photo_job",
           "create_video_job", "job_status", "recover_interrupted", "run_delivered_job", "run_job",
           "run_photo_job", "run_video_job", "save_upload", "take_over", "worker_gone",
           # the rest of what this module defined before the split
           "CRASHED", "DEFAULT_VIDEO_MIN_SIZE", "INTERNAL", "JOB_FUNCTIONS", "JobFunction", "MAX_TAKEOVERS",
           "SHUTDOWN", "WORKER", "ingest_video", "log", "video_records",
           "_WAKE", "_ProgressWriter", "_SerialisedPredictor", "_as_uploaded", "_middle_frame_jpeg",
           "_new_worker_identity", "_remove_upload"]
