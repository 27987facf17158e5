"""Appearance embeddings for garments: mask-pooled features from the detector's own FPN.

Why this and not a second network: the Mask R-CNN has already computed a 128-channel feature pyramid
for the photo when a garment is found, so an embedding costs one RoIAlign and a weighted mean per
garment (milliseconds), nothing new has to be shipped or downloaded, and the features were trained on
exactly these garments' classes and outlines. Pooling inside the predicted mask (not the box) keeps
the background and the neighbouring garments out; a mean over the mask is also nearly invariant to a
horizontal flip, a crop and a rescale, which is what "the same piece in another photo" looks like.
`bench/eval_similar.py` measures it against a colour-histogram baseline (README, "Similar items").

A vector is three unit-length parts, weighted and concatenated, then L2-normalised (cosine = dot):
  appearance  per FPN level in LEVELS, the mask-weighted mean of its 128 channels over GRID_ROWS horizontal
              bands of the garment's box (the bands keep "dark at the top, light at the bottom");
  class       the detector's own class probabilities for the garment's box (box head), x CLASS_WEIGHT:
              a coat should find coats first;
  colour      an HSV histogram of the mask's pixels, x COLOUR_WEIGHT: the FPN features are trained to
              tell classes apart, not shades, and the histogram is what "the same red" needs.
What each part adds was measured with bench/eval_similar.py on the CCP validation split (25-photo
subset, 2 augmented copies each; instance mAP@10 / same-class P@10): FPN level 0 in 2 bands alone
0.784 / 0.800; + class 0.768 / 0.866; + colour 0.839 / 0.776; all three (weights 0.6, 0.4) 0.818 /
0.872; coarser levels (strides 8-32) and more levels were worse for instances (levels 1-3: 0.718 / 0.791).
A second round on 97 CCP training photos (every 8th labelled photo outside the validation split, seed 1)
chose 3 bands over 2 (0.770 / 0.848 vs 0.743 / 0.849, same weights); the README's figures are the
validation split's 85 photos with seed 0, which no choice here was made on (apart from the 25 above).

When the model ships a whitening file (models/<model>.embed.npz, `scripts/fit_embedding.py`), the
appearance part is whitened and cut to 128 numbers first (Whitening, below; vectors "fpn-maskpool-v3w",
271 numbers), and the class weight is the one that script chose on training photos.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from closetai.vision.detections import mask_extent

# Which pyramid levels (torchvision FPN names; '0' is stride 4 ... '3' stride 32) and how the box is
# split (rows x 1 column: a flip swaps left and right, so columns would only hurt). Chosen by
# bench/eval_similar.py runs (see above); change EMBEDDING_NAME whenever they change, so
# `closetai reindex` knows stored vectors are stale.
LEVELS = ("0",)
GRID_ROWS = 3
SAMPLES = 15  # RoIAlign output side (a multiple of GRID_ROWS): mask weights and features share the grid
CLASS_WEIGHT = 0.6
COLOUR_WEIGHT = 0.4
HSV_BINS = (8, 4, 4)
EMBEDDING_NAME = "fpn-maskpool-v2"


def embedding_dim(channels: int, num_classes: int = 15) -> int:
    return channels * len(LEVELS) * GRID_ROWS + num_classes + int(np.prod(HSV_BINS))


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


def colour_histogram(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """An HSV histogram of the mask's pixels (hue 8 x saturation 4 x value 4), square-rooted (Hellinger)
    and L2-normalised: the colour part of a vector, and alone the evaluation's baseline."""
    return colour_histograms(rgb, np.asarray(mask)[None])[0]


def colour_histograms(rgb: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(N, H, W) masks of one image -> (N, 128) colour_histogram rows.

    OpenCV's calcHist over each mask's own extent: the bins are uniform over H 0-180,
    S and V 0-256, so a pixel's cell is (h*8//180 * 4 + s*4//256) * 4 + v*4//256 (checked against
    that formula in tests). Counting with numpy over the whole frame took ~11 ms per 720p frame with 5
    garments on the 2-core CPU, CPU work that a GPU batch also waits on; this takes ~3 ms.
    """
    size = int(np.prod(HSV_BINS))
    masks = np.asarray(masks)
    out = np.zeros((len(masks), size), dtype=np.float32)
    if not len(masks):
        return out
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    for i, mask in enumerate(masks):
        extent = mask_extent(mask)
        if extent is None:
            continue
        y1, y2, x1, x2 = extent
        m8 = np.ascontiguousarray(mask[y1:y2, x1:x2], dtype=bool).view(np.uint8)
        hist = cv2.calcHist([hsv[y1:y2, x1:x2]], [0, 1, 2], m8, list(HSV_BINS), [0, 180, 0, 256, 0, 256]).ravel()
        out[i] = l2_normalise(np.sqrt(hist / hist.sum()))
    return out


def class_probabilities(model: torch.nn.Module, features: dict[str, torch.Tensor], image_index: int,
                        boxes: torch.Tensor, scale: tuple[float, float], image_sizes: list) -> torch.Tensor:
    """(N, classes) the box head's softmax over the garment classes (background left out) for given boxes
    in the original image's pixels; unit rows."""
    sy, sx = scale
    resized = boxes.float() * torch.tensor([sx, sy, sx, sy], device=boxes.device)
    feats = {k: v[image_index:image_index + 1] for k, v in features.items()}
    heads = model.roi_heads
    pooled = heads.box_roi_pool(feats, [resized], [image_sizes[image_index]])
    logits, _ = heads.box_predictor(heads.box_head(pooled))
    return F.normalize(F.softmax(logits.float(), dim=1)[:, 1:], dim=1)


