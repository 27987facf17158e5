"""The video job: a clip uploaded on the web or ingested by the CLI, analysed by a worker
(closetai.analysis.video) and stored as one analysis with its tracks (Store.add_analysis)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from closetai import ClosetAIError, sha256_file
from closetai.analysis.photo import clean_text
from closetai.jobs.uploads import save_upload
from closetai.media.video import DEFAULT_ANALYSIS_FPS, VideoLimits, creation_time, middle_frame, probe_video
from closetai.storage.store import NewAnalysis, NewDetection, NewTrack, Store

if TYPE_CHECKING:
    from closetai.jobs.lifecycle import JobContext


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


def _middle_frame_jpeg(video: Path, max_side: int) -> bytes | None:
    """The clip's middle frame as a JPEG (its thumbnail), None when it has no frame."""
    import numpy as np

    from closetai.analysis.photo import jpeg_bytes

    rgb = middle_frame(video)
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
        captured_at=creation_time(Path(info.path)), embedding_model=result.model.get("embedding", ""))
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


def ingest_video(store: Store, path: Path, predictor, *, source: str = "", settings: VideoSettings | None = None,
                 lock: threading.Lock | None = None) -> tuple[str, int | None, str | None]:
    """`closetai ingest` for one clip, through the same job path as a web upload (a job row, run here in
    the foreground). Returns (outcome, job id, error): outcome 'already' (same content stored), 'done'
    or 'failed'. Bad input raises its VideoError before any job row exists."""
    from closetai.jobs.lifecycle import JobContext, run_job  # lifecycle imports this module (JOB_FUNCTIONS)

    settings = settings or VideoSettings()
    if store.find_by_sha256(sha256_file(path)):
        return "already", None, None
    with open(path, "rb") as f:
        upload = save_upload(store, f, path.name)
    job_id = create_video_job(store, upload, path.name, source, settings)
    outcome = run_job(job_id, JobContext(store=store, predictor=predictor, lock=lock, video=settings))
    return outcome, job_id, store.get_job(job_id)["error"]
