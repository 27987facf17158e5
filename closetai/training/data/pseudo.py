"""Pseudo-labels for self-training (Noisy Student, Xie et al. 2020; Zoph et al. 2020), issue 16 section 3.

The unlabelled CCP photos with image-level tags (closetai.training.data.tags, split "selftrain") are labelled by the
current model with test-time augmentation: each photo is seen as it is, mirrored, and at a larger scale;
the views' detections of a class are matched by mask IoU and fused (score: the mean over ALL views, so a
garment found in one view only scores low; mask: the pixels most views agree on). A fused instance is
kept when its class is tagged in the photo and its score passes the threshold, which `choose_threshold`
picks on labelled photos of the selection split (never the validation split). As in CCP's own labels,
each garment class is one instance per photo except footwear (one per shoe).

A photo where a tagged large garment (MUST_FIND) got no instance is left out: its unlabelled garment would
train as background, teaching the model to miss exactly the classes it already misses (tops, sweaters).
The person silhouette, which the photos have no label for, is GrabCut (OpenCV) grown from the kept
garments: on labelled training photos, seeded by their true garments, it matches the true silhouette
with mean IoU 0.89 (0.81 for the garments alone).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from closetai.vision.detections import mask_extent
from closetai.vision.taxonomy import CCP15_SPLIT_COMPONENTS


@dataclass
class PseudoInstance:
    label: str
    score: float
    mask: np.ndarray  # (H, W) bool
    views: int  # in how many views it was found


# A view's detection below this cannot lift a fused score over any threshold worth choosing (the fused
# score is the sum over views / the number of views); skipping them saves pasting and matching ~40 masks.
VIEW_MIN_SCORE = 0.15


def _views(predictor, rgb: np.ndarray, large_size: int):
    """(detections, undo) for each test-time view: as is, mirrored, larger."""
    base = predictor.model.transform.min_size
    yield predictor(rgb, min_score=VIEW_MIN_SCORE), lambda m: m
    yield predictor(np.ascontiguousarray(rgb[:, ::-1]), min_score=VIEW_MIN_SCORE), lambda m: m[:, :, ::-1]
    predictor.model.transform.min_size = (large_size,)
    try:
        yield predictor(rgb, min_score=VIEW_MIN_SCORE), lambda m: m
    finally:
        predictor.model.transform.min_size = base


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Mask IoU, computed inside the masks' joint extent (a full-photo pass per pair was the cost)."""
    ea, eb = mask_extent(a), mask_extent(b)
    if ea is None or eb is None:
        return 0.0
    y1, y2, x1, x2 = min(ea[0], eb[0]), max(ea[1], eb[1]), min(ea[2], eb[2]), max(ea[3], eb[3])
    if max(ea[0], eb[0]) >= min(ea[1], eb[1]) or max(ea[2], eb[2]) >= min(ea[3], eb[3]):
        return 0.0
    a, b = a[y1:y2, x1:x2], b[y1:y2, x1:x2]
    inter = np.logical_and(a, b).sum()
    return float(inter) / max(float(np.logical_or(a, b).sum()), 1.0)


def fuse_views(view_dets: list, n_views: int, match_iou: float = 0.5) -> list[PseudoInstance]:
    """Cluster the views' detections of each class by mask IoU (greedy, best score first), one detection
    per view per cluster; fused score = sum of scores / n_views, mask = majority of the cluster's masks."""
    items = []
    for v, dets in enumerate(view_dets):
        for i in range(len(dets)):
            items.append((float(dets.scores[i]), v, dets.labels[i], dets.masks[i]))
    items.sort(key=lambda t: -t[0])
    clusters: list[dict] = []
    for score, v, label, mask in items:
        for c in clusters:
            if c["label"] == label and v not in c["views"] and _iou(c["masks"][0], mask) >= match_iou:
                c["views"].add(v)
                c["scores"].append(score)
                c["masks"].append(mask)
                break
        else:
            clusters.append({"label": label, "views": {v}, "scores": [score], "masks": [mask]})
    out = []
    for c in clusters:
        votes = np.sum(c["masks"], axis=0)
        mask = votes * 2 > len(c["masks"])
        if mask.any():
            out.append(PseudoInstance(c["label"], sum(c["scores"]) / n_views, mask, len(c["views"])))
    return out


def pseudo_label(predictor, rgb: np.ndarray, large_size: int = 544) -> list[PseudoInstance]:
    """All fused test-time-augmented instances of a photo (no threshold, no tags yet)."""
    view_dets = []
    for dets, undo in _views(predictor, rgb, large_size):
        if dets.masks is not None and len(dets):
            dets.masks = undo(dets.masks)
        view_dets.append(dets)
    return fuse_views(view_dets, len(view_dets))


