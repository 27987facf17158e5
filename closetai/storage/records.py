"""What callers hand the store to insert (NewAnalysis with its NewDetection and NewTrack rows), and
the decoding of a stored detection row."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class NewDetection:
    """One detection to store. `mask_rle` is the COCO RLE dict; `crop` optional JPEG bytes."""

    label: str
    score: float
    box: tuple[float, float, float, float]
    mask_rle: dict | None = None
    colour_name: str | None = None
    colour_hex: str | None = None
    colour_share: float | None = None
    area_share: float | None = None
    crop_jpeg: bytes | None = None
    frame_index: int | None = None
    time_s: float | None = None
    track_no: int | None = None  # video: links to the NewTrack with this track_no
    person: int | None = None  # photo: id of the person wearing it (NewAnalysis.people)
    embedding: Any = None  # (D,) float32 unit vector (closetai.vision.embed), photos only: a video's is its track's


@dataclass
class NewTrack:
    track_no: int
    label: str
    first_s: float
    last_s: float
    frames_seen: int
    best_score: float
    colour_name: str | None = None
    colour_hex: str | None = None
    crop_jpeg: bytes | None = None
    embedding: Any = None  # (D,) float32 unit vector of the best view


@dataclass
class NewAnalysis:
    kind: str
    filename: str
    sha256: str
    width: int
    height: int
    captured_at: datetime | None = None  # None: upload time
    source: str = ""
    model_name: str = ""
    taxonomy: str = ""
    min_score: float = 0.5
    files: dict[str, bytes] = field(default_factory=dict)  # {"photo": jpeg, "thumb": jpeg, "video": mp4}
    duration_s: float | None = None
    fps: float | None = None
    frame_count: int | None = None
    embedding_model: str = ""  # names the garments' embedding vectors (Predictor.embedding_model)
    people: list[dict] | None = None  # [{"id", "box", "score", "mask" (RLE)}] (closetai.vision.people)


def _detection_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    d = dict(row)
    d["mask_rle"] = json.loads(d["mask_rle"]) if d["mask_rle"] else None
    d["box"] = [d["x1"], d["y1"], d["x2"], d["y2"]]
    return d
