"""Draw masks, boxes and labels: annotate(scene, detections) -> new RGB image (supervision style)."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from closetai.detections import Detections


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
        overlay = out.copy()
        for m, cid in zip(detections.masks, detections.class_ids, strict=True):
            overlay[m] = class_colour(int(cid))
        out = cv2.addWeighted(overlay, opacity, out, 1 - opacity, 0)
        for m, cid in zip(detections.masks, detections.class_ids, strict=True):
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, class_colour(int(cid)), thickness)
    for i in range(len(detections)):
        colour = class_colour(int(detections.class_ids[i]))
        x1, y1, x2, y2 = (int(round(v)) for v in detections.xyxy[i])
        if boxes:
            cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        if labels:
            text = f"{detections.labels[i]} {detections.scores[i]:.2f}"
            if detections.track_ids is not None:
                text = f"#{detections.track_ids[i]} " + text
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
            ty = max(y1, th + base + 2)
            cv2.rectangle(out, (x1, ty - th - base - 2), (x1 + tw + 4, ty), colour, -1)
            cv2.putText(out, text, (x1 + 2, ty - base), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1,
                        cv2.LINE_AA)
    return out
