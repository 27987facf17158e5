"""Video counting against ground truth: does each garment in a clip become exactly one track?

    python bench/eval_tracking.py [--half a|b|all] [--shot-s 3] [--seed 0] [--sweep] [--compare]

There is no labelled street video here, so the clip is made from labelled CCP photos of the model's
validation split: one shot per photo, SHOT_S seconds at 5 fps, the camera drifting and zooming across
the photo (each frame a moving crop with brightness and blur jitter), hard cuts between shots, encoded
with H.264 like an upload. Each frame's ground truth is the photo's garment masks, cropped like the
frame. The clip goes through the real engine (closetai.analysis.video.analyse_video, default settings);
each kept track is then matched to the ground truth frame by frame (box IoU >= 0.5, one-to-one per
frame) and belongs to the garment that most of its frames matched (none: a false track).

  garments      ground-truth garments well in view (>= 40 % of their area) in >= 3 analysed frames
  counted once  garments with exactly one track (the goal)
  found         garments with at least one track
  duplicates    extra tracks of a garment that already has one (the same coat counted twice)
  false         tracks that are no garment; tracks of a garment barely in view count as neither
  right class   tracks whose label is their garment's class

A still photo panned is easier than a street clip (nobody turns round, no motion blur from walking), so
these are the optimistic end; what they are for is comparing tracker settings and test-time changes on
the same frames. --revisit gives every photo a second shot later on (the same outfit again, as reels
cut back to it, a minute or two later), which the tracker should recognise by appearance. --sweep
replays the recorded detections through other tracker settings (no second detector pass); --compare
also runs the detector without its test-time changes (closetai.vision.model).
--half a / b: the even / odd photos of the validation split (tune on one, report on the other).

    python bench/eval_tracking.py --cut-cases [CLIP...] [--photos 10] [--split val|train] [--seed 0]

--cut-cases needs no detector: shot-cut detection (closetai.analysis.track.ShotCuts) alone, on camera
motion made from labelled CCP photos that must not cut (a pan of 30-60 % of the frame width per analysed
frame, a whip pan with motion blur, zooms of x1.3-1.5, a tilt with a roll, a walker stepping into shade)
and on hard cuts that must (to a random other photo; to the photo nearest in colour), each written as
H.264 and read back at the analysis rate like an upload; then the real clips (default: the ones in
../shared/data/videos).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FPS = 5
FRAME_W, FRAME_H = 480, 720
MIN_VISIBLE = 0.4  # share of a garment's pixels in view for a frame to count it as "in view"
MIN_FRAMES = 3  # the engine's min_hits: a garment in view for fewer analysed frames is not expected
MATCH_IOU = 0.5


@dataclasses.dataclass
class Truth:
    """Ground truth of the clip: per analysed frame, the garments in it."""

    labels: dict[str, str]  # garment key "photo/index" -> class
    frames: list[list[tuple[str, np.ndarray, float]]]  # per frame: (key, xyxy box, share of its area in view)

    def expected(self) -> set[str]:
        counts = Counter(k for frame in self.frames for k, _box, share in frame if share >= MIN_VISIBLE)
        return {k for k, n in counts.items() if n >= MIN_FRAMES}


def make_clip(ccp: Path, files: list[str], out: Path, shot_s: float, seed: int, revisit: bool = False) -> Truth:
    """Write the clip (one moving-camera shot per photo) to `out`; -> its ground truth. revisit: then
    every photo once more, in another order, with another camera path, mirrored half the time (the same
    outfit in a later shot, as fashion reels cut back to it): its garments should keep their tracks."""
    from closetai.media.video import H264Writer
    from closetai.training.data.ccp import CCPDataset

    ds = CCPDataset(ccp, ids=[Path(f).stem for f in files])
    rng = np.random.default_rng(seed)
    n = max(MIN_FRAMES, round(shot_s * FPS))
    labels: dict[str, str] = {}
    truth_frames: list = []
    shots = list(range(len(ds))) + (rng.permutation(len(ds)).tolist() if revisit else [])
    with H264Writer(out, fps=FPS, crf=23, preset="veryfast") as writer:
        for shot, i in enumerate(shots):
            rgb, target = ds[i]
            mirror = shot >= len(ds) and rng.random() < 0.5
            masks = [m.numpy().astype(bool) if hasattr(m, "numpy") else np.asarray(m, bool) for m in target["masks"]]
            keys = [f"{ds.ids[i]}/{j}" for j in range(len(masks))]
            labels.update({k: ds.classes[int(c) - 1] for k, c in zip(keys, target["labels"], strict=True)})
            areas = [max(int(m.sum()), 1) for m in masks]
            h, w = rgb.shape[:2]
            # Crop windows with the frame's aspect ratio, 75-95 % of the photo's height, drifting from
            # one random place and zoom to another over the shot.
            ends = []
            for _ in range(2):
                ch = rng.uniform(0.75, 0.95) * min(h, w * FRAME_H / FRAME_W)
                cw = ch * FRAME_W / FRAME_H
                ends.append((rng.uniform(0, w - cw), rng.uniform(0, h - ch), cw, ch))
            gains = rng.uniform(0.85, 1.15, size=2)  # exposure drifts over the shot too
            for t in np.linspace(0, 1, n):
                x, y, cw, ch = (a + (b - a) * t for a, b in zip(*ends, strict=True))
                sx, sy = FRAME_W / cw, FRAME_H / ch
                affine = np.float32([[sx, 0, -x * sx], [0, sy, -y * sy]])
                if mirror:
                    affine = np.float32([[-sx, 0, FRAME_W + x * sx], [0, sy, -y * sy]])
                frame = cv2.warpAffine(rgb, affine, (FRAME_W, FRAME_H), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REFLECT)
                gain = gains[0] + (gains[1] - gains[0]) * t
                frame = np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)
                if rng.random() < 0.3:
                    frame = cv2.GaussianBlur(frame, (0, 0), rng.uniform(0.5, 1.5))
                writer.write(frame)
                in_view = []
                for key, m, area in zip(keys, masks, areas, strict=True):
                    cut = cv2.warpAffine(m.astype(np.uint8), affine, (FRAME_W, FRAME_H), flags=cv2.INTER_NEAREST)
                    ys, xs = np.nonzero(cut)
                    if len(xs) < 50:
                        continue
                    # in the photo's pixels, so the share does not depend on the zoom
                    x0, y0 = int(np.floor(x)), int(np.floor(y))
                    share = m[y0:int(np.ceil(y + ch)), x0:int(np.ceil(x + cw))].sum() / area
                    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
                    in_view.append((key, box, float(share)))
                truth_frames.append(in_view)
    return Truth(labels, truth_frames)


def score_tracks(result, truth: Truth) -> dict:
    """Match the engine's kept tracks to the ground truth (see the module's docstring)."""
    from supervision import box_iou_batch

    votes: dict[int, Counter] = {}
    for fr in result.frames:
        d, gt = fr.detections, truth.frames[fr.source_index]
        for tid in d.track_ids:
            votes.setdefault(int(tid), Counter())
        if not len(d) or not gt:
            continue
        iou = box_iou_batch(d.xyxy, np.stack([box for _k, box, _s in gt]))
        rows, cols = linear_sum_assignment(-iou)
        for r, c in zip(rows, cols, strict=True):
            if iou[r, c] >= MATCH_IOU:
                votes[int(d.track_ids[r])][gt[c][0]] += 1
    expected = truth.expected()
    owner: dict[int, str | None] = {}
    for track in result.tracks:
        top = votes.get(track.track_id, Counter()).most_common(1)
        owner[track.track_id] = top[0][0] if top and top[0][1] * 2 >= track.frames_seen else None
    per_garment = Counter(k for k in owner.values() if k is not None)
    labels = {t.track_id: t.label for t in result.tracks}
    owned = [tid for tid, k in owner.items() if k is not None]
    return {
        "garments": len(expected), "tracks": len(result.tracks),
        "counted_once": sum(per_garment[k] == 1 for k in expected) / max(len(expected), 1),
        "found": sum(per_garment[k] >= 1 for k in expected) / max(len(expected), 1),
        "duplicates": sum(max(n - 1, 0) for n in per_garment.values()),
        "false": sum(k is None for k in owner.values()),
        "right_class": sum(labels[t] == truth.labels[owner[t]] for t in owned) / max(len(owned), 1),
        "found_by_class": {c: [sum(per_garment[k] >= 1 for k in expected if truth.labels[k] == c),
                               sum(truth.labels[k] == c for k in expected)]
                           for c in sorted({truth.labels[k] for k in expected})},
        "false_by_label": dict(sorted(Counter(labels[t] for t, k in owner.items() if k is None).items())),
    }


class Replay:
    """A predictor stand-in: the first pass records the real predictor's detections (masks dropped,
    embeddings kept for re-identification), later passes hand them back in the same order, so tracker
    settings can be compared on identical detections."""

    def __init__(self, predictor):
        self.predictor, self.recorded, self.cursor = predictor, [], None
        self.min_score = predictor.min_score
        self.class_names, self.info, self.device = predictor.class_names, predictor.info, predictor.device

    def predict_batch(self, frames, min_score=None, embed_min_score=None):
        if self.cursor is None:
            out = self.predictor.predict_batch(frames, min_score=min_score)
            for d in out:
                d.masks = None
            self.recorded += out
            return out
        out = [d[d.scores >= min_score] for d in self.recorded[self.cursor:self.cursor + len(frames)]]
        self.cursor += len(frames)
        return out

    def replay(self) -> Replay:
        self.cursor = 0
        return self


SWEEP = [  # (name, high score = the photo threshold, min_hits, closetai.analysis.track.TrackerConfig changes[,
    #          other analyse_video arguments])
    ("no class change", 0.5, 3, {"cross_class_iou": None}),  # before issue 18.2: a track kept its first class
    ("class change 0.7", 0.5, 3, {"cross_class_iou": 0.7}),
    ("class change 0.3", 0.5, 3, {"cross_class_iou": 0.3}),
    ("2 classes, 1 box 0.8", 0.5, 3, {"cross_class_nms_iou": 0.8}),
    ("2 classes, 1 box 0.9", 0.5, 3, {"cross_class_nms_iou": 0.9}),
    ("best score >= 0.7", 0.5, 3, {}, {"min_track_score": 0.7}),
    ("best score >= 0.8", 0.5, 3, {}, {"min_track_score": 0.8}),
    ("min_hits 4", 0.5, 4, {}),
    ("min_hits 5", 0.5, 5, {}),
    ("no cut detection", 0.5, 3, {"cut_distance": None}),
    ("no re-id", 0.5, 3, {"reid_similarity": None}),
    ("re-id at 0.9", 0.5, 3, {"reid_similarity": 0.9}),
    ("re-id at 0.97", 0.5, 3, {"reid_similarity": 0.97}),
    ("re-id within 30 s", 0.5, 3, {"reid_buffer": 150}),
    ("new track 0.5", 0.5, 3, {"new_track_score": 0.5}),
    ("new track 0.7", 0.5, 3, {"new_track_score": 0.7}),
    ("high 0.4, new 0.5", 0.4, 3, {"new_track_score": 0.5}),
    ("min_hits 2", 0.5, 2, {}),
]


def run(predictor, clip: Path, truth: Truth, sweep: bool) -> list[tuple[str, dict]]:
    from closetai.analysis.track import TrackerConfig
    from closetai.analysis.video import analyse_video

    replay = Replay(predictor)
    rows = [("defaults", score_tracks(analyse_video(replay, clip), truth))]
    for name, high, hits, changes, *more in SWEEP if sweep else []:
        replay.min_score = high
        result = analyse_video(replay.replay(), clip, tracker=TrackerConfig(**changes), min_hits=hits,
                               **(more[0] if more else {}))
        rows.append((name, score_tracks(result, truth)))
    return rows


def print_cuts(clips: list[str], predictor) -> None:
    """Each clip's ShotCuts distances at the default analysis rate (the largest ones, with times), and the
    tracks the engine keeps with and without cut detection (no ground truth: what changes)."""
    from closetai.analysis.track import ShotCuts, TrackerConfig
    from closetai.analysis.video import analyse_video
    from closetai.media.video import iter_frames

    threshold = TrackerConfig().cut_distance
    for clip in clips:
        cuts = ShotCuts(threshold)
        found = [(cuts.distance(f.rgb), f.time) for f in iter_frames(clip)]
        found = sorted(((d, t) for d, t in found if d is not None), reverse=True)
        above = sum(d > threshold for d, _t in found)
        print(f"{clip}: {len(found) + 1} sampled frames, {above} cuts (distance > {threshold}); largest distances:")
        print("  " + ", ".join(f"{d:.2f} at {t:.1f} s" for d, t in found[:above + 6]))
        replay = Replay(predictor)
        for name, cfg in (("with cut detection", TrackerConfig()), ("with cuts, no re-id",
                          TrackerConfig(reid_similarity=None)), ("without", TrackerConfig(cut_distance=None))):
            tracks = analyse_video(replay, clip, tracker=cfg).tracks
            replay.replay()
            print(f"  tracks {name}: {len(tracks)} ("
                  + ", ".join(f"{n} {c}" for c, n in sorted(Counter(t.label for t in tracks).items())) + ")")


# --- shot-cut cases: camera motion that must not cut, and real cuts that must ------------------------

CUT_CASES = ("pan", "whip pan", "zoom in", "zoom out", "tilt+roll", "into shade", "cut", "similar cut")


def _window(rgb: np.ndarray, cx: float, cy: float, ch: float, angle: float = 0.0) -> np.ndarray:
    """The frame a camera sees: a window of the frame's aspect ratio, ch photo pixels tall, centred on
    (cx, cy) and rolled by `angle` degrees, scaled to FRAME_W x FRAME_H (beyond the photo: reflected)."""
    s = FRAME_H / ch
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), angle, s)
    m[:, 2] += (FRAME_W / 2 - cx, FRAME_H / 2 - cy)
    return cv2.warpAffine(rgb, m, (FRAME_W, FRAME_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _motion_blur(frame: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Blur along (dx, dy) frame pixels: what the shutter smears during a whip pan."""
    n = max(3, int(round(np.hypot(dx, dy))) | 1)
    k = np.zeros((n, n), np.float32)
    c = n // 2
    cv2.line(k, (int(round(c - dx / 2)), int(round(c - dy / 2))), (int(round(c + dx / 2)), int(round(c + dy / 2))), 1.0)
    return cv2.filter2D(frame, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)


