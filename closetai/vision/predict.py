"""Predictor: load the model once, then __call__(rgb) -> Detections (preprocess, inference,
postprocess each timed, as in ultralytics' predictor)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from closetai import sha256_file
from closetai.vision.detections import Detections, mask_extent
from closetai.vision.device import pick_device
from closetai.vision.embed import (
    EMBEDDING_NAME,
    HSV_BINS,
    WHITENED_NAME,
    FeatureTap,
    Whitening,
    class_probabilities,
    colour_histograms,
    combine,
    mask_weights,
    pool_garments,
    whitening_path,
)
from closetai.vision.model import load_model
from closetai.vision.taxonomy import PERSON

log = logging.getLogger(__name__)
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "closetai-ccp15.pt"


def default_model_path() -> Path:
    from closetai import settings

    return Path(settings.load()["MODEL_PATH"] or DEFAULT_MODEL)


def load_whitening(model_path: Path) -> Whitening | None:
    """The appearance whitening fitted for this model file (closetai.vision.embed), or None: none shipped, or
    fitted on another model's features (then the unwhitened v2 vectors, with a warning)."""
    path = whitening_path(model_path)
    if not path.is_file():
        return None
    whitening = Whitening.load(path)
    if whitening.model_sha256 != sha256_file(model_path):
        log.warning("%s was fitted on another model file: embeddings stay unwhitened "
                    "(refit with scripts/fit_embedding.py)", path.name)
        return None
    return whitening


def cross_class_overlaps(masks: np.ndarray | torch.Tensor, labels: torch.Tensor, max_iou: float) -> np.ndarray:
    """(N,) for each detection, its largest mask IoU with a more confident detection of another class that
    is itself kept (overlaps none above max_iou): a greedy pass in score order, as NMS does.

    torchvision's NMS is per class, so the same legs can come out as both "jeans" and "trousers";
    counted twice, they would skew the trend report. Inputs are in descending score order (as
    torchvision returns them). Only pairs of different classes whose masks' bounding boxes overlap are
    compared, inside that overlap: exact, and ~20x cheaper on a 720p frame than one (N, H*W) matrix
    product (34 ms for 11 masks). masks: (N, H, W) bool, numpy (as predict_batch has them) or torch.
    """
    masks = masks.cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks, dtype=bool)
    n = len(masks)
    worst = np.zeros(n, np.float32)
    if n < 2:
        return worst
    area = [cv2.countNonZero(m.view(np.uint8)) for m in np.ascontiguousarray(masks)]
    extent = [mask_extent(m) for m in masks]
    label = labels.tolist()
    kept: list[int] = []
    for i in range(n):
        for j in kept:
            if label[i] == label[j] or extent[i] is None or extent[j] is None:
                continue
            (a1, a2, a3, a4), (b1, b2, b3, b4) = extent[i], extent[j]
            y1, y2, x1, x2 = max(a1, b1), min(a2, b2), max(a3, b3), min(a4, b4)
            if y1 >= y2 or x1 >= x2:
                continue
            inter = int((masks[i, y1:y2, x1:x2] & masks[j, y1:y2, x1:x2]).sum())
            worst[i] = max(worst[i], inter / max(int(area[i] + area[j]) - inter, 1))
        if worst[i] <= max_iou:
            kept.append(i)
    return worst


def demote_cross_class(scores: np.ndarray, overlaps: np.ndarray, max_iou: float) -> np.ndarray:
    """Scores after cross-class suppression: a detection whose mask overlaps a more confident one of
    another class by IoU > max_iou keeps (1 - IoU) of its score, below 0.4 of it.

    Demoted rather than dropped (as this code did until model v2): at the 0.5 threshold a user sees the
    same garments, counted once, but the ranking keeps the alternative class below the others, where
    average precision counts it when the first guess was wrong. Dropping it cost 0.04 mask AP on held-out
    photos (issue 16); `closetai evaluate` reports the served ranking beside the model's own.
    """
    factor = np.where(overlaps > max_iou, 1.0 - overlaps, 1.0).astype(np.float32)
    return scores * factor


class _CallScoreThreshold(threading.local):
    value: float | None = None


def per_call_score_threshold(roi_heads: torch.nn.Module) -> _CallScoreThreshold:
    """Let each predict call set torchvision's box score threshold for its own thread.

    RoIHeads drops boxes below `score_thresh` (0.05, for evaluation) before running the mask head and
    pasting every mask at full resolution; a photo shown at 0.5 paid for all of them (0.43 s vs 0.36 s
    per 720p frame, 0.45 vs 0.40 at the video's 0.1). A box below the caller's threshold cannot change
    those above it (NMS goes in score order; the top-k cap keeps the highest), so the detections a caller
    sees are the same. The model is shared between threads, hence a thread-local value, not an assignment.
    """
    local = _CallScoreThreshold()
    base = type(roi_heads)
    default = roi_heads.__dict__.pop("score_thresh", 0.05)

    def get(self) -> float:
        return self._default_score_thresh if local.value is None else max(local.value, self._default_score_thresh)

    def set_(self, value: float) -> None:
        self.__dict__["_default_score_thresh"] = float(value)

    roi_heads.__class__ = type(base.__name__, (base,), {"score_thresh": property(get, set_)})
    roi_heads.score_thresh = default
    return local


