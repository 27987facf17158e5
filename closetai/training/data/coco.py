"""COCO instances JSON (polygons, uncompressed or compressed RLE). Also the format of our packs.

Images are looked up next to the JSON, in its images/ folder, or in `image_root`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from closetai.media.imageio import BadImage, load_rgb
from closetai.training.data import DatasetError, make_target


def ann_to_mask(segm, height: int, width: int) -> np.ndarray:
    if isinstance(segm, list):
        polys = [p for p in segm if len(p) >= 6]
        if not polys:
            return np.zeros((height, width), np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    elif isinstance(segm, dict) and isinstance(segm.get("counts"), list):
        rle = mask_utils.frPyObjects(segm, height, width)
    elif isinstance(segm, dict):
        counts = segm["counts"]
        rle = {"size": segm["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        raise DatasetError("segmentation is neither polygons nor RLE")
    return mask_utils.decode(rle)


class CocoDataset:
    def __init__(self, json_path: str | Path, image_root: str | Path | None = None, ids: list[int] | None = None):
        self.json_path = Path(json_path)
        try:
            data = json.loads(self.json_path.read_text())
            images, anns, cats = data["images"], data.get("annotations", []), data["categories"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"malformed COCO annotation file: {self.json_path}") from exc
        self.data = data
        cats = sorted(cats, key=lambda c: c["id"])
        self.cat_ids = [c["id"] for c in cats]
        self.classes = tuple(c["name"] for c in cats)
        self.cat_to_label = {cid: i + 1 for i, cid in enumerate(self.cat_ids)}
        info = data.get("info") if isinstance(data.get("info"), dict) else {}
        if image_root is None and info.get("image_root"):  # pseudo-labels point at the photos they label
            image_root = (self.json_path.parent / info["image_root"]).resolve()
        self.image_root = Path(image_root) if image_root else None
        self.images = {im["id"]: im for im in images}
        self.anns: dict[int, list] = {i: [] for i in self.images}
        for a in anns:
            if a.get("image_id") not in self.anns:
                raise DatasetError(f"{self.json_path}: annotation {a.get('id')} names unknown image {a.get('image_id')}")
            if a.get("category_id") not in self.cat_to_label:
                raise DatasetError(f"{self.json_path}: unknown category {a.get('category_id')} in annotation {a.get('id')}")
            self.anns[a["image_id"]].append(a)
        self.ids = sorted(self.images) if ids is None else [i for i in ids if i in self.images]
        if not self.ids:
            raise DatasetError(f"empty dataset: no images in {self.json_path}")
        self.taxonomy_name = data.get("info", {}).get("taxonomy") if isinstance(data.get("info"), dict) else None

    def __len__(self) -> int:
        return len(self.ids)

    def file_name(self, index: int) -> str:
        return self.images[self.ids[index]]["file_name"]

    def image_path(self, index: int) -> Path:
        name = self.file_name(index)
        candidates = ([self.image_root / name] if self.image_root else []) + [
            self.json_path.parent / name, self.json_path.parent / "images" / name]
        for c in candidates:
            if c.is_file():
                return c
        raise DatasetError(f"image file not found: {name} (looked beside {self.json_path})")

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict]:
        image_id = self.ids[index]
        info = self.images[image_id]
        try:
            rgb, _ = load_rgb(self.image_path(index))
        except BadImage as exc:
            raise DatasetError(str(exc)) from exc
        h, w = rgb.shape[:2]
        if (info.get("height"), info.get("width")) not in ((h, w), (None, None)):
            raise DatasetError(f"{info['file_name']}: JSON says {info.get('width')}x{info.get('height')}, "
                               f"image is {w}x{h}")
        masks, labels = [], []
        for a in self.anns[image_id]:
            if a.get("iscrowd", 0):
                continue
            m = ann_to_mask(a["segmentation"], h, w)
            if m.any():
                masks.append(m)
                labels.append(self.cat_to_label[a["category_id"]])
        return rgb, make_target(masks, labels, h, w, image_id=image_id, file_name=info["file_name"])