def cut_case_frames(case: str, rgb: np.ndarray, other: np.ndarray | None, rng) -> tuple[list[np.ndarray], list[bool]]:
    """One sequence of a case: (frames at the analysis rate, for each transition whether it is a cut).
    Steps per sampled frame (0.2 s): pan 30-60 % of the frame's width (whip pan 60-90 % and blurred
    over half of it), zoom x1.3-1.5, tilt 30-50 % of the height with a 8-15 degree roll, shade: the
    exposure x0.45-0.6 and bluer, held 2 frames, back in the sun overexposed x1.2, settling."""
    h, w = rgb.shape[:2]
    full = min(h, w * FRAME_H / FRAME_W)  # the tallest window that fits the photo
    frames: list[np.ndarray] = []
    if case in ("pan", "whip pan"):
        ch = rng.uniform(0.45, 0.6) * full
        cw = ch * FRAME_W / FRAME_H
        lo, hi = cw / 2, w - cw / 2
        step = rng.uniform(*((0.3, 0.6) if case == "pan" else (0.6, 0.9))) * cw
        cy = rng.uniform(ch / 2, h - ch / 2)
        xs, x, direction = [], lo, 1
        for _ in range(7):  # across the photo and back (a still photo is only so wide)
            xs.append(x)
            if not lo <= x + direction * step <= hi:
                direction = -direction
            x = float(np.clip(x + direction * step, lo, hi))
        for i, x in enumerate(xs):
            f = _window(rgb, x, cy, ch)
            if case == "whip pan" and i:
                f = _motion_blur(f, 0.5 * (x - xs[i - 1]) * FRAME_W / cw, 0.0)
            frames.append(f)
    elif case in ("zoom in", "zoom out"):
        cx, cy = rng.uniform(0.4, 0.6) * w, rng.uniform(0.35, 0.65) * h
        heights = [full]
        while len(heights) < 5:
            heights.append(heights[-1] / rng.uniform(1.3, 1.5))
        heights = heights if case == "zoom in" else heights[::-1]
        frames = [_window(rgb, cx, cy, ch) for ch in heights]
    elif case == "tilt+roll":
        ch = rng.uniform(0.45, 0.6) * full
        cx, cy = w / 2 + rng.uniform(-0.1, 0.1) * w, ch / 2
        angle, sign = 0.0, rng.choice((-1, 1))
        for _ in range(6):
            frames.append(_window(rgb, cx, cy, ch, angle))
            cy = min(cy + rng.uniform(0.3, 0.5) * ch, h - ch / 2)
            angle += sign * rng.uniform(8, 15)
            sign = -sign if abs(angle) > 20 else sign
    elif case == "into shade":
        ch = rng.uniform(0.75, 0.95) * full
        cx, cy = w / 2, h / 2
        dark = rng.uniform(0.45, 0.6)
        gains = [1, 1, dark, dark, 1.2, 1.05, 1]  # then the camera's exposure catches up late
        for g in gains:
            cy += rng.uniform(-0.03, 0.03) * ch
            f = _window(rgb, cx, cy, ch).astype(np.float32) * g
            if g < 1:
                f *= np.float32([0.9, 1.0, 1.12])  # shade is lit by the blue sky
            frames.append(np.clip(f, 0, 255).astype(np.uint8))
    elif case in ("cut", "similar cut"):
        for photo in (rgb, other):
            ph, pw = photo.shape[:2]
            pfull = min(ph, pw * FRAME_H / FRAME_W)
            ch = rng.uniform(0.75, 0.95) * pfull
            cx, cy = pw / 2 + rng.uniform(-0.05, 0.05) * pw, ph / 2 + rng.uniform(-0.05, 0.05) * ph
            for _ in range(3):
                frames.append(_window(photo, cx, cy, ch))
                cx += rng.uniform(-0.04, 0.04) * pw
                ch *= rng.uniform(0.97, 1.03)
        return frames, [False, False, True, False, False]
    else:
        raise ValueError(f"unknown cut case: {case}")
    return frames, [False] * (len(frames) - 1)


