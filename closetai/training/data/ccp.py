"""Clothing Co-Parsing (CCP): photos/<id>.jpg + annotations/pixel-level/<id>.mat (`groundtruth`).

Per-pixel CCP labels become ClosetAI-ccp-15 instances by the rule in taxonomy.json: each class is one
instance made of all its pixels, footwear splits into 8-connected components, < 100 px is dropped.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import scipy.io

from closetai.media.imageio import BadImage, load_rgb
from closetai.training.data import DatasetError, make_target
from closetai.vision.taxonomy import (
    CCP15,
    CCP15_SPLIT_COMPONENTS,
    CCP_MIN_INSTANCE_PIXELS,
    PERSON,
    ccp_label_to_class,
)


def _loadmat(path: Path, key: str) -> np.ndarray:
    try:
        data = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError for damaged files
        raise DatasetError(f"malformed annotation file: {path} ({exc.__class__.__name__})") from exc
    if key not in data:
        raise DatasetError(f"annotation file has no variable {key!r}: {path}")
    return data[key]


def instances_from_labelmap(labelmap: np.ndarray, label_to_class: dict[int, str]) -> tuple[list, list]:
    """(H, W) CCP label map -> (masks, class ids) following the taxonomy's instance rule."""
    masks, labels = [], []
    for cls in CCP15.classes:
        ccp_ids = [i for i, c in label_to_class.items() if c == cls]
        pixels = np.isin(labelmap, ccp_ids)
        if not pixels.any():
            continue
        if cls in CCP15_SPLIT_COMPONENTS:
            n, comp = cv2.connectedComponents(pixels.astype(np.uint8), connectivity=8)
            parts = [comp == k for k in range(1, n)]
        else:
            parts = [pixels]
        for part in parts:
            if part.sum() >= CCP_MIN_INSTANCE_PIXELS:
                masks.append(part)
                labels.append(CCP15.id_of(cls))
    return masks, labels


class CCPDataset:
    """Labelled CCP photos. ids: optional subset of photo ids (strings like '0001').
    person: also give each photo's person silhouette (every non-null label) as class `person`, after the 15."""

    taxonomy = CCP15

    def __init__(self, root: str | Path, ids: list[str] | None = None, person: bool = False):
        self.root = Path(root)
        ann_dir = self.root / "annotations" / "pixel-level"
        label_file = self.root / "label_list.mat"
        if not label_file.is_file():
            label_file = self.root / "annotations" / "label_list.mat"
        if not label_file.is_file():
            raise DatasetError(f"CCP label_list.mat not found under {self.root}")
        names = [str(np.asarray(x).reshape(-1)[0]) for x in _loadmat(label_file, "label_list").reshape(-1)]
        self.label_to_class = ccp_label_to_class(names)
        available = sorted(p.stem for p in ann_dir.glob("*.mat"))
        self.ids = available if ids is None else [i for i in ids if i in set(available)]
        if not self.ids:
            raise DatasetError(f"empty dataset: no annotations in {ann_dir}")
        self.person = person
        self.classes = CCP15.classes + ((PERSON,) if person else ())

    def __len__(self) -> int:
        return len(self.ids)

    def file_name(self, index: int) -> str:
        return f"{self.ids[index]}.jpg"

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict]:
        pid = self.ids[index]
        photo = self.root / "photos" / f"{pid}.jpg"
        try:
            rgb, _ = load_rgb(photo)
        except BadImage as exc:
            raise DatasetError(str(exc)) from exc
        labelmap = _loadmat(self.root / "annotations" / "pixel-level" / f"{pid}.mat", "groundtruth")
        if labelmap.shape != rgb.shape[:2]:
            raise DatasetError(f"annotation size {labelmap.shape} differs from photo {rgb.shape[:2]}: {pid}.mat")
        masks, labels = instances_from_labelmap(labelmap, self.label_to_class)
        if self.person and (silhouette := labelmap != 0).sum() >= CCP_MIN_INSTANCE_PIXELS:
            masks.append(silhouette)
            labels.append(len(CCP15.classes) + 1)
        h, w = labelmap.shape
        return rgb, make_target(masks, labels, h, w, image_id=int(pid), file_name=photo.name)
