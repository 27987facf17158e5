"""The video engine: decode -> sample -> batch inference -> tracking -> per-track summary, per-frame
detections, timeline, and optionally an annotated H.264 mp4.

Built to be called by a job runner: `on_progress(done, total)` after each unit of work (it may persist
progress, or raise to abort), `should_stop()` checked between batches (-> AnalysisCancelled), and a
`VideoResult` whose `to_json()` is what the CLI writes and what a store can persist. A clip corrupted
part-way is not an exception here: the result keeps what was analysed, with `complete=False` and the
reason in `error`, so the caller decides how to report it.
The render stage (the annotated mp4) lives in closetai.analysis.render; its names are re-exported here.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from closetai import ClosetAIError
from closetai.analysis.render import INTERPOLATE_MAX_GAP, _InBetween, _render, _warp_mask  # noqa: F401
from closetai.analysis.track import GarmentTracker, ShotCuts, TrackerConfig
from closetai.media.video import (
    DEFAULT_ANALYSIS_FPS,
    VideoCorrupt,
    VideoInfo,
    VideoLimits,
    iter_frames,
    probe_video,
)
from closetai.vision.colour import dominant_colour
from closetai.vision.detections import Detections, decode_mask, encode_mask

ProgressFn = Callable[[int, int], None]


class AnalysisCancelled(ClosetAIError):
    status = 409


@dataclass
class FrameResult:
    """Tracked detections of one analysed frame. Masks are kept as COCO RLE (a full-resolution bool
    mask per garment per frame would not stay flat in memory on long clips)."""

    index: int  # sampled frame number
    source_index: int  # frame number in the clip
    time_s: float
    detections: Detections  # masks=None, track_ids set
    mask_rles: list[dict[str, Any]]

    def with_masks(self) -> Detections:
        d = self.detections
        masks = np.stack([decode_mask(r) for r in self.mask_rles]) if self.mask_rles else None
        return Detections(d.xyxy, d.scores, d.class_ids, d.class_names, masks=masks, track_ids=d.track_ids)

    def to_json(self) -> dict[str, Any]:
        items = self.detections.to_json()
        for item, rle in zip(items, self.mask_rles, strict=True):
            item["mask"] = rle
        return {"index": self.index, "source_index": self.source_index, "time_s": round(self.time_s, 3),
                "detections": items}


@dataclass
class TrackSummary:
    """One garment, counted once."""

    track_id: int
    label: str
    label_votes: dict[str, int]
    first_seen_s: float
    last_seen_s: float
    frames_seen: int
    best_score: float
    best_time_s: float
    best_box: list[float]
    colour: dict[str, Any]
    crop: np.ndarray = field(repr=False)  # RGB uint8, the box of the highest-score sighting
    embedding: np.ndarray | None = field(default=None, repr=False)  # that sighting's (closetai.vision.embed)

    def crop_jpeg(self, quality: int = 90) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(self.crop).save(buf, format="JPEG", quality=quality)
        return buf.getvalue()

    def to_json(self) -> dict[str, Any]:
        return {"track_id": self.track_id, "label": self.label, "label_votes": self.label_votes,
                "first_seen_s": round(self.first_seen_s, 3), "last_seen_s": round(self.last_seen_s, 3),
                "frames_seen": self.frames_seen, "best_score": round(self.best_score, 4),
                "best_time_s": round(self.best_time_s, 3), "best_box": self.best_box, "colour": self.colour}


@dataclass
class VideoResult:
    info: VideoInfo
    analysis_fps: float | None  # None: every frame
    frames: list[FrameResult]
    tracks: list[TrackSummary]
    timeline: dict[str, Any]
    complete: bool
    error: str | None
    annotated: str | None  # path of the annotated mp4, when written
    annotated_mode: str | None  # "sampled" (analysed frames at the analysis rate) or "all"
    model: dict[str, Any]
    settings: dict[str, Any]
    timings: dict[str, float]
    annotated_audio: str | None = None  # "copied aac", "re-encoded ... to aac", or "none (why)"

    def to_json(self, frames: bool = True) -> dict[str, Any]:
        out = {
            "video": self.info.to_json(),
            "analysis": {"fps": self.analysis_fps, "frames_analysed": len(self.frames),
                         "complete": self.complete, "error": self.error, "model": self.model,
                         "settings": self.settings,
                         "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
                         "annotated": ({"path": self.annotated, "frames": self.annotated_mode,
                                        "audio": self.annotated_audio}
                                       if self.annotated else None)},
            "tracks": [t.to_json() for t in self.tracks],
            "timeline": self.timeline,
        }
        if frames:
            out["frames"] = [f.to_json() for f in self.frames]
        return out


@dataclass
class _TrackStats:
    first_s: float
    last_s: float
    hits: int = 0
    votes: Counter = field(default_factory=Counter)
    best_score: float = -1.0
    best_time_s: float = 0.0
    best_box: np.ndarray | None = None
    best_crop: np.ndarray | None = None
    best_crop_mask: np.ndarray | None = None
    best_embedding: np.ndarray | None = None


def _crop(rgb: np.ndarray, mask: np.ndarray | None, box: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    h, w = rgb.shape[:2]
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, max(x1 + 1, int(np.ceil(box[2])))), min(h, max(y1 + 1, int(np.ceil(box[3]))))
    return rgb[y1:y2, x1:x2].copy(), None if mask is None else mask[y1:y2, x1:x2].copy()


def _timeline(frames: list[FrameResult], class_names: tuple[str, ...]) -> dict[str, Any]:
    """Per analysed time, how many garments of each class are on screen (only classes ever seen)."""
    seen = sorted({int(c) for f in frames for c in f.detections.class_ids})
    counts = {class_names[c - 1]: [int((f.detections.class_ids == c).sum()) for f in frames] for c in seen}
    return {"times_s": [round(f.time_s, 3) for f in frames], "counts": counts,
            "total": [len(f.detections) for f in frames]}


def default_batch_size(predictor) -> int:
    """Frames per forward pass: 8 on a GPU (bench/bench_gpu.py), 1 on a CPU, where batches of 4 were
    12-18% slower per frame and took 0.35 GB more memory (bench/bench_video.py --seconds 5
    --batch-size 1 vs 4 on 2 cores: 13.4/14.1 s vs 15.3/17.1 s)."""
    device = getattr(predictor, "device", None)
    return 8 if getattr(device, "type", str(device)) == "cuda" else 1


def analyse_video(predictor, path: str | os.PathLike, fps: float | None = DEFAULT_ANALYSIS_FPS,
                  annotated_out: str | os.PathLike | None = None, on_progress: ProgressFn | None = None,
                  batch_size: int | None = None, *, limits: VideoLimits | None = None, min_hits: int = 3,
                  tracker: TrackerConfig | None = None, low_score: float = 0.1, min_track_score: float = 0.0,
                  annotate_all_frames: bool = True,
                  should_stop: Callable[[], bool] | None = None) -> VideoResult:
    """Analyse a clip end to end.

    predictor: a `closetai.vision.predict.Predictor` (or anything with `predict_batch(frames, min_score,
      embed_min_score=...)`, `min_score`, `class_names`, `info`). Its `min_score` is the tracker's high threshold; detections
      down to `low_score` are only used to extend existing tracks (ByteTrack's second round).
    fps: analysis rate; None or 0 analyses every frame.
    annotated_out: write an H.264 mp4 (yuv420p, faststart) with masks, boxes, labels and track ids, and
      the clip's sound (copied when MP4 takes its codec, else re-encoded to AAC; a clip whose sound
      cannot be added gives a silent video, logged). By default it holds every frame at the clip's
      rate, each track's box interpolated between the analysed frames around it and its mask moved
      with the box (_InBetween); `annotate_all_frames=False` writes only the analysed frames at the
      analysis rate (cheaper).
    on_progress(done, total): called after each frame analysed and then each frame written; total =
      frames to analyse + frames to write (estimated from the header; the last call has done == total).
    batch_size: frames per forward pass; None: default_batch_size(predictor).
    min_hits: tracks seen in fewer analysed frames are dropped as flicker.
    min_track_score: tracks whose best detection scores below this are dropped as too weak to be a garment.
    Raises the `closetai.media.video` errors for unusable input, AnalysisCancelled when `should_stop()`
    turns true; a clip corrupt part-way returns a partial result (complete=False, error set).
    Nothing is left at `annotated_out` unless the call returns.
    """
    batch_size = batch_size or default_batch_size(predictor)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if fps is not None and fps < 0:
        raise ClosetAIError(f"analysis rate must be positive (or 0 for every frame), got {fps}")
    t_start = time.perf_counter()
    limits = limits or VideoLimits()
    info = probe_video(path, limits)
    every = not fps or fps >= info.fps
    analysis_fps = None if every else float(fps)
    n_analyse = info.sampled_count(analysis_fps)
    n_write = 0 if annotated_out is None else (info.frame_count if annotate_all_frames else n_analyse)
    progress = _Progress(n_analyse + n_write, on_progress, should_stop, Path(path).name)
    collector = _TrackCollector(predictor, tracker, low_score)

    # decode -> infer -> track
    progress.check_stop()
    decoder = _Decoder(path, analysis_fps, limits, info, batch_size)
    with closing(decoder.batches()) as batches:  # on cancel/abort: release the decoder now
        for batch in batches:
            progress.check_stop()
            collector.add(batch, progress)
    collector.timings["decode"] = decoder.seconds
    if not collector.raw_frames:  # corrupt before the first sampled frame could be analysed
        raise VideoCorrupt(decoder.error or f"no frame of {Path(path).name} could be analysed")

    # describe
    class_names = collector.class_names
    frames, tracks = _summarise(collector.raw_frames, collector.stats, class_names, min_hits, min_track_score)

    # render
    annotated_mode = audio = None
    if annotated_out is not None:
        annotated_mode = "all" if annotate_all_frames else "sampled"
        progress.total = progress.done + (info.frame_count if annotate_all_frames else len(frames))
        t0 = time.perf_counter()
        audio = _render(path, annotated_out, info, limits, frames, collector.cut_before, class_names,
                        analysis_fps, annotate_all_frames, decoder.error, progress)
        collector.timings["annotate_encode"] = time.perf_counter() - t0
    progress.finish()

    timings = collector.timings
    timings["total"] = time.perf_counter() - t_start
    model = {k: v for k, v in predictor.info.items() if k in ("name", "taxonomy", "device", "embedding")}
    return VideoResult(info, analysis_fps, frames, tracks, _timeline(frames, class_names), decoder.error is None,
                       decoder.error, None if annotated_out is None else str(annotated_out), annotated_mode, model,
                       collector.settings(min_hits, min_track_score, batch_size), timings, audio)


# The stages, in the order analyse_video runs them.


class _Progress:
    """Frames done out of an (estimated) total, reported to `on_progress`; `should_stop` polled on demand."""

    def __init__(self, total: int, on_progress: ProgressFn | None, should_stop: Callable[[], bool] | None,
                 name: str):
        self.done, self.total = 0, total
        self.on_progress, self.should_stop, self.name = on_progress, should_stop, name

    def step(self) -> None:
        self.done += 1
        self._report()

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.done, max(self.total, self.done))

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise AnalysisCancelled(f"analysis of {self.name} was cancelled")

    def finish(self) -> None:
        """The header's frame count was an estimate; end on done == total."""
        if self.done != self.total:
            self.total = self.done
            self._report()


