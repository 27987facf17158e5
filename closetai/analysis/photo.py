"""Photo analysis end to end: bytes -> image -> Detections -> colours, crops -> one stored analysis.

Shared by the web upload and (later) `closetai ingest`, so both store exactly the same thing.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from contextlib import nullcontext
from datetime import datetime
from typing import Any

import cv2
import numpy as np
from PIL import Image

from closetai.media.imageio import DEFAULT_MAX_PIXELS, load_rgb
from closetai.storage.store import NewAnalysis, NewDetection, Store
from closetai.vision.annotate import annotate
from closetai.vision.colour import dominant_colour
from closetai.vision.detections import Detections
from closetai.vision.people import assign_garments, people_json

THUMB_SIDE = 320
CROP_SIDE = 160
# The model looks at 512-1024 px anyway; pasting masks, colours and RLE at a phone's 12+ MP would cost
# seconds for nothing a person can see. Photos above this long side are analysed and stored downscaled.
ANALYSIS_MAX_SIDE = 1600


# C0 and C1 control characters (NUL, ESC, CR, LF...) and the Unicode bidirectional controls, with which a
# label can reorder the text around it on a page or in a CSV ("Trojan Source").
_UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(value: str | None, max_chars: int = 200) -> str:
    """User text fit to store and show (a source label, a file name): control and bidi characters
    removed (tabs and line breaks become spaces), whitespace collapsed, at most max_chars."""
    text = re.sub(r"[\t\r\n\v\f]", " ", value or "")
    text = re.sub(r"\s{2,}", " ", _UNSAFE_CHARS.sub("", text)).strip()
    return text[:max_chars]


def display_name(filename: str | None) -> str:
    """A file name fit for display: last path component, no control characters, bounded length.

    Only ever shown to people; media files are named by the store, never after the upload.
    """
    name = re.split(r"[\\/]", filename or "")[-1]
    return clean_text(name) or "upload"


def parse_exif_datetime(value: Any) -> datetime | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" -> datetime; None when absent or malformed (cameras write junk)."""
    if not value:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore")
    try:
        parsed = datetime.strptime(str(value).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return parsed if 1900 < parsed.year < 2200 else None


def jpeg_bytes(rgb: np.ndarray, quality: int = 90, max_side: int | None = None) -> bytes:
    img = Image.fromarray(rgb)
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def crop_region(rgb: np.ndarray, box: np.ndarray, pad: float = 0.08) -> np.ndarray:
    """The box [x1, y1, x2, y2] with 8% padding, clipped to the image (a 1x1 corner when empty)."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    px, py = (x2 - x1) * pad, (y2 - y1) * pad
    x1, y1 = max(0, int(x1 - px)), max(0, int(y1 - py))
    x2, y2 = min(w, int(np.ceil(x2 + px))), min(h, int(np.ceil(y2 + py)))
    if x2 <= x1 or y2 <= y1:
        return rgb[:1, :1]
    return rgb[y1:y2, x1:x2]


def describe(rgb: np.ndarray, dets: Detections) -> list[NewDetection]:
    """Per detection: dominant colour of its mask, mask area share, crop thumbnail, RLE mask."""
    area = float(rgb.shape[0] * rgb.shape[1])
    rles = dets.mask_rles()
    out = []
    for i in range(len(dets)):
        mask = dets.masks[i] if dets.masks is not None else None
        colour = dominant_colour(rgb, mask) if mask is not None else None
        out.append(NewDetection(
            label=dets.labels[i], score=round(float(dets.scores[i]), 4),
            box=tuple(round(float(v), 1) for v in dets.xyxy[i]),
            mask_rle=rles[i] if rles else None,
            colour_name=colour["name"] if colour else None, colour_hex=colour["hex"] if colour else None,
            colour_share=colour["share"] if colour else None,
            area_share=round(float(mask.sum()) / area, 5) if mask is not None else None,
            crop_jpeg=jpeg_bytes(crop_region(rgb, dets.xyxy[i]), quality=85, max_side=CROP_SIDE),
            embedding=dets.embeddings[i] if dets.embeddings is not None else None,
        ))
    return out


def fit_long_side(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (area interpolation) so the long side is at most max_side; 0/None keeps the size."""
    h, w = rgb.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def analyse_photo(data: bytes, filename: str | None, *, predictor, store: Store, source: str = "",
                  max_pixels: int = DEFAULT_MAX_PIXELS, min_score: float | None = None,
                  lock: threading.Lock | None = None, max_side: int | None = ANALYSIS_MAX_SIDE,
                  finish_job: int | None = None) -> int:
    """Decode, detect, describe and store one photo. Returns the new analysis id.

    Photos with a long side above `max_side` are analysed and stored at that size (width, height, boxes
    and masks all refer to the stored photo). Raises BadImage / ImageTooLarge (nothing stored) for input
    that is not a usable image. `lock` serialises inference: on a small CPU box two concurrent
    Mask R-CNN passes only thrash. `finish_job`: the queued job this analysis completes, marked done in
    the same transaction (Store.add_analysis), so a retried job cannot store the photo twice.
    """
    name = display_name(filename)
    rgb, info = load_rgb(data, name, max_pixels=max_pixels)
    rgb = fit_long_side(rgb, max_side)
    with lock or nullcontext():
        dets = predictor(rgb, min_score=min_score)
    described = describe(rgb, dets)
    assignment = assign_garments(dets, dets.people)
    for d, person in zip(described, assignment, strict=True):
        d.person = int(person) if person >= 0 else None
    people = [{k: v for k, v in p.items() if k != "garments"} for p in people_json(dets, assignment)]
    meta = getattr(predictor, "info", {})
    new = NewAnalysis(
        kind="photo", filename=name, sha256=hashlib.sha256(data).hexdigest(),
        width=int(rgb.shape[1]), height=int(rgb.shape[0]),
        captured_at=parse_exif_datetime(info.get("exif_datetime")), source=clean_text(source),
        model_name=meta.get("name", ""), taxonomy=meta.get("taxonomy", ""),
        min_score=float(predictor.min_score if min_score is None else min_score),
        embedding_model=meta.get("embedding", ""), people=people or None,
        files={"photo": jpeg_bytes(rgb, quality=90), "thumb": jpeg_bytes(rgb, quality=80, max_side=THUMB_SIDE)},
    )
    return store.add_analysis(new, described, finish_job=finish_job)


def stored_detections(analysis: dict[str, Any], class_names: tuple[str, ...]) -> Detections:
    """Rebuild Detections from a stored analysis; labels the model no longer knows are appended."""
    items = [{"label": d["label"], "score": d["score"], "box": d["box"], "mask": d["mask_rle"]}
             for d in analysis["detections"]]
    names = tuple(class_names) + tuple(sorted({it["label"] for it in items} - set(class_names)))
    dets = Detections.from_json(items, names)
    if dets.masks is None or not len(dets):
        dets.masks = np.zeros((len(dets), analysis["height"], analysis["width"]), dtype=bool)
    return dets


def annotated_png(store: Store, analysis: dict[str, Any], class_names: tuple[str, ...], *,
                  min_score: float | None = None, masks: bool = True, boxes: bool = True) -> bytes:
    """The stored photo with masks, boxes and labels drawn by closetai.vision.annotate, as PNG bytes: only the
    garments scoring at least min_score, masks and boxes (with their labels) each optional, as the result
    page's slider and toggles show them."""
    with Image.open(store.media_path(analysis["photo_path"])) as img:
        rgb = np.asarray(img.convert("RGB"))
    dets = stored_detections(analysis, class_names)
    if min_score is not None:
        dets = dets.filter(min_score)
    out = annotate(rgb, dets, masks=masks, boxes=boxes, labels=boxes)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
