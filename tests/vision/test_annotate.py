"""annotate(): the crop-wise drawing equals the plain full-frame definition, pixel for pixel."""

from __future__ import annotations

import cv2
import numpy as np

from closetai.vision.annotate import annotate, class_colour
from closetai.vision.detections import Detections

NAMES = tuple(f"class{i}" for i in range(1, 16))


def full_frame_reference(scene: np.ndarray, d: Detections, opacity: float = 0.45) -> np.ndarray:
    """The definition: paint every mask on a full-size copy (later masks on top), blend once, outline each
    mask from the whole frame; then boxes and labels as annotate draws them (boxes/labels off here)."""
    out = scene.copy()
    thickness = max(1, round(min(out.shape[:2]) / 300))
    overlay = out.copy()
    for m, cid in zip(d.masks, d.class_ids, strict=True):
        overlay[m] = class_colour(int(cid))
    out = cv2.addWeighted(overlay, opacity, out, 1 - opacity, 0)
    for m, cid in zip(d.masks, d.class_ids, strict=True):
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, class_colour(int(cid)), thickness)
    return out


def test_masks_drawn_in_crops_equal_the_full_frame_definition():
    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = int(rng.integers(40, 300)), int(rng.integers(40, 300))
        scene = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        n = int(rng.integers(1, 6))
        masks = np.zeros((n, h, w), bool)
        for k in range(n):
            if rng.random() < 0.15:
                continue  # an empty mask
            y, x = int(rng.integers(-10, h - 5)), int(rng.integers(-10, w - 5))  # some touch the frame's edge
            masks[k, max(y, 0):y + int(rng.integers(3, h)), max(x, 0):x + int(rng.integers(3, w))] = True
            masks[k] &= rng.random((h, w)) < 0.95  # holes and ragged edges
        d = Detections(np.tile([0.0, 0.0, 1.0, 1.0], (n, 1)), rng.random(n), rng.integers(1, 16, n), NAMES,
                       masks=masks)
        got = annotate(scene, d, boxes=False, labels=False)
        assert (got == full_frame_reference(scene, d)).all(), trial
        assert (scene == annotate(scene, Detections.empty(NAMES, h, w))).all()


def test_labels_of_a_crowd_do_not_cover_each_other():
    """Six garments with the same box (a pile of shoes): every label stays whole, each in its class colour.
    Drawn at one spot, each label hid the one before it (issue 20.15)."""
    scene = np.full((300, 300, 3), 255, np.uint8)
    n = 6
    d = Detections([[100, 100, 170, 220]] * n, [0.9 - 0.05 * k for k in range(n)], list(range(1, n + 1)), NAMES)
    out = annotate(scene, d, masks=False, boxes=False)
    h, w = out.shape[:2]
    font_scale = max(0.4, min(h, w) / 1000)
    for k in range(n):
        (tw, th), base = cv2.getTextSize(f"{NAMES[k]} {d.scores[k]:.2f}", cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        seen = int(np.all(out == class_colour(k + 1), axis=2).sum())
        assert seen >= 0.5 * (tw + 4) * (th + base + 2), (k, seen)


def test_free_label_spot_never_overlaps_and_gives_up_when_full():
    from closetai.vision.annotate import free_label_spot

    rng = np.random.default_rng(3)
    placed = []
    for _ in range(40):
        x1, y1 = int(rng.integers(0, 180)), int(rng.integers(0, 180))
        spot = free_label_spot([x1, y1, x1 + 20, y1 + 20], 30, 12, placed, 200, 200)
        if spot is None:
            continue
        x, y = spot
        assert 0 <= x <= 170 and 0 <= y <= 188
        assert all(x + 30 <= a or c <= x or y + 12 <= b or dd <= y for a, b, c, dd in placed)
        placed.append((x, y, x + 30, y + 12))
    assert len(placed) >= 10
    assert free_label_spot([0, 0, 200, 200], 30, 12, [(0, 0, 200, 200)], 200, 200) is None
