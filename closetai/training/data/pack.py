"""`closetai prepare`: any dataset -> compact pack for a GPU run (COCO JSON with RLE + resized JPEGs).

Layout: OUT/images/<name>.jpg, OUT/train.json, OUT/val.json (COCO, masks as compressed RLE),
OUT/pack.json (source, taxonomy, scale, split seed). Written into OUT.tmp and renamed at the end,
so an interrupted run leaves no half pack.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from closetai.media.imageio import save_jpeg
from closetai.training.data import DatasetError
from closetai.vision.detections import encode_mask


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic random split -> (train indices, val indices), both sorted."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


def _resize(rgb: np.ndarray, masks: np.ndarray, short_side: int) -> tuple[np.ndarray, np.ndarray, float]:
    h, w = rgb.shape[:2]
    scale = short_side / min(h, w)
    if scale >= 1:
        return rgb, masks, 1.0
    nw, nh = round(w * scale), round(h * scale)
    rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    if len(masks):
        masks = np.stack([cv2.resize(m.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR) >= 0.5
                          for m in masks]).astype(np.uint8)
    else:
        masks = np.zeros((0, nh, nw), np.uint8)
    return rgb, masks, scale


def make_pack(dataset, out: str | Path, short_side: int = 448, val_fraction: float = 0.1, seed: int = 0,
              quality: int = 90, source: str = "", taxonomy: str = "", split_of: dict[int, str] | None = None) -> dict:
    """split_of: index -> "train" | "val" | "select" instead of a random val_fraction split (a fine-tune's
    split, closetai.cli.fine_tune_split_ids); "select" photos go to select.json."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    if split_of is None:
        train_idx, val_idx = split_indices(len(dataset), val_fraction, seed)
        split_of = {i: "train" for i in train_idx} | {i: "val" for i in val_idx}
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(dataset.classes)]
    names = ("train", "val", "select") if "select" in split_of.values() else ("train", "val")
    cocos = {s: {"info": {"taxonomy": taxonomy, "source": source}, "images": [], "annotations": [],
                 "categories": cats} for s in names}
    try:
        _fill(dataset, tmp, cocos, split_of, short_side, quality)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not cocos["train"]["images"]:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError("empty dataset: nothing to pack")
    for s, coco in cocos.items():
        (tmp / f"{s}.json").write_text(json.dumps(coco))
    meta = {"source": source, "taxonomy": taxonomy, "classes": list(dataset.classes), "short_side": short_side,
            "val_fraction": val_fraction, "seed": seed, "train_images": len(cocos["train"]["images"]),
            "val_images": len(cocos["val"]["images"]),
            "val_files": [im["original_file_name"] for im in cocos["val"]["images"]]}
    if "select" in cocos:
        meta["select_images"] = len(cocos["select"]["images"])
        meta["select_files"] = [im["original_file_name"] for im in cocos["select"]["images"]]
    (tmp / "pack.json").write_text(json.dumps(meta, indent=1))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return meta


def _fill(dataset, tmp: Path, cocos: dict, split_of: dict, short_side: int, quality: int) -> None:
    ann_id = 0
    for index in tqdm(range(len(dataset)), desc="prepare", unit="img"):
        rgb, target = dataset[index]
        rgb, masks, _ = _resize(rgb, target["masks"], short_side)
        h, w = rgb.shape[:2]
        name = Path(target["file_name"]).stem + ".jpg"
        save_jpeg(rgb, tmp / "images" / name, quality=quality)
        coco = cocos[split_of[index]]
        image_id = len(coco["images"]) + 1 if not isinstance(target["image_id"], int) else target["image_id"]
        coco["images"].append({"id": image_id, "file_name": name, "width": w, "height": h,
                               "original_file_name": target["file_name"]})
        for m, label in zip(masks, target["labels"], strict=True):
            if not m.any():
                continue
            ys, xs = np.nonzero(m)
            ann_id += 1
            coco["annotations"].append({
                "id": ann_id, "image_id": image_id, "category_id": int(label), "iscrowd": 0,
                "segmentation": encode_mask(m), "area": int(m.sum()),
                "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
            })