class _Decoder:
    """The decode stage: the sampled frames in batches of `batch_size` (the last may be shorter), the
    decoding time in `seconds`. A clip corrupt part-way ends the batches early with the reason in `error`."""

    def __init__(self, path, analysis_fps: float | None, limits: VideoLimits, info: VideoInfo, batch_size: int):
        self.path, self.analysis_fps, self.limits, self.info = path, analysis_fps, limits, info
        self.batch_size = batch_size
        self.seconds = 0.0
        self.error: str | None = None

    def batches(self):
        batch = []
        frames_iter = iter_frames(self.path, self.analysis_fps, self.limits, self.info)
        try:
            while True:
                t0 = time.perf_counter()
                frame = next(frames_iter, None)
                self.seconds += time.perf_counter() - t0
                if frame is None:
                    break
                batch.append(frame)
                if len(batch) == self.batch_size:
                    yield batch
                    batch = []
        except VideoCorrupt as exc:
            self.error = str(exc)
        finally:
            frames_iter.close()  # not at garbage collection
        if batch:
            yield batch


class _TrackCollector:
    """The infer and track stages: batches of decoded frames through the detector, then frame by frame
    through the tracker. Holds each analysed frame's tracked detections (`raw_frames`, masks as RLE), every
    raw track's running statistics (`stats`), the positions in raw_frames of the first frame after each shot
    cut (`cut_before`) and the stages' timings."""

    def __init__(self, predictor, tracker: TrackerConfig | None, low_score: float):
        cfg = dataclasses.replace(tracker or TrackerConfig())
        cfg.high_score = predictor.min_score
        cfg.low_score = min(low_score, predictor.min_score)
        self.predictor, self.cfg = predictor, cfg
        self.tracker = GarmentTracker(cfg)
        self.cuts = ShotCuts(cfg.cut_distance)
        # A track starts at a detection of at least this score and its best view only ever rises from there,
        # so detections below it never need an embedding (the second-round low ones are most of a frame's).
        self.embed_from = cfg.high_score if cfg.new_track_score is None else min(cfg.high_score, cfg.new_track_score)
        self.class_names = tuple(predictor.class_names)
        self.raw_frames: list[FrameResult] = []
        self.cut_before: set[int] = set()
        self.stats: dict[int, _TrackStats] = {}
        self.timings = {"decode": 0.0, "inference": 0.0, "tracking": 0.0, "annotate_encode": 0.0}

    def add(self, batch, progress: _Progress) -> None:
        for frame, dets in zip(batch, self.infer(batch), strict=True):
            self.track(frame, dets)
            progress.step()

    def infer(self, batch) -> list[Detections]:
        t0 = time.perf_counter()
        results = self.predictor.predict_batch([f.rgb for f in batch], min_score=self.cfg.low_score,
                                               embed_min_score=self.embed_from)
        self.timings["inference"] += time.perf_counter() - t0
        return results

    def track(self, frame, dets: Detections) -> None:
        t0 = time.perf_counter()
        cut = self.cuts(frame.rgb)
        if cut:
            self.cut_before.add(len(self.raw_frames))
        tracked = self.tracker.update(dets, cut=cut)
        rles = [encode_mask(m) for m in tracked.masks] if tracked.masks is not None else []
        for i, tid in enumerate(tracked.track_ids):
            self._sighting(int(tid), frame, tracked, i)
        light = Detections(tracked.xyxy, tracked.scores, tracked.class_ids, self.class_names,
                           track_ids=tracked.track_ids)
        self.raw_frames.append(FrameResult(frame.index, frame.source_index, frame.time, light, rles))
        self.timings["tracking"] += time.perf_counter() - t0

    def _sighting(self, tid: int, frame, tracked: Detections, i: int) -> None:
        st = self.stats.setdefault(tid, _TrackStats(frame.time, frame.time))
        st.last_s, st.hits = frame.time, st.hits + 1
        st.votes[tracked.labels[i]] += 1
        if tracked.scores[i] > st.best_score:
            mask = tracked.masks[i] if tracked.masks is not None else None
            st.best_score, st.best_time_s = float(tracked.scores[i]), frame.time
            st.best_box = tracked.xyxy[i].copy()
            st.best_crop, st.best_crop_mask = _crop(frame.rgb, mask, tracked.xyxy[i])
            vector = tracked.embeddings[i] if tracked.embeddings is not None else None
            st.best_embedding = vector if vector is not None and np.isfinite(vector).all() else None

    def settings(self, min_hits: int, min_track_score: float, batch_size: int) -> dict[str, Any]:
        cfg = self.cfg
        return {"min_hits": min_hits, "min_track_score": min_track_score, "batch_size": batch_size,
                "high_score": cfg.high_score, "low_score": cfg.low_score, "match_iou": cfg.match_iou,
                "lost_buffer": cfg.lost_buffer, "shot_cuts": self.cuts.count if cfg.cut_distance is not None else None,
                "reid_similarity": cfg.reid_similarity if cfg.cut_distance is not None else None}


