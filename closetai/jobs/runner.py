"""Background jobs: a runner interface, the in-process thread runner, and the video job.

A job is a row in the `jobs` table (closetai.storage.store) plus a job function `fn(job_id, ctx)` that reads its
params from that row and writes progress and results only through the store. Nothing here holds state
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
import queue
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from closetai import ClosetAIError, sha256_file
from closetai.analysis.photo import clean_text
from closetai.media.video import DEFAULT_ANALYSIS_FPS, VideoLimits, probe_video
from closetai.storage.store import (
    JobNotRunning,
    NewAnalysis,
    NewDetection,
    NewTrack,
    Store,
    pid_alive,
    utcnow,
)

log = logging.getLogger("closetai.jobs.runner")

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


# Inference short side for video frames: the shipped model's own 448. 384 is 11% faster on a 2-core CPU
# (bench/bench_web_video.py: 44 s vs 50 s for a 15 s clip) but costs 0.046 val mask AP (0.358 vs 0.404,
# closetai evaluate --min-size), more than the speed is worth; CLOSETAI_VIDEO_MIN_SIZE=384 trades it.
DEFAULT_VIDEO_MIN_SIZE = 448


@dataclass
class VideoSettings:
    """How the web app analyses clips (app config VIDEO_* keys)."""

    fps: float = DEFAULT_ANALYSIS_FPS
    min_size: int | None = DEFAULT_VIDEO_MIN_SIZE  # inference short side for video frames; None: the model's
    batch_size: int | None = None  # None: closetai.analysis.video.default_batch_size (1 on CPU, 8 on GPU)
    annotate_all_frames: bool = True  # every frame at the clip's rate; False: the analysed frames only
    limits: VideoLimits = field(default_factory=VideoLimits)
    shot_cuts: bool = True  # tracks end at shot cuts (closetai.analysis.track.ShotCuts)
    reid: bool = True  # after a cut, a garment that looks like one of an earlier shot continues its track

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> VideoSettings:
        """From the web app's config or closetai.settings.load(): the same VIDEO_* keys everywhere."""
        return cls(fps=float(cfg["VIDEO_FPS"]), min_size=int(cfg["VIDEO_MIN_SIZE"] or 0) or None,
                   batch_size=cfg.get("VIDEO_BATCH_SIZE"),
                   annotate_all_frames=bool(cfg["VIDEO_ANNOTATE_ALL_FRAMES"]),
                   shot_cuts=bool(cfg["VIDEO_SHOT_CUTS"]), reid=bool(cfg["VIDEO_REID"]),
                   limits=VideoLimits(max_duration_s=float(cfg["VIDEO_MAX_DURATION_S"]),
                                      max_pixels=int(cfg["VIDEO_MAX_PIXELS"])))


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


def _remove_upload(store: Store, params: dict[str, Any]) -> None:
    """The upload is working material: the stored analysis keeps the annotated video, the hash and the
    name. Deleting it on every outcome is what leaves nothing behind after a failure."""
    rel = params.get("upload")
    if not rel:
        return
    path = (store.media_root / rel).resolve()
    if path.is_relative_to(store.media_root / "uploads"):
        shutil.rmtree(path.parent, ignore_errors=True)


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


# ---- the in-process runner -------------------------------------------------------------------------

_WAKE = -1  # not a job id: put on the queue to wake an idle worker so that it sees stop()


