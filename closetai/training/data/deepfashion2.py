"""DeepFashion2's own layout: image/<id>.jpg + annos/<id>.json with item1..itemN.

Each item: category_id (1-13), segmentation (list of polygons), bounding_box [x1, y1, x2, y2];
pair_id / style are kept for consumer-to-shop retrieval.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from closetai.media.imageio import BadImage, load_rgb
from closetai.training.data import DatasetError, make_target
from closetai.vision.taxonomy import DF2


class DeepFashion2Dataset:
    taxonomy = DF2

    def __init__(self, root: str | Path, ids: list[str] | None = None):
        self.root = Path(root)
        found = sorted(p.stem for p in (self.root / "annos").glob("*.json"))
        self.ids = found if ids is None else [i for i in ids if i in set(found)]
        if not self.ids:
            raise DatasetError(f"empty dataset: no annotations in {self.root / 'annos'}")
        self.classes = DF2.classes

    def __len__(self) -> int:
        return len(self.ids)

    def file_name(self, index: int) -> str:
        return f"{self.ids[index]}.jpg"

    def read_annotation(self, index: int) -> dict:
        path = self.root / "annos" / f"{self.ids[index]}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DatasetError(f"malformed annotation file: {path}") from exc

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict]:
        pid = self.ids[index]
        ann = self.read_annotation(index)
        try:
            rgb, _ = load_rgb(self.root / "image" / f"{pid}.jpg")
        except BadImage as exc:
            raise DatasetError(str(exc)) from exc
        h, w = rgb.shape[:2]
        masks, labels, boxes, extra = [], [], [], []
        items = sorted((k for k in ann if k.startswith("item")), key=lambda k: int(k[4:]))
        for key in items:
            item = ann[key]
            cat = item.get("category_id")
            if not isinstance(cat, int) or not 1 <= cat <= len(DF2.classes):
                raise DatasetError(f"unknown category {cat!r} in {pid}.json {key}")
            polys = [p for p in item.get("segmentation", []) if len(p) >= 6]
            if not polys:
                raise DatasetError(f"{pid}.json {key}: no polygon segmentation")
            rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
            masks.append(mask_utils.decode(rle))
            labels.append(cat)
            boxes.append(item.get("bounding_box"))
            extra.append({"pair_id": ann.get("pair_id"), "style": item.get("style"),
                          "source": ann.get("source")})
        target = make_target(masks, labels, h, w, image_id=int(pid) if pid.isdigit() else index,
                             file_name=f"{pid}.jpg", boxes=np.array(boxes) if boxes else None)
        target["items"] = extra
        return rgb, target
