"""Garment tracking across sampled video frames, ByteTrack-style and class-aware.

Why hand-written: supervision removed `sv.ByteTrack` (it moved to Roboflow's separate `trackers`
package, whose wheel pulls in `opencv-python`, which clashes with the `opencv-python-headless` this
project uses). What ByteTrack's association needs is small, so this module keeps its two ideas and
uses the libraries for the maths: supervision's `box_iou_batch` for IoU and SciPy's Hungarian solver.

ByteTrack's ideas kept:
1. high-score detections are matched to all live tracks (tracked and recently lost) first;
2. low-score detections (which a plain score threshold would drop) are then matched to the tracks
   still unmatched that were seen in the previous frame, so a garment whose score dips for a frame
   (motion blur, partial occlusion) keeps its track instead of flickering;
3. new tracks need a higher score than matches (ByteTrack's new_track_thresh);
4. a lost track is kept for `lost_buffer` frames, so a missed detection or two does not start a new
   track when the garment comes back.
Changed for garments: a track never changes class (cross-class pairs are never matched), boxes are
predicted with a damped constant-velocity model instead of a Kalman filter (at 5 fps the people in
street clips walk steadily; the filter's extra state buys little here), and a new track is not
opened on a detection that duplicates a garment of the same class already matched in this frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import supervision as sv
from scipy.optimize import linear_sum_assignment

from closetai.detections import Detections


@dataclass
class Track:
    track_id: int
    class_id: int
    box: np.ndarray  # last observed xyxy
    score: float
    first_frame: int
    last_frame: int
    hits: int = 1
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, dtype=np.float32))

    def predict(self, frame: int) -> np.ndarray:
        # Capped so a long gap does not fling the box off screen.
        gap = min(frame - self.last_frame, 3)
        return self.box + self.velocity * gap


@dataclass
class TrackerConfig:
    high_score: float = 0.5  # detections at or above start tracks and join the first round
    low_score: float = 0.1  # detections between low and high only extend existing tracks
    match_iou: float = 0.2  # first round: predicted box vs detection IoU needed to match
    low_match_iou: float = 0.4  # second round (low-score detections): stricter
    new_track_score: float | None = None  # a new track needs this score; None: high_score + 0.1 (ByteTrack)
    lost_buffer: int = 10  # sampled frames a lost track can still be resumed (2 s at 5 fps)
    duplicate_iou: float = 0.6  # a high detection this close to a same-class matched track is a duplicate
    nms_ios: float = 0.7  # same-class boxes mostly inside one another are one garment (see update)
    class_aware: bool = True


class GarmentTracker:
    """`update(detections)` once per sampled frame, in order -> the detections that belong to a track,
    with `track_ids` set. Track ids are positive, increasing, never reused."""

    def __init__(self, config: TrackerConfig | None = None, **overrides):
        cfg = config or TrackerConfig()
        for key, value in overrides.items():
            if not hasattr(cfg, key):
                raise TypeError(f"unknown tracker setting {key!r}")
            setattr(cfg, key, value)
        self.config = cfg
        self.tracks: list[Track] = []
        self.frame = -1
        self._next_id = 1

    def reset(self) -> None:
        self.tracks, self.frame, self._next_id = [], -1, 1

    def _iou(self, tracks: list[Track], dets: Detections, det_idx: np.ndarray) -> np.ndarray:
        if not tracks or not len(det_idx):
            return np.zeros((len(tracks), len(det_idx)), dtype=np.float32)
        predicted = np.stack([t.predict(self.frame) for t in tracks])
        iou = sv.box_iou_batch(predicted, dets.xyxy[det_idx])
        if self.config.class_aware:
            same = np.array([t.class_id for t in tracks])[:, None] == dets.class_ids[det_idx][None, :]
            iou = np.where(same, iou, 0.0)
        return iou

    @staticmethod
    def _assign(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
        if iou.size == 0:
            return []
        rows, cols = linear_sum_assignment(-iou)
        return [(r, c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]

    def _extend(self, track: Track, dets: Detections, i: int) -> None:
        box = dets.xyxy[i]
        gap = max(self.frame - track.last_frame, 1)
        track.velocity = 0.5 * track.velocity + 0.5 * (box - track.box) / gap
        track.box, track.score, track.last_frame = box.copy(), float(dets.scores[i]), self.frame
        track.hits += 1

    def update(self, detections: Detections) -> Detections:
        cfg = self.config
        self.frame += 1
        self.tracks = [t for t in self.tracks if self.frame - t.last_frame <= cfg.lost_buffer + 1]
        dets = detections[detections.scores >= cfg.low_score]
        if len(dets) > 1 and cfg.nms_ios < 1:
            # The model's own NMS is per class at IoU 0.5; it keeps a garment's partial duplicates
            # (a bag and its flap, a dress and its skirt part) that are nested, not equal. Intersection
            # over the smaller box catches those, and two real garments of one class (two shoes, two
            # people's bags) are side by side, not nested.
            predictions = np.column_stack([dets.xyxy, dets.scores, dets.class_ids])
            dets = dets[sv.box_non_max_suppression(predictions, cfg.nms_ios, sv.OverlapMetric.IOS)]
        high = np.flatnonzero(dets.scores >= cfg.high_score)
        low = np.flatnonzero(dets.scores < cfg.high_score)
        det_track = np.zeros(len(dets), dtype=np.int64)  # 0 = no track

        # Round 1: high-score detections against every live track (tracked or lost).
        pool = list(self.tracks)
        matched_tracks: set[int] = set()
        for r, c in self._assign(self._iou(pool, dets, high), cfg.match_iou):
            self._extend(pool[r], dets, high[c])
            det_track[high[c]] = pool[r].track_id
            matched_tracks.add(pool[r].track_id)

        # Round 2: low-score detections only against tracks seen in the previous frame.
        recent = [t for t in self.tracks if t.track_id not in matched_tracks and t.last_frame == self.frame - 1]
        for r, c in self._assign(self._iou(recent, dets, low), cfg.low_match_iou):
            self._extend(recent[r], dets, low[c])
            det_track[low[c]] = recent[r].track_id
            matched_tracks.add(recent[r].track_id)

        # New tracks from unmatched high-score detections that do not duplicate a matched garment.
        matched_now = [t for t in self.tracks if t.track_id in matched_tracks]
        new_score = cfg.high_score + 0.1 if cfg.new_track_score is None else cfg.new_track_score
        for i in high[det_track[high] == 0]:
            if dets.scores[i] < new_score:
                continue
            if matched_now:
                overlap = self._iou(matched_now, dets, np.array([i]))[:, 0]
                # _iou predicts from frame - last_frame = 0 here, i.e. the box just matched
                if overlap.max() >= cfg.duplicate_iou:
                    continue
            track = Track(self._next_id, int(dets.class_ids[i]), dets.xyxy[i].copy(), float(dets.scores[i]),
                          self.frame, self.frame)
            self._next_id += 1
            self.tracks.append(track)
            matched_now.append(track)
            det_track[i] = track.track_id

        keep = det_track > 0
        out = dets[keep]
        out.track_ids = det_track[keep]
        return out