def _photo_hist_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Whole photos' colour distance: the whole-frame test, so which photo is "nearest in colour" does not
    move when ShotCuts changes."""
    from closetai.analysis.track import ShotCuts

    cuts = ShotCuts(camera_motion=False)
    cuts.distance(a)
    return cuts.distance(b)


def run_cut_cases(photos: dict[str, np.ndarray], pool: dict[str, np.ndarray], seed: int, tmp: Path,
                  detectors: dict[str, object]) -> dict:
    """Writes each case's sequences (one per photo, in one clip per case) as H.264, reads them back at
    the analysis rate and runs each ShotCuts-like detector over them. -> per detector, per case:
    transitions, cuts expected/found, false/missed, the largest within-motion and smallest cut distance.
    The joins between one case's sequences (a cut to the next photo) are not scored."""
    from closetai.media.video import H264Writer, iter_frames

    rng = np.random.default_rng(seed)
    # the other photo of a cut: a random one; of a similar cut: the pool's photo nearest in colour
    names = list(photos)
    others: dict[str, list[np.ndarray]] = {"cut": [], "similar cut": []}
    for i, name in enumerate(names):
        others["cut"].append(photos[names[(i + 1 + int(rng.integers(len(names) - 1))) % len(names)]])
        nearest = min((f for f in pool if f != name), key=lambda f: _photo_hist_distance(photos[name], pool[f]))
        others["similar cut"].append(pool[nearest])
    out: dict = {name: {} for name in detectors}
    for case in CUT_CASES:
        clip = tmp / f"{case.replace(' ', '-').replace('+', '-')}.mp4"
        labels: list[bool | None] = []
        with H264Writer(clip, fps=FPS, crf=23, preset="veryfast") as writer:
            for i, rgb in enumerate(photos.values()):
                frames, cuts = cut_case_frames(case, rgb, others.get(case, [None] * len(photos))[i], rng)
                labels += ([None] if labels or i else []) + cuts
                for f in frames:
                    writer.write(f)
        decoded = [f.rgb for f in iter_frames(clip, fps=FPS)]
        if len(decoded) != len(labels) + 1:
            raise RuntimeError(f"{clip.name}: wrote {len(labels) + 1} frames, read back {len(decoded)}")
        for name, make in detectors.items():
            det = make()
            dist = [det.distance(f) for f in decoded][1:]
            fired = [d > det.threshold for d in dist]
            motion = [d for d, cut in zip(dist, labels, strict=True) if cut is False]
            real = [d for d, cut in zip(dist, labels, strict=True) if cut]
            out[name][case] = {
                "sequences": len(photos), "transitions": sum(c is not None for c in labels),
                "cuts_expected": sum(bool(c) for c in labels),
                "cuts_found": sum(f for f, c in zip(fired, labels, strict=True) if c is not None),
                "false_cuts": sum(f for f, c in zip(fired, labels, strict=True) if c is False),
                "missed": sum(not f for f, c in zip(fired, labels, strict=True) if c),
                "max_motion": max(motion) if motion else None, "min_cut": min(real) if real else None}
    return out


