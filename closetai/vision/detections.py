"""The one `Detections` type that flows from predict to annotate, store and the JSON outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Binary HxW mask -> COCO compressed RLE {"size": [H, W], "counts": str}."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def mask_extent(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """[y1, y2, x1, x2) of a bool mask's pixels (its tight box, rows then columns), None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def decode_mask(rle: dict[str, Any]) -> np.ndarray:
    """COCO RLE (compressed string or bytes) -> bool HxW mask."""
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE, e.g. iscrowd annotations
        rle = mask_utils.frPyObjects(rle, *rle["size"])
        counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return mask_utils.decode({"size": list(rle["size"]), "counts": counts}).astype(bool)


@dataclass
class Detections:
    """Detections in one image.

    xyxy: (N, 4) float32 pixel boxes [x1, y1, x2, y2] at the image's own resolution.
    masks: (N, H, W) bool, or None when only boxes are known.
    scores: (N,) float32 in [0, 1]. class_ids: (N,) int, 1-based into `class_names`.
    track_ids: (N,) int or None (video only). data: optional per-detection extras (e.g. colour).
    embeddings: (N, D) float32 unit-length appearance vectors (closetai.vision.embed) or None. Never written to
    the detection JSON (they are model-specific and long); the store keeps them.
    people: the whole people in the same image (class `person`), when the model finds them; the garments
    are the detections themselves.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: tuple[str, ...]
    masks: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    data: dict[str, list] = field(default_factory=dict)
    embeddings: np.ndarray | None = None
    people: Detections | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        n = len(self.xyxy)
        if len(self.scores) != n or len(self.class_ids) != n:
            raise ValueError(f"Detections: {n} boxes but {len(self.scores)} scores, {len(self.class_ids)} ids")
        if self.masks is not None:
            self.masks = np.asarray(self.masks, dtype=bool)
            if self.masks.ndim != 3 or len(self.masks) != n:
                raise ValueError(f"Detections: masks must be (N, H, W) with N={n}, got {self.masks.shape}")
        if self.track_ids is not None:
            self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
            if len(self.track_ids) != n:
                raise ValueError("Detections: track_ids length differs from boxes")
        if self.embeddings is not None:
            self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
            if self.embeddings.ndim != 2 or len(self.embeddings) != n:
                raise ValueError(f"Detections: embeddings must be (N, D) with N={n}, got {self.embeddings.shape}")
        if n and (self.class_ids.min() < 1 or self.class_ids.max() > len(self.class_names)):
            raise ValueError("Detections: class id out of range of class_names")
        for key, values in self.data.items():
            if len(values) != n:
                raise ValueError(f"Detections: data[{key!r}] has {len(values)} values for {n} detections")

    def __len__(self) -> int:
        return len(self.xyxy)

    @property
    def labels(self) -> list[str]:
        return [self.class_names[i - 1] for i in self.class_ids]

    @classmethod
    def empty(cls, class_names: tuple[str, ...], height: int = 0, width: int = 0) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64), tuple(class_names),
                   masks=np.zeros((0, height, width), dtype=bool))

    def __getitem__(self, index) -> Detections:
        """Select by boolean mask, index array or slice (keeps all fields in step)."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.arange(len(self))[index]
        return Detections(
            self.xyxy[idx], self.scores[idx], self.class_ids[idx], self.class_names,
            masks=None if self.masks is None else self.masks[idx],
            track_ids=None if self.track_ids is None else self.track_ids[idx],
            data={k: [v[i] for i in idx] for k, v in self.data.items()},
            embeddings=None if self.embeddings is None else self.embeddings[idx],
            people=self.people,
        )

    def filter(self, min_score: float) -> Detections:
        return self[self.scores >= min_score]

    def mask_rles(self) -> list[dict[str, Any]]:
        if self.masks is None:
            return []
        return [encode_mask(m) for m in self.masks]

    def to_json(self) -> list[dict[str, Any]]:
        """Per-detection dicts: label, score, box, mask (COCO RLE), plus track_id and extras."""
        rles = self.mask_rles() if self.masks is not None else [None] * len(self)
        out = []
        for i in range(len(self)):
            item: dict[str, Any] = {
                "label": self.class_names[self.class_ids[i] - 1],
                "score": round(float(self.scores[i]), 4),
                "box": [round(float(v), 1) for v in self.xyxy[i]],
                "mask": rles[i],
            }
            if self.track_ids is not None:
                item["track_id"] = int(self.track_ids[i])
            for key, values in self.data.items():
                item[key] = values[i]
            out.append(item)
        return out

    @classmethod
    def from_json(cls, items: list[dict[str, Any]], class_names: tuple[str, ...]) -> Detections:
        names = tuple(class_names)
        if not items:
            return cls.empty(names)
        unknown = {it["label"] for it in items} - set(names)
        if unknown:
            raise ValueError(f"labels not in class list: {sorted(unknown)}")
        masks = None
        if all(it.get("mask") for it in items):
            masks = np.stack([decode_mask(it["mask"]) for it in items])
        track_ids = [it["track_id"] for it in items] if all("track_id" in it for it in items) else None
        core = {"label", "score", "box", "mask", "track_id"}
        extras = sorted({k for it in items for k in it} - core)
        return cls(
            np.array([it["box"] for it in items]), np.array([it["score"] for it in items]),
            np.array([names.index(it["label"]) + 1 for it in items]), names, masks=masks,
            track_ids=track_ids, data={k: [it.get(k) for it in items] for k in extras},
        )