def combine(appearance: np.ndarray, classes: np.ndarray, colours: np.ndarray, class_weight: float = CLASS_WEIGHT,
            colour_weight: float = COLOUR_WEIGHT) -> np.ndarray:
    """The three unit-length parts -> the stored (N, D) unit vectors."""
    return l2_normalise(np.hstack([appearance, class_weight * classes, colour_weight * colours]))


def look_parts(vectors: np.ndarray, num_classes: int = 15, colour_weight: float = COLOUR_WEIGHT) -> np.ndarray:
    """Stored (N, D) vectors -> (N, D - num_classes) unit rows of how the garments LOOK: the appearance and
    colour parts with the class part left out. Why: two coats share most of their class part (the box
    head's probabilities), so the cosine of whole vectors is 0.7+ for any two garments of a class and
    says little to a person (issue 20.11); the look cosine is what the displayed match score is built on
    (closetai.insights.similar.MatchScale). Each part of a stored vector is a weighted unit vector, so
    re-normalising its slice recovers it whatever weights the vector was combined with."""
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    n_colours = int(np.prod(HSV_BINS))
    appearance_dim = v.shape[1] - num_classes - n_colours
    if appearance_dim <= 0:
        raise ValueError(f"{v.shape[1]}-number vectors have no room for {num_classes} classes and {n_colours} colours")
    return l2_normalise(np.hstack([l2_normalise(v[:, :appearance_dim]),
                                   colour_weight * l2_normalise(v[:, appearance_dim + num_classes:])]))


# ---- learned whitening of the appearance part ------------------------------------------------------------
# Why: the mask-pooled FPN channels are correlated and most of their variance is not what tells one
# garment from another. A linear map learned from matching pairs (Radenović et al., "Fine-tuning CNN
# image retrieval with no human annotation", 2018: whiten the within-pair covariance, then PCA) fixes
# that without a second network: a (128 x 384) matrix in a ~200 kB file next to the model. The pairs
# are augmented copies (crop, flip, rescale, colour jitter, JPEG) of garments of CCP *training* photos
# (scripts/fit_embedding.py), plus a little of the same-class scatter (ALPHA). The evaluation's copies
# come from the same augmentation family on the validation photos, so its instance figure is the
# optimistic end of what a real second photo of a garment gets.
WHITENED_NAME = "fpn-maskpool-v3w"
WHITEN_DIM = 128
WHITEN_SHRINK = 0.1  # towards a multiple of the identity: 2-3k pairs for a 384 x 384 covariance
WHITEN_ALPHA = 0.3  # weight of the within-class scatter next to the within-pair one


@dataclass
class Whitening:
    mean: np.ndarray  # (D,)
    projection: np.ndarray  # (d, D)
    class_weight: float
    colour_weight: float
    model_sha256: str  # the model file whose features it was fitted on
    info: dict

    def apply(self, appearance: np.ndarray) -> np.ndarray:
        return l2_normalise((np.asarray(appearance, np.float32) - self.mean) @ self.projection.T)

    def save(self, path) -> None:
        np.savez(path, mean=self.mean.astype(np.float32), projection=self.projection.astype(np.float32),
                 meta=np.array(json.dumps({"class_weight": self.class_weight, "colour_weight": self.colour_weight,
                                            "model_sha256": self.model_sha256, "info": self.info})))

    @classmethod
    def load(cls, path) -> Whitening:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            return cls(z["mean"].astype(np.float32), z["projection"].astype(np.float32), float(meta["class_weight"]),
                       float(meta["colour_weight"]), meta["model_sha256"], meta.get("info", {}))


def fit_whitening(appearance: np.ndarray, instance_keys: list, labels: list, dim: int = WHITEN_DIM,
                  shrink: float = WHITEN_SHRINK, alpha: float = WHITEN_ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """(mean, projection) from appearance parts (N, D) of several views per garment (instance_keys) with
    their classes: whiten the within-pair (+ alpha x within-class) covariance, then rotate to the principal
    axes of what remains and keep `dim` of them."""
    x = np.asarray(appearance, np.float64)
    mean = x.mean(axis=0)
    groups: dict = {}
    for i, key in enumerate(instance_keys):
        groups.setdefault(key, []).append(i)
    pairs = np.array([(a, b) for idx in groups.values() for j, a in enumerate(idx) for b in idx[j + 1:]])
    if not len(pairs):
        raise ValueError("whitening needs garments with at least two views each")
    diff = x[pairs[:, 0]] - x[pairs[:, 1]]
    within = diff.T @ diff / len(diff)
    if alpha:
        labels_arr = np.asarray(labels)
        scatter = np.zeros_like(within)
        for label in set(labels_arr.tolist()):
            xc = x[labels_arr == label] - x[labels_arr == label].mean(axis=0)
            scatter += xc.T @ xc
        within = within / np.trace(within) + alpha * scatter / max(np.trace(scatter), 1e-12)
    within = (1 - shrink) * within + shrink * np.trace(within) / len(within) * np.eye(len(within))
    values, vectors = np.linalg.eigh(within)
    whiten = vectors @ np.diag(values ** -0.5) @ vectors.T
    xw = (x - mean) @ whiten.T
    values2, vectors2 = np.linalg.eigh(xw.T @ xw / len(xw))
    rotate = vectors2[:, np.argsort(-values2)[:dim]]
    return mean.astype(np.float32), (rotate.T @ whiten).astype(np.float32)


def whitening_path(model_path) -> Path:
    """models/closetai-ccp15.pt -> models/closetai-ccp15.embed.npz"""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".embed.npz")
