"""Appearance embeddings for garments: mask-pooled features from the detector's own FPN.

Why this and not a second network: the Mask R-CNN has already computed a 128-channel feature pyramid
for the photo when a garment is found, so an embedding costs one RoIAlign and a weighted mean per
garment (milliseconds), nothing new has to be shipped or downloaded, and the features were trained on
exactly these garments' classes and outlines. Pooling inside the predicted mask (not the box) keeps
the background and the neighbouring garments out; a mean over the mask is also nearly invariant to a
horizontal flip, a crop and a rescale, which is what "the same piece in another photo" looks like.
`bench/eval_similar.py` measures it against a colour-histogram baseline (README, "Similar items").

A vector is the concatenation, per FPN level in LEVELS, of the mask-weighted mean of that level's
channels over a GRID x GRID layout of the garment's box (the rows keep "dark at the top, light at the
bottom"), each level part L2-normalised, then the whole L2-normalised: cosine similarity is a dot product.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

# Which pyramid levels (torchvision FPN names; '0' is stride 4 ... '3' stride 32) and how the box is
# split (rows x 1 column: a flip swaps left and right, so columns would only hurt). Chosen by
# bench/eval_similar.py on the CCP validation split; change EMBEDDING_NAME whenever they change, so
# `closetai reindex` knows stored vectors are stale.
LEVELS = ("1", "2", "3")
GRID_ROWS = 2
SAMPLES = 14  # RoIAlign output side: the mask weights and the features are sampled on the same grid
EMBEDDING_NAME = "fpn-maskpool-v1"


def embedding_dim(channels: int) -> int:
    return channels * len(LEVELS) * GRID_ROWS


def l2_normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


class FeatureTap:
    """Forward hooks that keep what the detector computed for the current batch: the resized image sizes
    (model.transform) and the FPN features (model.backbone). Per thread, so a shared model stays safe."""

    def __init__(self, model: torch.nn.Module):
        self._local = threading.local()
        self.handles = [model.transform.register_forward_hook(self._on_transform),
                        model.backbone.register_forward_hook(self._on_backbone)]

    def _on_transform(self, _module, _inputs, output) -> None:
        image_list = output[0]
        self._local.image_sizes = list(image_list.image_sizes)
        self._local.padded = tuple(image_list.tensors.shape[-2:])

    def _on_backbone(self, _module, _inputs, output) -> None:
        self._local.features = output

    def pop(self) -> tuple[dict[str, torch.Tensor], list[tuple[int, int]], tuple[int, int]]:
        """-> (FPN features {level: (B, C, h, w)}, resized (h, w) per image, padded batch (H, W))."""
        out = (self._local.features, self._local.image_sizes, self._local.padded)
        self._local.features = None
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def pool_garments(features: dict[str, torch.Tensor], image_index: int, boxes: torch.Tensor,
                  weights: torch.Tensor | None, scale: tuple[float, float], padded: tuple[int, int]) -> torch.Tensor:
    """Mask-pooled embeddings of N garments of one image of the batch.

    boxes: (N, 4) [x1, y1, x2, y2] in the ORIGINAL image's pixels. weights: (N, SAMPLES, SAMPLES) mask
    weights sampled over each box (mask_weights), or None for the whole box. scale: (sy, sx) original ->
    resized image. padded: the batch tensor's (H, W), to get each level's stride. -> (N, D) float32, unit rows.
    """
    n = len(boxes)
    if n == 0:
        dim = sum(features[lvl].shape[1] for lvl in LEVELS) * GRID_ROWS
        return torch.zeros((0, dim), dtype=torch.float32, device=boxes.device)
    sy, sx = scale
    resized = boxes.float() * torch.tensor([sx, sy, sx, sy], device=boxes.device)
    rois = torch.cat([torch.full((n, 1), float(image_index), device=boxes.device), resized], dim=1)
    if weights is None:
        weights = torch.ones((n, SAMPLES, SAMPLES), device=boxes.device)
    w = weights.float().reshape(n, 1, GRID_ROWS, SAMPLES // GRID_ROWS, SAMPLES)
    parts = []
    for lvl in LEVELS:
        feat = features[lvl]
        f = roi_align(feat, rois.to(feat.dtype), (SAMPLES, SAMPLES), spatial_scale=feat.shape[-1] / padded[1],
                      sampling_ratio=2, aligned=True).float()
        f = f.reshape(n, f.shape[1], GRID_ROWS, SAMPLES // GRID_ROWS, SAMPLES)
        # Rows where the mask is empty (a garment touching only the top of its box) fall back to the
        # whole row rather than a division by zero.
        mass = w.sum(dim=(3, 4))
        pooled = torch.where(mass > 1e-3, (f * w).sum(dim=(3, 4)) / mass.clamp(min=1e-3), f.mean(dim=(3, 4)))
        parts.append(F.normalize(pooled.reshape(n, -1), dim=1))
    return F.normalize(torch.cat(parts, dim=1), dim=1)


def mask_weights(masks: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(N, H, W) or (N, 1, H, W) masks (bool or soft probabilities) at the original resolution ->
    (N, SAMPLES, SAMPLES) weights sampled over each garment's box."""
    if masks.ndim == 3:
        masks = masks[:, None]
    n = len(boxes)
    rois = torch.cat([torch.arange(n, device=boxes.device, dtype=torch.float32)[:, None], boxes.float()], dim=1)
    return roi_align(masks.float(), rois, (SAMPLES, SAMPLES), spatial_scale=1.0, sampling_ratio=2, aligned=True)[:, 0]


def colour_histogram(rgb: np.ndarray, mask: np.ndarray, bins: tuple[int, int, int] = (8, 4, 4)) -> np.ndarray:
    """The baseline the evaluation compares against: an HSV histogram of the mask's pixels (hue 8 x
    saturation 4 x value 4 bins), square-rooted (Hellinger) and L2-normalised."""
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    pixels = hsv[mask.astype(bool)]
    if not len(pixels):
        return np.zeros(int(np.prod(bins)), dtype=np.float32)
    hist, _ = np.histogramdd(pixels.astype(np.float32), bins=bins, range=((0, 180), (0, 256), (0, 256)))
    return l2_normalise(np.sqrt(hist.reshape(-1) / len(pixels)))


def to_blob(vector: np.ndarray) -> bytes:
    """float16 little-endian bytes: half the space of float32; cosine scores move by < 1e-3."""
    return np.asarray(vector, dtype="<f2").tobytes()


def from_blob(blob: bytes, dim: int) -> np.ndarray:
    v = np.frombuffer(blob, dtype="<f2")
    if v.size != dim:
        raise ValueError(f"embedding blob holds {v.size} values, expected {dim}")
    return v.astype(np.float32)


def describe_embedding(channels: int) -> dict[str, Any]:
    return {"name": EMBEDDING_NAME, "levels": list(LEVELS), "grid_rows": GRID_ROWS, "dim": embedding_dim(channels)}