def select_instances(instances: list[PseudoInstance], tagged: frozenset[str], threshold: float,
                     max_footwear: int = 4) -> list[PseudoInstance]:
    """Tagged classes only, above the threshold; one instance per class (footwear: up to max_footwear),
    CCP's instance rule; later ones lose the pixels of earlier, more confident ones."""
    kept: list[PseudoInstance] = []
    taken = None
    for inst in sorted(instances, key=lambda i: -i.score):
        if inst.label not in tagged or inst.score < threshold:
            continue
        same = sum(1 for k in kept if k.label == inst.label)
        if same >= (max_footwear if inst.label in CCP15_SPLIT_COMPONENTS else 1):
            continue
        mask = inst.mask if taken is None else inst.mask & ~taken
        if mask.sum() < 100:
            continue
        kept.append(PseudoInstance(inst.label, inst.score, mask, inst.views))
        taken = mask.copy() if taken is None else taken | mask
    return kept


# Garments large enough that leaving one unlabelled would teach a large region as background. The small
# items (bags, hats, sunglasses, belts, scarves) are often hidden or tagged for a wallet in a pocket; a
# photo missing one of them is still kept.
MUST_FIND = frozenset({"top", "sweater", "outerwear", "vest", "dress", "skirt", "trousers", "jeans", "shorts"})


def complete(kept: list[PseudoInstance], tagged: frozenset[str]) -> bool:
    """Every tagged large garment class has an instance (else the photo would teach a missed garment as
    background)."""
    return (tagged & MUST_FIND) <= {k.label for k in kept}


def silhouette_from_garments(rgb: np.ndarray, garments: np.ndarray, work_scale: float = 0.5) -> np.ndarray:
    """A person's silhouette grown from their garments' pixels with GrabCut: sure foreground inside the
    garments, probable foreground around them and above (head, arms), background outside that box."""
    h, w = garments.shape
    ys, xs = np.nonzero(garments)
    if not len(ys):
        return garments.copy()
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    bw, bh = x1 - x0, y1 - y0
    mask = np.full((h, w), cv2.GC_BGD, np.uint8)
    mask[max(0, int(y0 - 0.25 * bh)):min(h, int(y1 + 0.05 * bh)), max(0, int(x0 - 0.15 * bw)):min(w, int(x1 + 0.15 * bw))] = cv2.GC_PR_BGD
    grown = cv2.dilate(garments.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    mask[grown & (mask == cv2.GC_PR_BGD)] = cv2.GC_PR_FGD
    mask[cv2.erode(garments.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)] = cv2.GC_FGD
    small = cv2.resize(rgb, None, fx=work_scale, fy=work_scale, interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST)
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    try:
        cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), small_mask, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # too few pixels of one kind to model: keep the garments
        return garments.copy()
    person = ((small_mask == cv2.GC_FGD) | (small_mask == cv2.GC_PR_FGD)).astype(np.uint8)
    return cv2.resize(person, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool) | garments


def match_quality(instances: list[PseudoInstance], target: dict, classes: tuple[str, ...],
                  thresholds: list[float]) -> dict[float, tuple[int, int, int]]:
    """For each threshold, (true positives, kept, ground-truth instances) of select_instances on a labelled
    photo whose tags are its true classes: a kept instance is right when it overlaps a ground-truth
    instance of its class by mask IoU >= 0.5."""
    gt = [(classes[int(label) - 1], m.astype(bool)) for label, m in zip(target["labels"], target["masks"], strict=True)
          if int(label) <= len(classes)]
    tagged = frozenset(c for c, _ in gt)
    out = {}
    for t in thresholds:
        kept = select_instances(instances, tagged, t)
        used, tp = set(), 0
        for k in kept:
            for j, (c, m) in enumerate(gt):
                if j not in used and c == k.label and _iou(k.mask, m) >= 0.5:
                    used.add(j)
                    tp += 1
                    break
        out[t] = (tp, len(kept), len(gt))
    return out


def choose_threshold(totals: dict[float, list[int]], beta: float = 0.5) -> tuple[float, dict[float, dict]]:
    """The threshold with the best F-beta (beta 0.5 weighs precision twice: a wrong pseudo-label teaches a
    mistake, a missing one only loses a photo) -> (threshold, per-threshold precision/recall/F)."""
    table = {}
    for t, (tp, kept, gt) in sorted(totals.items()):
        p, r = tp / max(kept, 1), tp / max(gt, 1)
        f = (1 + beta**2) * p * r / max(beta**2 * p + r, 1e-9)
        table[t] = {"precision": round(p, 4), "recall": round(r, 4), "f": round(f, 4), "kept": kept}
    best = max(table, key=lambda t: (table[t]["f"], t))
    return best, table
