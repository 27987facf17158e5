"""COCO box and mask AP (pycocotools), overall and per class.

Follows detectron2's evaluator shape: build GT once, feed predictions per image, then summarise.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from closetai.detections import Detections, encode_mask


class CocoEvaluator:
    def __init__(self, classes: tuple[str, ...]):
        self.classes = tuple(classes)
        self.reset()

    def reset(self) -> None:
        self.images: list[dict] = []
        self.gt: list[dict] = []
        self.dt: list[dict] = []

    def process(self, image_id: int, height: int, width: int, target: dict, detections: Detections) -> None:
        """target: reader dict (masks (N,H,W), labels). detections at the same resolution."""
        self.images.append({"id": image_id, "height": height, "width": width})
        for m, label, box in zip(target["masks"], target["labels"], target["boxes"], strict=True):
            rle = encode_mask(m)
            x1, y1, x2, y2 = (float(v) for v in box)
            self.gt.append({"id": len(self.gt) + 1, "image_id": image_id, "category_id": int(label),
                            "segmentation": rle, "area": float(np.asarray(m, bool).sum()),
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0})
        rles = detections.mask_rles()
        for i in range(len(detections)):
            x1, y1, x2, y2 = (float(v) for v in detections.xyxy[i])
            item = {"image_id": image_id, "category_id": int(detections.class_ids[i]),
                    "score": float(detections.scores[i]), "bbox": [x1, y1, x2 - x1, y2 - y1]}
            if rles:
                item["segmentation"] = rles[i]
            self.dt.append(item)

    def evaluate(self) -> dict[str, Any]:
        """-> {"box": {...}, "mask": {...}} each with AP, AP50, AP75, APs/m/l and per_class AP."""
        gt = COCO()
        gt.dataset = {"images": self.images, "annotations": self.gt,
                      "categories": [{"id": i + 1, "name": n} for i, n in enumerate(self.classes)]}
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
        results: dict[str, Any] = {"images": len(self.images), "instances": len(self.gt)}
        for iou_type, key in (("bbox", "box"), ("segm", "mask")):
            dts = [d for d in self.dt if iou_type == "bbox" or "segmentation" in d]
            if not dts:
                results[key] = {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "per_class": {}}
                continue
            with contextlib.redirect_stdout(io.StringIO()):
                dt = gt.loadRes([dict(d) for d in dts])
                ev = COCOeval(gt, dt, iou_type)
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
            s = ev.stats
            per_class = {}
            precision = ev.eval["precision"]  # [T, R, K, A, M]
            for k, cat_id in enumerate(ev.params.catIds):
                p = precision[:, :, k, 0, -1]
                p = p[p > -1]
                if p.size:
                    per_class[self.classes[cat_id - 1]] = round(float(p.mean()), 4)
            results[key] = {"AP": round(float(s[0]), 4), "AP50": round(float(s[1]), 4),
                            "AP75": round(float(s[2]), 4), "APs": round(float(s[3]), 4),
                            "APm": round(float(s[4]), 4), "APl": round(float(s[5]), 4), "per_class": per_class}
        return results


def evaluate_predictor(predict, dataset, limit: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Run `predict(rgb) -> Detections` over a reader and score it. Class lists must agree."""
    classes = tuple(dataset.classes)
    evaluator = CocoEvaluator(classes)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    for i in tqdm(range(n), desc="evaluate", unit="img", disable=not progress):
        rgb, target = dataset[i]
        dets = predict(rgb)
        evaluator.process(i + 1, rgb.shape[0], rgb.shape[1], target, dets)
    return evaluator.evaluate()


def write_json_atomic(obj: Any, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)