class Predictor:
    """Loads a ClosetAI model file once. Thread-safe for inference (no state mutated per call)."""

    def __init__(self, model_path: str | os.PathLike | None = None, device: str = "auto",
                 min_score: float | None = None, threads: int | None = None, min_size: int | None = None,
                 cross_class_iou: float = 0.6, embed: bool = True, overrides: dict[str, Any] | None = None):
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.device = pick_device(device)
        if threads:
            torch.set_num_threads(threads)
        # overrides: test-time config keys, e.g. {"mask_scoring": False} (closetai.vision.model.load_model).
        self.model, self.meta = load_model(self.model_path, self.device, overrides=overrides)
        if min_size:  # test-time short side; the model file's config holds the default
            self.model.transform.min_size = (int(min_size),)
            self.meta["config"]["min_size"] = int(min_size)
        # Garments are what every caller counts; a model's `person` class (issue 16) comes apart, as
        # Detections.people. model_classes: the model's own class list (1-based ids of its outputs).
        self.model_classes: tuple[str, ...] = tuple(self.meta["classes"])
        self.class_names: tuple[str, ...] = tuple(c for c in self.model_classes if c != PERSON)
        self.person_id = self.model_classes.index(PERSON) + 1 if PERSON in self.model_classes else None
        self._garment_id = np.array([0] + [self.class_names.index(c) + 1 if c != PERSON else 0
                                           for c in self.model_classes], np.int64)
        self.min_score = float(self.meta.get("score_threshold", 0.5) if min_score is None else min_score)
        self.timings: dict[str, float] = {}
        self.cross_class_iou = cross_class_iou
        # bf16 autocast on CUDA is off: on an H100 it ran 62 frames/s vs 88 in fp32 (bench/bench_gpu.py,
        # batch 8 of 720p frames): this model's small convs gain less than the casts cost.
        self.amp = False
        # Appearance embeddings (closetai.vision.embed) from the FPN features this forward pass computes anyway.
        self.embed = embed
        self.whitening = load_whitening(self.model_path)
        self._tap = FeatureTap(self.model)
        self._call_thresh = per_call_score_threshold(self.model.roi_heads)

    @property
    def info(self) -> dict[str, Any]:
        return {"name": self.meta.get("name", self.model_path.stem), "taxonomy": self.meta.get("taxonomy", ""),
                "device": str(self.device), "classes": list(self.class_names),
                "embedding": self.embedding_model if self.embed else ""}

    @property
    def embedding_model(self) -> str:
        """Names the vectors this predictor makes: stored with them, so stale ones can be found."""
        name = WHITENED_NAME if self.whitening is not None else EMBEDDING_NAME
        return f"{self.meta.get('name', self.model_path.stem)}/{name}"

    def _to_tensor(self, rgb: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(rgb)).to(self.device).permute(2, 0, 1).float().div_(255)

    @torch.inference_mode()
    def predict_batch(self, frames: list[np.ndarray], min_score: float | None = None,
                      embed_min_score: float | None = None) -> list[Detections]:
        """RGB uint8 HxWx3 arrays -> Detections at each image's own resolution.

        embed_min_score: attach embeddings only to detections scoring at least this (the rest get NaN
        rows); the video engine's low-score detections only extend tracks and are never a track's best view.
        """
        thresh = self.min_score if min_score is None else min_score
        t0 = time.perf_counter()
        images = [self._to_tensor(f) for f in frames]
        t1 = time.perf_counter()
        self._call_thresh.value = thresh
        try:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp and self.device.type == "cuda"):
                outputs = self.model(images)
        finally:
            self._call_thresh.value = None
        t2 = time.perf_counter()
        features, sizes, padded = self._tap.pop()
        results, t_embed = [], 0.0
        for i, out in enumerate(outputs):
            people = None
            if self.person_id is not None:
                is_person = out["labels"] == self.person_id
                people = self._people(out, torch.nonzero(is_person & (out["scores"] >= thresh)).flatten())
                keep = torch.nonzero(~is_person & (out["scores"] >= thresh)).flatten()
            else:
                keep = torch.nonzero(out["scores"] >= thresh).flatten()
            # RoIHeads already applied thresh (per_call_score_threshold), so keep is usually everything:
            # then no copy of the full-size masks (3 ms a 720p frame on the CPU).
            probs = out["masks"][:, 0] if len(keep) == len(out["scores"]) else out["masks"][keep, 0]
            masks = (probs > 0.5).cpu().numpy()  # to the CPU once, before suppression
            scores = out["scores"][keep].float().cpu().numpy()
            if self.cross_class_iou < 1.0 and len(keep) > 1:
                demoted = demote_cross_class(scores, cross_class_overlaps(masks, out["labels"][keep], self.cross_class_iou),
                                             self.cross_class_iou)
                order = np.flatnonzero(demoted >= thresh)
                order = order[np.argsort(-demoted[order], kind="stable")]
                if len(order) < len(keep) or (order != np.arange(len(keep))).any():
                    keep, masks = keep[torch.as_tensor(order, device=keep.device)], masks[order]
                scores = demoted[order]
            embeddings = None
            if self.embed:
                te = time.perf_counter()
                sel = np.flatnonzero(scores >= (-np.inf if embed_min_score is None else embed_min_score))
                picked = keep[torch.as_tensor(sel, device=keep.device)]
                weights = mask_weights(out["masks"][picked], out["boxes"][picked]) if len(picked) else None
                vectors = self._embed(frames[i], features, i, out["boxes"][picked], weights, masks[sel], sizes, padded)
                embeddings = np.full((len(keep), vectors.shape[1]), np.nan, dtype=np.float32)
                embeddings[sel] = vectors
                t_embed += time.perf_counter() - te
            labels = self._garment_id[out["labels"][keep].cpu().numpy()]
            results.append(Detections(out["boxes"][keep].float().cpu().numpy(), scores, labels,
                                      self.class_names, masks=masks, embeddings=embeddings, people=people))
        t3 = time.perf_counter()
        self.timings = {"preprocess": t1 - t0, "inference": t2 - t1, "postprocess": t3 - t2 - t_embed,
                        "embed": t_embed}
        return results

    @staticmethod
    def _people(out: dict[str, torch.Tensor], keep: torch.Tensor) -> Detections:
        masks = (out["masks"][keep, 0] > 0.5).cpu().numpy()
        return Detections(out["boxes"][keep].float().cpu().numpy(), out["scores"][keep].float().cpu().numpy(),
                          np.ones(len(keep), np.int64), (PERSON,), masks=masks)

    def _embed(self, rgb: np.ndarray, features: dict[str, torch.Tensor], index: int, boxes: torch.Tensor,
               weights: torch.Tensor | None, masks: np.ndarray, sizes: list, padded: tuple[int, int]) -> np.ndarray:
        """The stored vectors of the garments (boxes, masks) of image `index` of the batch."""
        return self.vectors_from_parts(*self._embed_parts(rgb, features, index, boxes, weights, masks, sizes, padded))

    def vectors_from_parts(self, appearance: np.ndarray, classes: np.ndarray, colours: np.ndarray) -> np.ndarray:
        """embed_regions(..., parts=True)'s three parts -> the stored vectors (whitened when shipped)."""
        if self.whitening is None:
            return combine(appearance, classes, colours)
        w = self.whitening
        return combine(w.apply(appearance), classes, colours, w.class_weight, w.colour_weight)

    def _embed_parts(self, rgb: np.ndarray, features: dict[str, torch.Tensor], index: int, boxes: torch.Tensor,
                     weights: torch.Tensor | None, masks: np.ndarray, sizes: list,
                     padded: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """closetai.vision.embed's three unit-length parts (appearance before whitening, class, colour)."""
        h, w = rgb.shape[:2]
        scale = (sizes[index][0] / h, sizes[index][1] / w)
        appearance = pool_garments(features, index, boxes, weights, scale, padded).cpu().numpy()
        n_colours = int(np.prod(HSV_BINS))
        if not len(boxes):
            return appearance, np.zeros((0, len(self.class_names)), np.float32), np.zeros((0, n_colours), np.float32)
        classes = class_probabilities(self.model, features, index, boxes, scale, sizes).cpu().numpy()
        colours = colour_histograms(rgb, masks)
        return appearance, classes, colours

    @torch.inference_mode()
    def embed_regions(self, rgb: np.ndarray, boxes: np.ndarray, masks: np.ndarray | None = None,
                      parts: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Embeddings of given regions of a photo (search by box; the evaluation's ground-truth masks):
        the backbone only, no detection. boxes (N, 4) xyxy pixels; masks (N, H, W) bool or None (whole
        box). -> (N, D) float32 unit rows, the same vectors predict_batch attaches to its detections;
        parts=True: the three parts instead (scripts/fit_embedding.py fits the whitening on them)."""
        image = self._to_tensor(rgb)
        image_list, _ = self.model.transform([image])
        features = self.model.backbone(image_list.tensors)
        self._tap.pop()  # the hooks fired too; drop their references
        box_np = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        box_t = torch.as_tensor(box_np, device=self.device)
        if masks is None:  # the whole box
            masks = np.zeros((len(box_np),) + rgb.shape[:2], dtype=bool)
            for m, (x1, y1, x2, y2) in zip(masks, box_np, strict=True):
                m[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = True
        masks = np.asarray(masks, dtype=bool)
        weights = mask_weights(torch.as_tensor(masks, device=self.device), box_t) if len(box_t) else None
        args = (rgb, features, 0, box_t, weights, masks, list(image_list.image_sizes),
                tuple(image_list.tensors.shape[-2:]))
        return self._embed_parts(*args) if parts else self._embed(*args)

    def __call__(self, rgb: np.ndarray, min_score: float | None = None) -> Detections:
        return self.predict_batch([rgb], min_score)[0]