class ThreadJobRunner:
    """Worker threads in the web process, fed by a queue of job ids.

    One worker by default: on a 2-core CPU two Mask R-CNN passes at once only thrash, and photo uploads
    share the inference lock with it. Threads start on the first `submit` or an explicit `start`, not at
    import or app creation, so `flask <command>` processes never pick up work they would abandon.
    """

    def __init__(self, ctx: JobContext, workers: int = 1, stale_after_s: float = 60.0,
                 sweep_every_s: float = 15.0):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._stop = threading.Event()
        ctx.should_stop = self._stop.is_set
        self.ctx = ctx
        self.workers = workers
        self.stale_after_s = stale_after_s
        self.sweep_every_s = sweep_every_s
        self._queue: queue.Queue[int] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()

    def start(self) -> None:
        with self._start_lock:
            if self._threads:
                return
            self._stop.clear()
            recover_interrupted(self.ctx.store, self.stale_after_s)
            for job in self.ctx.store.list_jobs(status="queued"):  # left queued by an earlier process
                self._queue.put(job["id"])
            for i in range(self.workers):
                t = threading.Thread(target=self._work, name=f"closetai-job-{i}", daemon=True)
                t.start()
                self._threads.append(t)

    def submit(self, job_id: int) -> None:
        self.start()
        self._queue.put(job_id)

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the running job to stop (it is marked failed: SHUTDOWN) and wait for the workers."""
        self._stop.set()
        for _ in self._threads:  # wakes idle workers at once, not at the end of their sweep wait
            self._queue.put(_WAKE)
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job_id = self._queue.get(timeout=self.sweep_every_s)
            except queue.Empty:
                try:  # idle: fail jobs of other processes that died
                    recover_interrupted(self.ctx.store, self.stale_after_s)
                except Exception:
                    log.exception("stale-job sweep failed")
                continue
            if self._stop.is_set():  # a job taken here stays queued in the table: the next start runs it
                break
            if job_id == _WAKE:
                continue
            try:
                run_job(job_id, self.ctx)
            except Exception:  # the store itself failed (disk full, locked): log, keep the worker alive
                log.exception("job %d could not be run", job_id)


# ---- the video job ---------------------------------------------------------------------------------

def save_upload(store: Store, stream, filename: str) -> Path:
    """Write an uploaded clip under media_root/uploads/<token>/ (temp name, then rename): a killed process
    leaves at most a .tmp folder, which Store.sweep_leftovers clears."""
    suffix = Path(filename).suffix.lower()
    suffix = suffix if suffix[1:].isalnum() and len(suffix) <= 6 else ".bin"
    token = uuid.uuid4().hex
    tmp = store.tmp_path("upload-")
    final = store.media_root / "uploads" / token
    tmp.mkdir(parents=True)
    try:
        with open(tmp / f"clip{suffix}", "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final / f"clip{suffix}"


def _as_uploaded(message: str, upload: Path, filename: str) -> str:
    """Engine messages name the file they read: say the name the user uploaded, not ours."""
    return message.replace(upload.name, filename)


def create_video_job(store: Store, upload: Path, filename: str, source: str, settings: VideoSettings,
                     sha256: str | None = None) -> int:
    """Probe the saved upload (bad input -> its VideoError now, upload deleted) and queue a job for it.
    sha256: the upload's content hash, when the caller has it already."""
    try:
        try:
            info = probe_video(upload, settings.limits)
        except ClosetAIError as exc:
            exc.args = (_as_uploaded(str(exc), upload, filename),)
            raise
        params = {"upload": upload.relative_to(store.media_root).as_posix(), "filename": filename,
                  "source": clean_text(source), "sha256": sha256 or sha256_file(upload), "fps": settings.fps,
                  "analyse_total": info.sampled_count(settings.fps)}
        return store.create_job("video", total=params["analyse_total"], params=params)
    except BaseException:
        shutil.rmtree(upload.parent, ignore_errors=True)
        raise


class _SerialisedPredictor:
    """The app's predictor, taking the inference lock per batch (photo uploads interleave with a long
    clip instead of waiting minutes) and, while holding it, the video short side: the model is shared,
    and the lock is what makes changing its resize setting for one batch safe."""

    def __init__(self, predictor, lock: threading.Lock | None, min_size: int | None):
        self._p = predictor
        self._lock = lock or nullcontext()
        self._min_size = min_size
        self.min_score = predictor.min_score
        self.class_names = predictor.class_names
        self.info = predictor.info
        self.device = getattr(predictor, "device", None)  # the batch size default depends on it

    def predict_batch(self, frames, min_score=None, **kwargs):
        with self._lock:
            transform = getattr(getattr(self._p, "model", None), "transform", None)
            if not self._min_size or transform is None:
                return self._p.predict_batch(frames, min_score, **kwargs)
            previous, transform.min_size = transform.min_size, (int(self._min_size),)
            try:
                return self._p.predict_batch(frames, min_score, **kwargs)
            finally:
                transform.min_size = previous


class _ProgressWriter:
    """Engine progress -> jobs row, throttled. The bar counts frames analysed (the slow part, ~90 % of
    the time); writing the annotated video afterwards holds it at total with heartbeats."""

    def __init__(self, store: Store, job_id: int, analyse_total: int, interval_s: float):
        self.store, self.job_id, self.total, self.interval_s = store, job_id, max(1, analyse_total), interval_s
        self.last_write = 0.0
        self.last_done = -1

    def __call__(self, done: int, total: int) -> None:
        shown = min(done, self.total)
        now = time.monotonic()
        if now - self.last_write >= self.interval_s or (shown == self.total and self.last_done < shown):
            self.store.update_job(self.job_id, done=shown, total=self.total)
            self.last_write, self.last_done = now, shown


