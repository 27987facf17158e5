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

from closetai.vision.detections import Detections, encode_mask


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


def evaluate_predictor(predict, dataset, limit: int | None = None, progress: bool = True,
                       person_label: int | None = None) -> dict[str, Any]:
    """Run `predict(rgb) -> Detections` over a reader and score it. Class lists must agree.

    person_label: the reader's id of its `person` instances (CCPDataset(person=True)): garments are then
    scored without them and the people the predictor finds (Detections.people) apart, as "person"."""
    classes = tuple(c for i, c in enumerate(dataset.classes, 1) if i != person_label)
    evaluator, people = CocoEvaluator(classes), CocoEvaluator(("person",))
    found_people = False
    n = len(dataset) if limit is None else min(limit, len(dataset))
    for i in tqdm(range(n), desc="evaluate", unit="img", disable=not progress):
        rgb, target = dataset[i]
        dets = predict(rgb)
        evaluator.process(i + 1, rgb.shape[0], rgb.shape[1], _garments_only(target, person_label), dets)
        if person_label is not None and dets.people is not None:
            found_people = True
            people.process(i + 1, rgb.shape[0], rgb.shape[1], _people_only(target, person_label), dets.people)
    results = evaluator.evaluate()
    if found_people:
        scored = people.evaluate()
        results["person"] = {"box": scored["box"], "mask": scored["mask"]}
    return results


def _garments_only(target: dict, person_label: int | None) -> dict:
    if person_label is None:
        return target
    keep = np.asarray(target["labels"]) != person_label
    return {**target, "masks": target["masks"][keep], "labels": target["labels"][keep], "boxes": target["boxes"][keep]}


def _people_only(target: dict, person_label: int) -> dict:
    keep = np.asarray(target["labels"]) == person_label
    return {**target, "masks": target["masks"][keep], "labels": np.ones(int(keep.sum()), np.int64),
            "boxes": target["boxes"][keep]}


def evaluate_conditions(predict, conditions, names: list[str], garment_classes: tuple[str, ...],
                        limit: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Box/mask AP of `predict(rgb) -> Detections` (garments; people on .people) under each named
    condition of a closetai.training.data.conditions.ConditionSet; the garment AP leaves the person class out, the
    person AP is reported apart when the model finds people.

    -> {"conditions": {name: {"group", "about", "images", "instances", "box", "mask", "person_mask_AP"}},
        "summary": {"clean_mask_AP", "framing_mean_mask_AP", "framing_worst_ratio", "quality_ratios", ...}}
    """
    from closetai.training.data.conditions import CONDITIONS, FRAMING, QUALITY

    n = len(conditions) if limit is None else min(limit, len(conditions))
    person_label = conditions.person_label
    out: dict[str, Any] = {}
    for name in names:
        cond = CONDITIONS[name]
        garments, people = CocoEvaluator(garment_classes), CocoEvaluator(("person",))
        found_people = False
        for i in tqdm(range(n), desc=name, unit="img", disable=not progress, leave=False):
            sample = conditions.render(name, i)
            target = sample.to_target()
            dets = predict(sample.rgb)
            garments.process(i + 1, sample.height, sample.width, _garments_only(target, person_label), dets)
            if dets.people is not None:
                found_people = True
                people.process(i + 1, sample.height, sample.width, _people_only(target, person_label), dets.people)
        res = garments.evaluate()
        out[name] = {"group": cond.group, "about": cond.about, "images": res["images"], "instances": res["instances"],
                     "box": {k: res["box"].get(k) for k in ("AP", "AP50", "AP75")},
                     "mask": {k: res["mask"].get(k) for k in ("AP", "AP50", "AP75")}}
        if found_people:
            out[name]["person_mask_AP"] = people.evaluate()["mask"]["AP"]
        if progress:
            print(f"  {name:20s} mask AP {res['mask']['AP']:.4f}  box AP {res['box']['AP']:.4f}  "
                  f"({res['instances']} garments)", flush=True)
    return {"conditions": out, "summary": summarise_conditions(out, FRAMING, QUALITY)}


def summarise_conditions(results: dict[str, dict], framing: tuple[str, ...], quality: tuple[str, ...]) -> dict:
    """The benchmark's headline: clean mask AP, the mean over the framing conditions and each condition's
    ratio to clean (the issue's targets: framing mean >= 0.35 and each >= 0.85 x clean)."""
    clean = results.get("clean", {}).get("mask", {}).get("AP")
    mask = {k: v["mask"]["AP"] for k, v in results.items()}
    box = {k: v["box"]["AP"] for k, v in results.items()}
    framed = [k for k in framing if k in mask]
    summary: dict[str, Any] = {"clean_mask_AP": clean, "clean_box_AP": box.get("clean")}
    if framed:
        summary["framing_mean_mask_AP"] = round(float(np.mean([mask[k] for k in framed])), 4)
        summary["framing_mean_box_AP"] = round(float(np.mean([box[k] for k in framed])), 4)
    if clean:
        summary["ratios_to_clean"] = {k: round(mask[k] / clean, 3) for k in mask if k != "clean"}
        if framed:
            summary["framing_worst_ratio"] = min(summary["ratios_to_clean"][k] for k in framed)
    summary["all_mean_mask_AP"] = round(float(np.mean([v for k, v in mask.items() if k != "clean"])), 4) \
        if len(mask) > 1 else None
    return summary


def conditions_table(bench: dict[str, Any]) -> list[str]:
    """Markdown rows of the benchmark (model card, README)."""
    rows = ["| condition | what | garments | mask AP | box AP | x clean |", "| --- | --- | --- | --- | --- | --- |"]
    ratios = bench["summary"].get("ratios_to_clean", {})
    for name, r in bench["conditions"].items():
        ratio = f"{ratios[name]:.2f}" if name in ratios else "1.00" if name == "clean" else ""
        rows.append(f"| {name} | {r['about']} | {r['instances']} | {r['mask']['AP']:.3f} | {r['box']['AP']:.3f} | {ratio} |")
    s = bench["summary"]
    if s.get("framing_mean_mask_AP") is not None:
        rows.append(f"| **framing mean** | several people, turns and tilts, close-ups | | "
                    f"**{s['framing_mean_mask_AP']:.3f}** | {s['framing_mean_box_AP']:.3f} | "
                    f"worst {s.get('framing_worst_ratio', float('nan')):.2f} |")
    return rows


def write_json_atomic(obj: Any, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)