def real_clip_cuts(clip: str, make) -> dict:
    """A real clip's distances at the analysis rate: how many fire, the smallest that does and the largest
    that does not (the margin on each side of the threshold)."""
    from closetai.media.video import iter_frames

    det = make()
    dist = [d for d in (det.distance(f.rgb) for f in iter_frames(clip, fps=FPS)) if d is not None]
    fired = [d for d in dist if d > det.threshold]
    quiet = [d for d in dist if d <= det.threshold]
    return {"transitions": len(dist), "cuts_found": len(fired), "min_cut": min(fired) if fired else None,
            "max_quiet": max(quiet) if quiet else None}


def print_cut_cases(a) -> int:
    """--cut-cases: the table of camera-motion and cut cases, and the real clips' cuts."""
    from closetai.analysis.track import ShotCuts, TrackerConfig
    from closetai.media.imageio import load_rgb
    from closetai.training.data.ccp import CCPDataset
    from closetai.vision.model import read_model_file

    ccp = Path(a.ccp)
    if not (ccp / "photos").is_dir():
        print(f"closetai: needs the CCP photos ({ccp})", file=sys.stderr)
        return 2
    val = sorted(read_model_file(a.model)["metadata"].get("trained", {}).get("val_files") or [])
    if not val:
        print(f"closetai: {a.model} records no validation split", file=sys.stderr)
        return 2
    labelled = [f"{i}.jpg" for i in CCPDataset(ccp).ids]
    split = val if a.split == "val" else sorted(set(labelled) - set(val))
    rng = np.random.default_rng(a.seed)
    chosen = sorted(rng.choice(split, size=min(a.photos or 10, len(split)), replace=False).tolist())
    pool_files = sorted(rng.choice(split, size=min(60, len(split)), replace=False).tolist())
    pool_files = sorted(set(pool_files) | set(chosen))
    started = time.perf_counter()
    pool = {f: load_rgb(ccp / "photos" / f)[0] for f in pool_files}
    threshold = TrackerConfig().cut_distance
    detectors = {"ShotCuts (whole frames, before issue 18.2)": lambda: ShotCuts(threshold, camera_motion=False),
                 "ShotCuts (camera-motion windows, grey-world)": lambda: ShotCuts(threshold)}
    with tempfile.TemporaryDirectory() as tmp:
        out = run_cut_cases({f: pool[f] for f in chosen}, pool, a.seed, Path(tmp), detectors)
    print(f"{len(chosen)} {a.split} photos (seed {a.seed}; similar cuts to the nearest in colour of "
          f"{len(pool)}), {FRAME_W}x{FRAME_H} H.264 at {FPS} fps, threshold {threshold}")

    def fmt(x):
        return "-" if x is None else f"{x:.2f}"

    for name, cases in out.items():
        print(f"{name}:")
        print(f"  {'case':<13}{'seq':>4}{'trans':>6}{'expect':>7}{'found':>6}{'false':>6}{'missed':>7}"
              f"{'max motion':>11}{'min cut':>8}")
        for case, r in cases.items():
            print(f"  {case:<13}{r['sequences']:>4}{r['transitions']:>6}{r['cuts_expected']:>7}{r['cuts_found']:>6}"
                  f"{r['false_cuts']:>6}{r['missed']:>7}{fmt(r['max_motion']):>11}{fmt(r['min_cut']):>8}")
        motion = [r["max_motion"] for r in cases.values() if r["max_motion"] is not None]
        real = [r["min_cut"] for r in cases.values() if r["min_cut"] is not None]
        print(f"  all motion: {sum(r['false_cuts'] for r in cases.values())} false cuts, largest distance "
              f"{fmt(max(motion, default=None))}; real cuts: {sum(r['missed'] for r in cases.values())} missed of "
              f"{sum(r['cuts_expected'] for r in cases.values())}, smallest distance {fmt(min(real, default=None))}")
        for clip in a.cut_cases:
            if not Path(clip).is_file():
                print(f"  {clip}: not here")
                continue
            r = real_clip_cuts(clip, detectors[name])
            print(f"  {Path(clip).name}: {r['transitions'] + 1} sampled frames, {r['cuts_found']} cuts "
                  f"(smallest {fmt(r['min_cut'])}), largest distance within a shot {fmt(r['max_quiet'])}")
    print(f"({time.perf_counter() - started:.0f} s)")
    if a.json:
        Path(a.json).write_text(json.dumps({"photos": chosen, "split": a.split, "seed": a.seed, "cases": out}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(REPO / "models" / "closetai-ccp15.pt"))
    ap.add_argument("--ccp", default=str(REPO.parent / "shared" / "data" / "ccp"))
    ap.add_argument("--half", choices=("a", "b", "all"), default="all")
    ap.add_argument("--photos", type=int, help="at most this many photos (quick runs)")
    ap.add_argument("--shot-s", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep", action="store_true", help="also replay other tracker settings")
    ap.add_argument("--compare", action="store_true", help="also the detector without its test-time changes")
    ap.add_argument("--revisit", action="store_true", help="every photo gets a second shot later in the clip")
    ap.add_argument("--cuts", nargs="+", metavar="CLIP",
                    help="instead: these clips' shot-cut distances, and their tracks with and without cut detection")
    ap.add_argument("--cut-cases", nargs="*", metavar="CLIP",
                    help="instead: shot-cut detection on synthetic camera motion and cuts (no detector), "
                         "and on these real clips (default: the two in ../shared/data/videos)")
    ap.add_argument("--split", choices=("val", "train"), default="val",
                    help="--cut-cases: photos of the model's validation split, or of its training photos")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args(argv)
    if a.cut_cases is not None:
        a.cut_cases = a.cut_cases or [str(p) for p in sorted((REPO.parent / "shared" / "data" / "videos").glob("*.mp4"))]
        return print_cut_cases(a)

    import torch

    from closetai.vision.model import TEST_TIME_CHANGES
    from closetai.vision.predict import Predictor

    torch.set_num_threads(max(1, torch.get_num_threads()))
    predictor = Predictor(a.model, device="cpu")
    if a.cuts:
        print_cuts(a.cuts, predictor)
        return 0
    val = sorted(predictor.meta.get("trained", {}).get("val_files") or [])
    if not Path(a.ccp).is_dir() or not val:
        print(f"closetai: needs the CCP photos ({a.ccp}) and a model that records its validation split", file=sys.stderr)
        return 2
    files = val if a.half == "all" else val[a.half == "b"::2]
    files = files[:a.photos] if a.photos else files
    started = time.perf_counter()
    report: dict = {"photos": len(files), "half": a.half, "shot_s": a.shot_s, "seed": a.seed, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        truth = make_clip(Path(a.ccp), files, clip, a.shot_s, a.seed, a.revisit)
        print(f"{len(files)} validation photos ({a.half}), {'two' if a.revisit else 'one'} {a.shot_s:g} s "
              f"shot{'s' if a.revisit else ''} each at {FPS} fps, "
              f"{len(truth.frames)} frames; {len(truth.expected())} garments in view for >= {MIN_FRAMES} frames")
        runs = [("closetai", predictor)]
        if a.compare:
            runs.append(("torchvision test-time", Predictor(a.model, device="cpu",
                                                            overrides=dict.fromkeys(TEST_TIME_CHANGES, False))))
        print(f"{'detector':<22}{'tracker':<19}{'tracks':>7}{'once':>7}{'found':>7}{'dupl':>6}{'false':>6}{'class':>7}")
        for name, p in runs:
            rows = run(p, clip, truth, a.sweep)
            for setting, r in rows:
                print(f"{name:<22}{setting:<19}{r['tracks']:>7}{r['counted_once']:>7.3f}{r['found']:>7.3f}"
                      f"{r['duplicates']:>6}{r['false']:>6}{r['right_class']:>7.3f}", flush=True)
                report["runs"].append({"detector": name, "tracker": setting, **r})
            print("  found by class (default settings): " + ", ".join(
                f"{c} {f}/{n}" for c, (f, n) in rows[0][1]["found_by_class"].items()))
            print("  false tracks by label: " + ", ".join(f"{c} {n}" for c, n in rows[0][1]["false_by_label"].items()))
    print(f"({time.perf_counter() - started:.0f} s)")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
