"""Dataset readers: each yields (RGB uint8 HxWx3 image, target dict) and loads pixels lazily.

target: boxes (N, 4) float32 xyxy pixels, labels (N,) int64 1-based, masks (N, H, W) uint8,
image_id int, file_name str. Use `open_dataset(path)` to pick the reader from the folder layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from closetai import ClosetAIError


class DatasetError(ClosetAIError):
    pass


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, 4) float32 xyxy, inclusive-exclusive pixel extents."""
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        if len(ys):
            boxes[i] = [xs[0], ys[0], xs[-1] + 1, ys[-1] + 1]
    return boxes


def make_target(masks: list[np.ndarray], labels: list[int], height: int, width: int, image_id: int,
                file_name: str, boxes: np.ndarray | None = None) -> dict:
    m = np.stack(masks).astype(np.uint8) if masks else np.zeros((0, height, width), np.uint8)
    return {
        "boxes": masks_to_boxes(m) if boxes is None else np.asarray(boxes, np.float32).reshape(-1, 4),
        "labels": np.asarray(labels, dtype=np.int64),
        "masks": m,
        "image_id": image_id,
        "file_name": file_name,
    }


class ConcatReader:
    """Several readers with the same classes, read as one (labelled photos + pseudo-labelled ones)."""

    def __init__(self, readers: list):
        classes = {tuple(r.classes) for r in readers}
        if len(classes) != 1:
            raise DatasetError(f"readers have different classes: {sorted(classes)}")
        self.readers, self.classes = list(readers), tuple(readers[0].classes)
        self.taxonomy = getattr(readers[0], "taxonomy", None)
        self._starts = np.cumsum([0] + [len(r) for r in readers])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, index: int) -> tuple:
        k = int(np.searchsorted(self._starts, index, side="right") - 1)
        return self.readers[k], index - int(self._starts[k])

    def __getitem__(self, index: int):
        reader, i = self._locate(index)
        return reader[i]

    def file_name(self, index: int) -> str:
        reader, i = self._locate(index)
        return reader.file_name(i)


def open_dataset(path: str | Path, **kwargs):
    """Pick the reader from the layout: CCP, DeepFashion2, or a COCO JSON file / pack folder."""
    from closetai.training.data.ccp import CCPDataset
    from closetai.training.data.coco import CocoDataset
    from closetai.training.data.deepfashion2 import DeepFashion2Dataset

    p = Path(path)
    if not p.exists():
        raise DatasetError(f"dataset not found: {p}")
    if p.is_file() and p.suffix == ".json":
        return CocoDataset(p, **kwargs)
    if (p / "annotations" / "pixel-level").is_dir() and (p / "photos").is_dir():
        return CCPDataset(p, **kwargs)
    if (p / "annos").is_dir() and (p / "image").is_dir():
        return DeepFashion2Dataset(p, **kwargs)
    if (p / "annotations.json").is_file():
        return CocoDataset(p / "annotations.json", **kwargs)
    raise DatasetError(f"unrecognised dataset layout: {p} (expected CCP photos/ + annotations/pixel-level/, "
                       "DeepFashion2 image/ + annos/, or a COCO .json)")