def _creation_time(path: Path) -> datetime | None:
    """The container's creation_time (phones write the recording time, UTC) -> naive UTC, else None."""
    import av

    try:
        with av.open(str(path)) as c:
            raw = c.metadata.get("creation_time") or c.streams.video[0].metadata.get("creation_time")
    except Exception:
        return None
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed if 1990 < parsed.year < 2200 else None  # encoders write 1970/1904 for "unknown"


def _middle_frame_jpeg(video: Path, max_side: int) -> bytes | None:
    import av
    import numpy as np

    from closetai.analysis.photo import jpeg_bytes

    with av.open(str(video)) as c:
        n = c.streams.video[0].frames or 1
        rgb = None
        for i, frame in enumerate(c.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb24")
            if i >= n // 2:
                break
    return None if rgb is None else jpeg_bytes(np.ascontiguousarray(rgb), quality=80, max_side=max_side)


def video_records(result, params: dict[str, Any], annotated: Path, crop_side: int = 240):
    """A VideoResult -> (NewAnalysis, detections, tracks) for Store.add_analysis."""
    from pycocotools import mask as mask_util

    from closetai.analysis.photo import THUMB_SIDE, jpeg_bytes

    info = result.info
    area = float(info.width * info.height)
    dets: list[NewDetection] = []
    for fr in result.frames:
        d = fr.detections
        for i in range(len(d)):
            rle = fr.mask_rles[i]
            dets.append(NewDetection(
                label=d.labels[i], score=round(float(d.scores[i]), 4),
                box=tuple(round(float(v), 1) for v in d.xyxy[i]), mask_rle=rle,
                area_share=round(float(mask_util.area({**rle, "counts": rle["counts"].encode()})) / area, 5),
                frame_index=fr.source_index, time_s=round(fr.time_s, 3), track_no=int(d.track_ids[i])))
    trks = [NewTrack(track_no=t.track_id, label=t.label, first_s=round(t.first_seen_s, 3),
                     last_s=round(t.last_seen_s, 3), frames_seen=t.frames_seen, best_score=round(t.best_score, 4),
                     colour_name=t.colour.get("name"), colour_hex=t.colour.get("hex"),
                     crop_jpeg=jpeg_bytes(t.crop, quality=85, max_side=crop_side) if t.crop.size else None,
                     embedding=t.embedding)
            for t in result.tracks]
    summary = result.to_json(frames=False)
    # the temp path means nothing later
    summary["analysis"]["annotated"] = {"frames": result.annotated_mode, "audio": result.annotated_audio}
    files = {"video": annotated.read_bytes(), "summary": json.dumps(summary).encode()}
    thumb = _middle_frame_jpeg(annotated, THUMB_SIDE)
    if thumb:
        files["thumb"] = thumb
    new = NewAnalysis(
        kind="video", filename=params.get("filename", "clip"), sha256=params.get("sha256", ""),
        width=info.width, height=info.height, source=params.get("source", ""),
        model_name=result.model.get("name", ""), taxonomy=result.model.get("taxonomy", ""),
        min_score=float(result.settings["high_score"]), files=files, duration_s=round(info.duration_s, 3),
        fps=round(info.fps, 3), frame_count=info.frame_count,
        captured_at=_creation_time(Path(info.path)), embedding_model=result.model.get("embedding", ""))
    return new, dets, trks


def run_video_job(job_id: int, ctx: JobContext) -> None:
    """Analyse the job's uploaded clip and store the analysis, tracks, detections and media atomically.
    A clip corrupt midway is stored with what was analysed; the job is 'done' with the reason in `error`."""
    from closetai.analysis.track import tracker_config
    from closetai.analysis.video import analyse_video

    store = ctx.store
    params = store.get_job(job_id)["params"]
    upload = (store.media_root / params["upload"]).resolve()
    if not upload.is_relative_to(store.media_root) or not upload.is_file():
        raise ClosetAIError("the uploaded clip is gone (deleted or lost in a restart); upload again")
    work = store.tmp_path(f"job-{job_id}-")
    work.mkdir(parents=True)
    try:
        settings = ctx.video
        filename = params.get("filename", "clip")
        progress = _ProgressWriter(store, job_id, int(params.get("analyse_total") or 1), ctx.progress_interval_s)
        annotated = work / "annotated.mp4"
        result = analyse_video(
            _SerialisedPredictor(ctx.predictor, ctx.lock, settings.min_size), upload,
            fps=params.get("fps", settings.fps), annotated_out=annotated, on_progress=progress,
            batch_size=settings.batch_size, limits=settings.limits,
            annotate_all_frames=settings.annotate_all_frames, should_stop=ctx.should_stop,
            tracker=tracker_config(shot_cuts=settings.shot_cuts, reid=settings.reid))
        if result.error:
            result.error = _as_uploaded(result.error, upload, filename)
        result.settings["min_size"] = settings.min_size
        progress(progress.total, progress.total)
        new, dets, trks = video_records(result, params, annotated)
        note = None if result.complete else f"{result.error}; the {len(result.frames)} frames before it were analysed"
        store.add_analysis(new, dets, trks, finish_job=job_id, job_error=note)
    except ClosetAIError as exc:
        exc.args = (_as_uploaded(str(exc), upload, params.get("filename", "clip")),)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def create_photo_job(store: Store, path: Path, source: str = "", *, sha256: str | None = None,
                     min_score: float | None = None, max_side: int | None = None) -> int:
    """Queue one photo of a bulk ingest: the file is copied under media_root/uploads/ (a worker on another
    machine shares the media folder, not the ingest's folder) and analysed by run_photo_job."""
    with open(path, "rb") as f:
        upload = save_upload(store, f, path.name)
    try:
        params = {"upload": upload.relative_to(store.media_root).as_posix(), "filename": path.name,
                  "source": clean_text(source), "sha256": sha256 or sha256_file(upload), "min_score": min_score,
                  "max_side": max_side}
        return store.create_job("photo", total=1, params=params)
    except BaseException:
        shutil.rmtree(upload.parent, ignore_errors=True)
        raise


def run_photo_job(job_id: int, ctx: JobContext) -> None:
    """Analyse and store one queued photo (closetai.analysis.photo, as a web upload or the in-process ingest).
    The analysis rows and the job's 'done' are one transaction: a redelivered task stores nothing twice.
    An unreadable photo fails the job with the reader's message (ingest reports it as unreadable)."""
    from closetai.analysis.photo import ANALYSIS_MAX_SIDE, analyse_photo

    store = ctx.store
    params = store.get_job(job_id)["params"]
    upload = (store.media_root / params["upload"]).resolve()
    if not upload.is_relative_to(store.media_root) or not upload.is_file():
        raise ClosetAIError("the queued photo is gone (deleted or lost in a restart); ingest it again")
    max_side = params.get("max_side")
    analyse_photo(upload.read_bytes(), params.get("filename", upload.name), predictor=ctx.predictor, store=store,
                  source=params.get("source", ""), min_score=params.get("min_score"), lock=ctx.lock,
                  max_side=ANALYSIS_MAX_SIDE if max_side is None else max_side, finish_job=job_id)


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


__all__ = ["INTERRUPTED", "JobContext", "JobRunner", "ThreadJobRunner", "VideoSettings", "create_photo_job",
           "create_video_job", "job_status", "recover_interrupted", "run_delivered_job", "run_job",
           "run_photo_job", "run_video_job", "save_upload", "take_over", "worker_gone"]


def ingest_video(store: Store, path: Path, predictor, *, source: str = "", settings: VideoSettings | None = None,
                 lock: threading.Lock | None = None) -> tuple[str, int | None, str | None]:
    """`closetai ingest` for one clip, through the same job path as a web upload (a job row, run here in
    the foreground). Returns (outcome, job id, error): outcome 'already' (same content stored), 'done'
    or 'failed'. Bad input raises its VideoError before any job row exists."""
    settings = settings or VideoSettings()
    if store.find_by_sha256(sha256_file(path)):
        return "already", None, None
    with open(path, "rb") as f:
        upload = save_upload(store, f, path.name)
    job_id = create_video_job(store, upload, path.name, source, settings)
    outcome = run_job(job_id, JobContext(store=store, predictor=predictor, lock=lock, video=settings))
    return outcome, job_id, store.get_job(job_id)["error"]
