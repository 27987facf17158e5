"""Draw masks, boxes and labels: annotate(scene, detections) -> new RGB image (supervision style)."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from closetai.vision.detections import Detections, mask_extent


def class_colour(class_id: int) -> tuple[int, int, int]:
    """Stable, well-separated RGB colour per class id (golden-ratio hue steps)."""
    h = (class_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def annotate(scene: np.ndarray, detections: Detections, masks: bool = True, boxes: bool = True,
             labels: bool = True, opacity: float = 0.45) -> np.ndarray:
    """scene: RGB uint8 HxWx3. Returns a copy with the detections drawn."""
    out = scene.copy()
    h, w = out.shape[:2]
    thickness = max(1, round(min(h, w) / 300))
    font_scale = max(0.4, min(h, w) / 1000)
    if masks and detections.masks is not None and len(detections):
        # Work inside each mask's extent only (a garment covers a few % of a 720p frame): the same pixels
        # as blending full-frame copies, ~Nx less memory traffic per frame of video.
        extents = [mask_extent(m) for m in detections.masks]
        drawn = [(m, cid, e) for m, cid, e in zip(detections.masks, detections.class_ids, extents, strict=True)
                 if e is not None]
        if drawn:
            y1 = min(e[0] for _m, _c, e in drawn)
            y2 = max(e[1] for _m, _c, e in drawn)
            x1 = min(e[2] for _m, _c, e in drawn)
            x2 = max(e[3] for _m, _c, e in drawn)
            region = out[y1:y2, x1:x2]
            overlay = region.copy()
            for m, cid, (a1, a2, b1, b2) in drawn:  # later masks paint over earlier ones, as before
                overlay[a1 - y1:a2 - y1, b1 - x1:b2 - x1][m[a1:a2, b1:b2]] = class_colour(int(cid))
            out[y1:y2, x1:x2] = cv2.addWeighted(overlay, opacity, region, 1 - opacity, 0)
            for m, cid, (a1, a2, b1, b2) in drawn:
                # one pixel of margin: a mask only touches the crop's edge where it touches the frame's
                a1, b1, a2, b2 = max(a1 - 1, 0), max(b1 - 1, 0), min(a2 + 1, h), min(b2 + 1, w)
                contours, _ = cv2.findContours(m[a1:a2, b1:b2].astype(np.uint8), cv2.RETR_EXTERNAL,
                                               cv2.CHAIN_APPROX_SIMPLE, offset=(b1, a1))
                cv2.drawContours(out, contours, -1, class_colour(int(cid)), thickness)
    for i in range(len(detections)):
        if boxes:
            x1, y1, x2, y2 = (int(round(v)) for v in detections.xyxy[i])
            cv2.rectangle(out, (x1, y1), (x2, y2), class_colour(int(detections.class_ids[i])), thickness)
    if labels and len(detections):
        # Most confident first, each where it covers no other label: a crowd of shoes or a group of
        # people otherwise piles its labels into one unreadable block.
        order = np.argsort(-np.asarray(detections.scores), kind="stable")
        placed: list[tuple[int, int, int, int]] = []
        for i in order:
            text = f"{detections.labels[i]} {detections.scores[i]:.2f}"
            if detections.track_ids is not None:
                text = f"#{detections.track_ids[i]} " + text
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
            spot = free_label_spot(detections.xyxy[i], tw + 4, th + base + 2, placed, w, h)
            if spot is None:
                continue
            lx, ly = spot
            placed.append((lx, ly, lx + tw + 4, ly + th + base + 2))
            cv2.rectangle(out, (lx, ly), (lx + tw + 4, ly + th + base + 2), class_colour(int(detections.class_ids[i])), -1)
            cv2.putText(out, text, (lx + 2, ly + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1,
                        cv2.LINE_AA)
    return out


def free_label_spot(box, tw: int, th: int, placed: list[tuple[int, int, int, int]], width: int,
                    height: int) -> tuple[int, int] | None:
    """Top-left corner for a tw x th label of `box` [x1, y1, x2, y2] that overlaps none of `placed`
    (x1, y1, x2, y2 rectangles), inside the image: above the box's top-left corner, else inside its
    top, lower down the box, below it, then the same at its right edge. None when nowhere is free (the
    label is left out; the list or JSON names every garment)."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    xs = [min(max(0, x1), max(0, width - tw)), min(max(0, x2 - tw), max(0, width - tw))]
    ys = [y1 - th, *range(y1, max(y1, y2 - th) + 1, max(1, th)), y2]
    for x in xs:
        for y in ys:
            y = min(max(0, y), max(0, height - th))
            if all(x + tw <= a or c <= x or y + th <= b or d <= y for a, b, c, d in placed):
                return x, y
    return None
