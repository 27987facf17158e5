"""What a user sees at a score threshold: precision and recall of the shown garments, with ClosetAI's
test-time changes to torchvision's Mask R-CNN (closetai.vision.model.TEST_TIME_CHANGES: mask scoring, aligned
mask pasting, antialiased shrinking) and without them, on the model's CCP validation split.

    python bench/eval_threshold.py [--thresholds 0.3 0.4 0.5 0.6] [--limit N]

A shown detection is right when its mask overlaps a not yet matched ground-truth garment of the same
class by IoU >= 0.5 (greedy, in score order, as COCO matches); recall is over all ground-truth garments.
Serving's cross-class suppression (IoU 0.6) is on, as in the app. AP figures: `closetai evaluate`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from closetai.training.data import open_dataset  # noqa: E402
from closetai.vision.detections import encode_mask  # noqa: E402
from closetai.vision.model import TEST_TIME_CHANGES  # noqa: E402
from closetai.vision.predict import Predictor  # noqa: E402

SHARED_CCP = REPO.parent / "shared" / "data" / "ccp"


def count_matches(predictor: Predictor, dataset, thresholds: list[float]) -> tuple[dict, dict, int]:
    """-> (detections shown, right ones) per threshold, and the number of ground-truth garments."""
    shown = dict.fromkeys(thresholds, 0)
    right = dict.fromkeys(thresholds, 0)
    n_gt = 0
    for i in range(len(dataset)):
        rgb, target = dataset[i]
        dets = predictor(rgb, min_score=min(thresholds))
        gt, dt = [encode_mask(np.asarray(m)) for m in target["masks"]], dets.mask_rles()
        gt_labels = np.asarray(target["labels"])
        n_gt += len(gt)
        iou = np.asarray(mask_utils.iou(dt, gt, [0] * len(gt))).reshape(len(dt), len(gt)) if dt and gt \
            else np.zeros((len(dt), len(gt)))
        iou[:, :] *= dets.class_ids[:, None] == gt_labels[None, :]  # same class only
        for t in thresholds:
            free = np.ones(len(gt), dtype=bool)
            for k in np.flatnonzero(dets.scores >= t):  # Detections are in score order
                shown[t] += 1
                candidates = np.where(free, iou[k], 0.0)
                if len(gt) and candidates.max() >= 0.5:
                    free[candidates.argmax()] = False
                    right[t] += 1
    return shown, right, n_gt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", default=str(SHARED_CCP))
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.4, 0.45, 0.5, 0.55, 0.6])
    ap.add_argument("--limit", type=int)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"{'postprocess':>12s} {'threshold':>9s} {'shown':>6s} {'right':>6s} {'precision':>9s} {'recall':>7s} {'F1':>6s}")
    for name, overrides in (("closetai", None), ("torchvision", dict.fromkeys(TEST_TIME_CHANGES, False))):
        predictor = Predictor(a.model, device="cpu", embed=False, overrides=overrides)
        dataset = open_dataset(a.data)
        stems = {Path(f).stem for f in predictor.meta["trained"]["val_files"]}
        dataset.ids = [i for i in dataset.ids if Path(str(i)).stem in stems][: a.limit]
        shown, right, n_gt = count_matches(predictor, dataset, sorted(a.thresholds))
        for t in sorted(a.thresholds):
            p, r = right[t] / max(shown[t], 1), right[t] / max(n_gt, 1)
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            print(f"{name:>12s} {t:9.2f} {shown[t]:6d} {right[t]:6d} {p:9.3f} {r:7.3f} {f1:6.3f}",
                  flush=True)
    print(f"({len(dataset)} validation photos, {n_gt} garments)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