def _summarise(raw_frames: list[FrameResult], stats: dict[int, _TrackStats], class_names: tuple[str, ...],
               min_hits: int, min_track_score: float) -> tuple[list[FrameResult], list[TrackSummary]]:
    """The describe stage: drop flicker tracks (fewer than `min_hits` sightings, or none scoring
    `min_track_score`), number the rest 1.. in order of first appearance, give every sighting its track's
    majority class, and sum each track up with the colour of its best view. -> (frames, tracks)."""
    kept = sorted((tid for tid, st in stats.items() if st.hits >= min_hits and st.best_score >= min_track_score),
                  key=lambda t: (stats[t].first_s, t))
    new_id = {old: new for new, old in enumerate(kept, start=1)}
    frames: list[FrameResult] = []
    # A garment the model called by two classes in turn is one track: every sighting takes its majority class.
    majority = {old: class_names.index(stats[old].votes.most_common(1)[0][0]) + 1 for old in kept}
    for fr in raw_frames:
        keep = np.array([int(t) in new_id for t in fr.detections.track_ids], dtype=bool)
        d = fr.detections[keep]
        d.class_ids = np.array([majority[int(t)] for t in d.track_ids], dtype=np.int64)
        d.track_ids = np.array([new_id[int(t)] for t in d.track_ids], dtype=np.int64)
        frames.append(FrameResult(fr.index, fr.source_index, fr.time_s, d,
                                  [r for r, k in zip(fr.mask_rles, keep, strict=True) if k] if fr.mask_rles else []))
    tracks = []
    for old in kept:
        st = stats[old]
        label = st.votes.most_common(1)[0][0]
        colour = (dominant_colour(st.best_crop, st.best_crop_mask) if st.best_crop_mask is not None
                  else dominant_colour(st.best_crop, np.ones(st.best_crop.shape[:2], dtype=bool)))
        tracks.append(TrackSummary(new_id[old], label, dict(st.votes), st.first_s, st.last_s, st.hits,
                                   st.best_score, st.best_time_s, [round(float(v), 1) for v in st.best_box],
                                   colour, st.best_crop, st.best_embedding))
    return frames, tracks
