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
Changed for garments: a track prefers its own class, but the model often calls one garment by two
neighbouring classes in turn (a waistcoat "outerwear" then "dress", a two-piece "dress" then "top"), so
a detection of another class continues a track when its box overlaps the track's closely
(`cross_class_iou`), and the track's class is the majority of its detections' (`Track.votes`); boxes are
predicted with a damped constant-velocity model instead of a Kalman filter (at 5 fps the people in
street clips walk steadily; the filter's extra state buys little here), and a new track is not
opened on a detection that duplicates a garment of the same class already matched in this frame.

Shot cuts (street-fashion clips are mostly edited reels): across a cut a box's position says nothing,
and matching by IoU merged different people's dresses that happened to stand in the same place
(bench/eval_tracking.py). So `update(..., cut=True)` (ShotCuts, below, tells) ends position matching for
every track. A garment after the cut can continue a track from before it only by appearance: same
class and cosine >= reid_similarity between its embedding (closetai.vision.embed, computed for the
similar-items index anyway) and the track's mean embedding, one-to-one, from any earlier shot of the
clip. At a lower cosine (0.8) the similar-items vectors merge different people's garments of a class;
at a very high one (0.98) they rejoin few; bench/eval_tracking.py --revisit --sweep measures both ways.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import supervision as sv
from scipy.optimize import linear_sum_assignment

from closetai.vision.detections import Detections


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
    shot: int = 0  # the shot (between cuts) it was last seen in
    appearance: np.ndarray | None = None  # sum of its high-score detections' embeddings (direction = mean)
    votes: dict[int, int] = field(default_factory=dict)  # class id -> detections; class_id is the majority

    def vote(self, class_id: int) -> None:
        self.votes[class_id] = self.votes.get(class_id, 0) + 1
        # ties keep the current class: a track changes class only when another one is seen more often
        if self.votes[class_id] > self.votes.get(self.class_id, 0):
            self.class_id = class_id

    def add_appearance(self, vector: np.ndarray | None) -> None:
        if vector is not None and np.isfinite(vector).all():
            self.appearance = vector.astype(np.float32) if self.appearance is None else self.appearance + vector

    def predict(self, frame: int) -> np.ndarray:
        # Capped so a long gap does not fling the box off screen.
        gap = min(frame - self.last_frame, 3)
        return self.box + self.velocity * gap


REID_SIMILARITY = 0.94
CROSS_CLASS_WEIGHT = 0.5  # what a cross-class pair's IoU counts for in matching (TrackerConfig.cross_class_iou)


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
    # A detection of another class continues a track only at this box IoU (None: never); such pairs count
    # half their IoU in the assignment, so a same-class detection of the track always wins.
    cross_class_iou: float | None = 0.5
    # Two detections of different classes on (nearly) the same box in one frame: one garment the model
    # could not decide on; the higher score is kept. None: both are kept (bench/eval_tracking.py --sweep).
    cross_class_nms_iou: float | None = None
    cut_distance: float | None = 0.4  # ShotCuts threshold (HSV histogram distance); None: never cut
    # After a cut: the embedding cosine a garment needs to continue a track from an earlier shot (same
    # class only); None: never. Chosen on the even validation photos with every outfit shown twice
    # (bench/eval_tracking.py --half a --revisit --sweep); see the module docstring for what it costs.
    reid_similarity: float | None = REID_SIMILARITY
    # Sampled frames after which a track from an earlier shot can no longer be continued; None: the whole
    # clip. Reels cut back to an outfit minutes later, and a 30 s memory rejoined almost none.
    reid_buffer: int | None = None


def tracker_config(shot_cuts: bool = True, reid: bool = True) -> TrackerConfig:
    """The defaults with the two user switches (web VIDEO_SHOT_CUTS / VIDEO_REID, CLI --no-cuts /
    --no-reid): without cut detection there is no re-identification either (nothing ends a track)."""
    cfg = TrackerConfig()
    if not shot_cuts:
        cfg.cut_distance = None
    if not reid:
        cfg.reid_similarity = None
    return cfg


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
        self.shot = 0
        self._next_id = 1

    def reset(self) -> None:
        self.tracks, self.frame, self.shot, self._next_id = [], -1, 0, 1

    def _iou(self, tracks: list[Track], dets: Detections, det_idx: np.ndarray) -> np.ndarray:
        if not tracks or not len(det_idx):
            return np.zeros((len(tracks), len(det_idx)), dtype=np.float32)
        predicted = np.stack([t.predict(self.frame) for t in tracks])
        iou = sv.box_iou_batch(predicted, dets.xyxy[det_idx])
        if self.config.class_aware:
            same = np.array([t.class_id for t in tracks])[:, None] == dets.class_ids[det_idx][None, :]
            cross = self.config.cross_class_iou
            other = 0.0 if cross is None else np.where(iou >= cross, CROSS_CLASS_WEIGHT * iou, 0.0)
            iou = np.where(same, iou, other)
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
        track.vote(int(dets.class_ids[i]))
        if dets.scores[i] >= self.config.high_score:
            track.add_appearance(self._embedding(dets, i))

    @staticmethod
    def _embedding(dets: Detections, i: int) -> np.ndarray | None:
        return None if dets.embeddings is None else dets.embeddings[i]

    def _reidentify(self, dets: Detections, candidates: np.ndarray, matched: set[int]) -> dict[int, Track]:
        """After a cut: {detection index: track from an earlier shot} by appearance (see the docstring)."""
        old = [t for t in self.tracks if t.shot < self.shot and t.appearance is not None and t.track_id not in matched]
        if self.config.reid_similarity is None or not old or dets.embeddings is None or not len(candidates):
            return {}
        vectors = dets.embeddings[candidates]
        usable = np.isfinite(vectors).all(axis=1)
        means = np.stack([t.appearance / max(np.linalg.norm(t.appearance), 1e-12) for t in old])
        sim = np.where(usable[None, :], means @ np.nan_to_num(vectors).T, 0.0)
        same = np.array([t.class_id for t in old])[:, None] == dets.class_ids[candidates][None, :]
        sim = np.where(same, sim, 0.0)
        return {int(candidates[c]): old[r] for r, c in self._assign(sim, self.config.reid_similarity)}

    def update(self, detections: Detections, cut: bool = False) -> Detections:
        """cut: a shot cut happened just before this frame (ShotCuts): positions no longer carry over."""
        cfg = self.config
        self.frame += 1
        self.shot += int(cut)
        self.tracks = [t for t in self.tracks if self.frame - t.last_frame <= cfg.lost_buffer + 1
                       or (cfg.reid_similarity is not None and t.shot < self.shot
                           and (cfg.reid_buffer is None or self.frame - t.last_frame <= cfg.reid_buffer))]
        in_shot = [t for t in self.tracks if t.shot == self.shot]
        dets = detections[detections.scores >= cfg.low_score]
        if len(dets) > 1 and cfg.nms_ios < 1:
            # The model's own NMS is per class at IoU 0.5; it keeps a garment's partial duplicates
            # (a bag and its flap, a dress and its skirt part) that are nested, not equal. Intersection
            # over the smaller box catches those, and two real garments of one class (two shoes, two
            # people's bags) are side by side, not nested.
            predictions = np.column_stack([dets.xyxy, dets.scores, dets.class_ids])
            dets = dets[sv.box_non_max_suppression(predictions, cfg.nms_ios, sv.OverlapMetric.IOS)]
        if len(dets) > 1 and cfg.cross_class_nms_iou is not None:
            predictions = np.column_stack([dets.xyxy, dets.scores])  # no class column: across classes
            dets = dets[sv.box_non_max_suppression(predictions, cfg.cross_class_nms_iou)]
        high = np.flatnonzero(dets.scores >= cfg.high_score)
        low = np.flatnonzero(dets.scores < cfg.high_score)
        det_track = np.zeros(len(dets), dtype=np.int64)  # 0 = no track

        # Round 1: high-score detections against every live track (tracked or lost) of this shot.
        pool = in_shot
        matched_tracks: set[int] = set()
        for r, c in self._assign(self._iou(pool, dets, high), cfg.match_iou):
            self._extend(pool[r], dets, high[c])
            det_track[high[c]] = pool[r].track_id
            matched_tracks.add(pool[r].track_id)

        # Round 2: low-score detections only against tracks seen in the previous frame.
        recent = [t for t in in_shot if t.track_id not in matched_tracks and t.last_frame == self.frame - 1]
        for r, c in self._assign(self._iou(recent, dets, low), cfg.low_match_iou):
            self._extend(recent[r], dets, low[c])
            det_track[low[c]] = recent[r].track_id
            matched_tracks.add(recent[r].track_id)

        # New tracks from unmatched high-score detections that do not duplicate a matched garment, unless
        # one is a garment from before a cut seen again.
        matched_now = [t for t in self.tracks if t.track_id in matched_tracks]
        new_score = cfg.high_score + 0.1 if cfg.new_track_score is None else cfg.new_track_score
        unmatched = high[det_track[high] == 0]
        seen_before = self._reidentify(dets, unmatched[dets.scores[unmatched] >= new_score], matched_tracks)
        for i in unmatched:
            if dets.scores[i] < new_score:
                continue
            if i in seen_before:
                track = seen_before[i]
                track.shot, track.velocity = self.shot, np.zeros(4, dtype=np.float32)
                track.box = dets.xyxy[i].copy()  # so _extend measures no jump across the cut
                self._extend(track, dets, i)
                matched_now.append(track)
                det_track[i] = track.track_id
                continue
            if matched_now:
                overlap = self._iou(matched_now, dets, np.array([i]))[:, 0]
                # _iou predicts from frame - last_frame = 0 here, i.e. the box just matched
                if overlap.max() >= cfg.duplicate_iou:
                    continue
            track = Track(self._next_id, int(dets.class_ids[i]), dets.xyxy[i].copy(), float(dets.scores[i]),
                          self.frame, self.frame, shot=self.shot)
            track.add_appearance(self._embedding(dets, i))
            track.vote(track.class_id)
            self._next_id += 1
            self.tracks.append(track)
            matched_now.append(track)
            det_track[i] = track.track_id

        keep = det_track > 0
        out = dets[keep]
        out.track_ids = det_track[keep]
        return out


class ShotCuts:
    """Tells shot cuts in a stream of sampled frames: call it on each frame in order; True when the frame
    starts a new shot. The test: Bhattacharyya distance between consecutive frames' HSV histograms
    (16 hues x 4 saturations x 4 values, on a 96-px-wide thumbnail) above `threshold`. A histogram,
    unlike a pixel difference, barely moves when a person walks between two frames 0.2 s apart.
    Camera motion does move it, so the distance is the smallest over the ways the camera can have moved
    (issue 18.2): the whole frames, the new frame's left 60 % (and 40 %) against the old one's right
    60 % (40 %) (a pan right; likewise left, up, down), the old frame's centre 60 % against the whole new
    one (zoom in) and the reverse (zoom out); and each of those also after grey-world balancing both
    frames (each channel scaled to the same mean), so a walker stepping into blue shade is no cut. A cut
    has no part of the old frame in the new one, so every pairing stays far. Limit: a whip pan of more
    than 60 % of the frame in 0.2 s still cuts at times (12 of 60 such steps in the benchmark).
    `python bench/eval_tracking.py --cut-cases` measures it on synthetic pans, zooms, tilts, shade and
    cuts made from CCP photos, written as H.264 (the windows and the balancing were chosen on training
    photos, `--split train`; reported on validation photos) and on the real clips (street-clip-b: 8 cuts).
    camera_motion=False: the whole-frame test alone (before issue 18.2; for the benchmark's comparison).
    Why written here: PySceneDetect does this (and more) but requires opencv-python, which clashes
    with the opencv-python-headless this project uses; the test itself is a few lines of OpenCV."""

    WIDTH = 96
    # (window of the previous frame, window of this one) for each camera move: a window keeps `share` of
    # the frame's width or height, so a pan right of up to 1 - share frame widths still overlaps
    PAN_SHARES = (0.6, 0.4)
    ZOOM_SHARE = 0.6  # the centre window: a zoom of up to x1.67
    PAIRINGS = (("all", "all"), ("centre", "all"), ("all", "centre"),
                *(pair for share in PAN_SHARES for pair in (
                    (f"right{share}", f"left{share}"), (f"left{share}", f"right{share}"),
                    (f"bottom{share}", f"top{share}"), (f"top{share}", f"bottom{share}"))))

    def __init__(self, threshold: float | None = 0.4, camera_motion: bool = True):
        self.threshold = threshold
        self.camera_motion = camera_motion
        self.count = 0
        self._previous: list[dict[str, np.ndarray]] | None = None

    def _histograms(self, hsv: np.ndarray) -> dict[str, np.ndarray]:
        import cv2

        h, w = hsv.shape[:2]
        if self.camera_motion:
            a, b = max(1, round(self.ZOOM_SHARE * h)), max(1, round(self.ZOOM_SHARE * w))
            y0, x0 = (h - a) // 2, (w - b) // 2
            windows = {"all": hsv, "centre": hsv[y0:y0 + a, x0:x0 + b]}
            for share in self.PAN_SHARES:
                a, b = max(1, round(share * h)), max(1, round(share * w))
                windows |= {f"left{share}": hsv[:, :b], f"right{share}": hsv[:, w - b:],
                            f"top{share}": hsv[:a], f"bottom{share}": hsv[h - a:]}
        else:
            windows = {"all": hsv}
        out = {}
        for name, part in windows.items():
            hist = cv2.calcHist([np.ascontiguousarray(part)], [0, 1, 2], None, [16, 4, 4], [0, 180, 0, 256, 0, 256])
            out[name] = cv2.normalize(hist, hist).flatten()
        return out

    def distance(self, rgb: np.ndarray) -> float | None:
        """The frame's distance to the previous one (None for the first), and it becomes the previous."""
        import cv2

        h, w = rgb.shape[:2]
        small = cv2.resize(np.ascontiguousarray(rgb), (self.WIDTH, max(1, round(self.WIDTH * h / w))),
                           interpolation=cv2.INTER_AREA)
        versions = [small]
        if self.camera_motion:
            balanced = small.astype(np.float32)
            balanced *= 128 / np.maximum(balanced.reshape(-1, 3).mean(axis=0), 1.0)
            versions.append(np.clip(balanced, 0, 255).astype(np.uint8))
        hists = [self._histograms(cv2.cvtColor(v, cv2.COLOR_RGB2HSV)) for v in versions]
        previous, self._previous = self._previous, hists
        if previous is None:
            return None
        pairings = self.PAIRINGS if self.camera_motion else self.PAIRINGS[:1]
        return min(float(cv2.compareHist(old[a], new[b], cv2.HISTCMP_BHATTACHARYYA))
                   for old, new in zip(previous, hists, strict=True) for a, b in pairings)

    def __call__(self, rgb: np.ndarray) -> bool:
        if self.threshold is None:
            return False
        d = self.distance(rgb)
        cut = d is not None and d > self.threshold
        self.count += int(cut)
        return cut
