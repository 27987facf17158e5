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
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args(argv)

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
