"""Similar items: the nearest stored garments to a stored one, or to a garment of an uploaded photo.

API:   GET  /api/v1/items/<id>/similar?k=20&same_class=1
       POST /api/v1/search   (multipart `file`; optional `index` of a detected garment or `box` "x1,y1,x2,y2";
                              `previews=1` adds the photo and each garment's crop as JPEG data URLs)
       GET  /api/v1/analyses/<id>/items   (item ids of an analysis' garments, for the result page's script)
Pages: GET /search (upload a photo, click a garment, see matches); crops by item id.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from flask import Blueprint, current_app, jsonify, render_template, request, url_for

from closetai.analysis.photo import crop_region, fit_long_side, jpeg_bytes
from closetai.insights.similar import MatchScale, SimilarItems
from closetai.media.imageio import load_rgb
from closetai.web.context import inference_lock, predictor, send_private, store
from closetai.web.forms import BadRequest, accepted_types, uploaded_photo

api = Blueprint("similar_api", __name__, url_prefix="/api/v1")
pages = Blueprint("similar", __name__)

MAX_K = 100
PREVIEW_SIDE, CROP_SIDE = 640, 160  # /search shows the photo and its garments from these (not stored)


def data_url(rgb: np.ndarray, max_side: int) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(rgb, quality=80, max_side=max_side)).decode()


def index() -> SimilarItems:
    """One in-memory index per app, for the loaded model's embeddings (built on first use)."""
    ext = current_app.extensions
    if "closetai.insights.similar" not in ext:
        p = predictor()
        model = p.info.get("embedding") or "none"
        scale = MatchScale.for_model(p.model_path, model) if getattr(p, "model_path", None) else None
        ext["closetai.insights.similar"] = SimilarItems(store(), model, scale=scale)
    return ext["closetai.insights.similar"]


def _same_class(default: bool = True) -> bool:
    raw = request.values.get("same_class")
    if raw in (None, ""):
        return default
    if raw not in ("0", "1", "true", "false"):
        raise BadRequest(f"same_class must be 0 or 1, got {raw[:20]!r}")
    return raw in ("1", "true")


def _k() -> int:
    raw = request.values.get("k")
    if raw in (None, ""):
        return 20
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"k must be an integer, got {raw[:20]!r}") from None
    if not 1 <= value <= MAX_K:
        raise BadRequest(f"k must be between 1 and {MAX_K}, got {value}")
    return value


def item_json(item: dict[str, Any], match=None) -> dict[str, Any]:
    """A stored garment with links to its crop and to its photo (or the clip at its best view)."""
    if item["kind"] == "photo":
        link = url_for("pages.result", analysis_id=item["analysis_id"]) + f"#item-{item['idx']}"
    else:
        link = url_for("video.by_analysis", analysis_id=item["analysis_id"])
        if item.get("time_s") is not None:
            link += f"#t={item['time_s']:.2f}"
    out = {"item_id": item["id"], "kind": item["kind"], "analysis_id": item["analysis_id"], "label": item["label"],
           "confidence": round(float(item["score"]), 4), "image": item["filename"], "source": item["source"],
           "colour": {"name": item["colour_name"], "hex": item["colour_hex"]},
           "crop": url_for("similar.item_crop", item_id=item["id"]) if item["crop_path"] else None,
           "url": link, "detection_index": item["idx"], "track_no": item["track_no"], "time_s": item["time_s"]}
    if match is not None:
        out["similarity"] = round(match.score, 4)  # whole-vector cosine: ranks the candidates
        if match.match is not None:
            out["match"] = round(match.match, 1)  # what pages show (closetai.insights.similar.MatchScale)
            out["look"] = round(match.look, 4)
    return out


MATCH_MEANING = ("match: the share (%) of pairs of different garments of the class in CCP training photos that "
                 "look less alike than this pair; the same garment seen again is usually above 90")


def _meaning() -> dict[str, str]:
    return {"match_meaning": MATCH_MEANING} if index().scale is not None else {}


def _results(matches) -> list[dict[str, Any]]:
    items = {it["id"]: it for it in store().get_items([m.item_id for m in matches])}
    return [item_json(items[m.item_id], m) for m in matches if m.item_id in items]


@api.get("/items/<int:item_id>")
def get_item(item_id: int):
    return jsonify(item_json(store().get_item(item_id)))


@api.get("/items/<int:item_id>/similar")
def similar(item_id: int):
    k, same_class = _k(), _same_class()
    item, matches = index().similar_to(item_id, k=k, same_class=same_class)
    return jsonify(item=item_json(item), k=k, same_class=same_class, index=index().index.name,
                   garments=len(index()), results=_results(matches), **_meaning())


@api.get("/analyses/<int:analysis_id>/items")
def analysis_items(analysis_id: int):
    store().get_analysis_row(analysis_id)  # 404 for an unknown analysis
    ids = store().items_of_analysis(analysis_id)
    return jsonify(detections={str(k): v for k, v in ids["detections"].items()},
                   tracks={str(k): v for k, v in ids["tracks"].items()})


def _parse_box(raw: str, width: int, height: int) -> np.ndarray:
    try:
        box = [float(v) for v in raw.split(",")]
    except ValueError:
        raise BadRequest(f"box must be four numbers x1,y1,x2,y2, got {raw[:40]!r}") from None
    if len(box) != 4 or not all(np.isfinite(box)):
        raise BadRequest(f"box must be four numbers x1,y1,x2,y2, got {raw[:40]!r}")
    x1, y1, x2, y2 = max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]), min(float(height), box[3])
    if x2 - x1 < 2 or y2 - y1 < 2:
        raise BadRequest(f"box {raw[:40]!r} is empty inside the {width}x{height} photo")
    return np.array([x1, y1, x2, y2], dtype=np.float32)


@api.post("/search")
def search():
    """Garments of an uploaded photo (not stored) and, for each (or the one chosen by `index`, or the
    region `box`), its k nearest stored garments."""
    k, same_class = _k(), _same_class()
    previews = request.values.get("previews", "0")
    if previews not in ("0", "1"):
        raise BadRequest(f"previews must be 0 or 1, got {previews[:20]!r}")
    raw_index, raw_box = request.values.get("index"), request.values.get("box")
    if raw_index not in (None, "") and raw_box not in (None, ""):
        raise BadRequest("give either index or box, not both")
    data, filename = uploaded_photo()
    rgb, _ = load_rgb(data, filename, max_pixels=current_app.config["MAX_PIXELS"])
    rgb = fit_long_side(rgb, current_app.config["ANALYSIS_MAX_SIDE"])
    p = predictor()
    with inference_lock():
        dets = p(rgb, min_score=current_app.config.get("MIN_SCORE"))
    if dets.embeddings is None:
        raise BadRequest("this model makes no embeddings; similar items are unavailable")
    queries: list[dict[str, Any]] = [
        {"index": i, "label": dets.labels[i], "confidence": round(float(dets.scores[i]), 4),
         "box": [round(float(v), 1) for v in dets.xyxy[i]], "vector": dets.embeddings[i]} for i in range(len(dets))]
    if raw_box not in (None, ""):
        box = _parse_box(raw_box, rgb.shape[1], rgb.shape[0])
        with inference_lock():
            vector = p.embed_regions(rgb, box[None])[0]
        label = None
        if len(dets):  # the class of the detected garment the box covers best, for same_class
            ix1, iy1 = np.maximum(dets.xyxy[:, 0], box[0]), np.maximum(dets.xyxy[:, 1], box[1])
            ix2, iy2 = np.minimum(dets.xyxy[:, 2], box[2]), np.minimum(dets.xyxy[:, 3], box[3])
            inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
            areas = (dets.xyxy[:, 2] - dets.xyxy[:, 0]) * (dets.xyxy[:, 3] - dets.xyxy[:, 1])
            iou = inter / ((box[2] - box[0]) * (box[3] - box[1]) + areas - inter)
            if iou.max() >= 0.5:
                label = dets.labels[int(iou.argmax())]
        if same_class and label is None:
            raise BadRequest("no detected garment covers this box; search it with same_class=0")
        queries = [{"index": None, "label": label, "confidence": None,
                    "box": [round(float(v), 1) for v in box], "vector": vector}]
    elif raw_index not in (None, ""):
        try:
            chosen = int(raw_index)
        except ValueError:
            raise BadRequest(f"index must be an integer, got {raw_index[:20]!r}") from None
        if not 0 <= chosen < len(dets):
            raise BadRequest(f"index {chosen} is out of range: the photo has {len(dets)} garments")
        queries = [queries[chosen]]
    out = []
    for q in queries:
        matches = index().search(q.pop("vector"), k, label=q["label"] if same_class else None)
        if previews == "1":
            q["crop"] = data_url(crop_region(rgb, np.array(q["box"])), CROP_SIDE)
        out.append({**q, "results": _results(matches)})
    extra = {"preview": data_url(rgb, PREVIEW_SIDE)} if previews == "1" else {}
    return jsonify(width=int(rgb.shape[1]), height=int(rgb.shape[0]), k=k, same_class=same_class,
                   garments=len(index()), queries=out, **_meaning(), **extra)


@pages.get("/items/<int:item_id>/crop.jpg")
def item_crop(item_id: int):
    return send_private(store().media_path(store().get_item(item_id)["crop_path"]), "image/jpeg")


@pages.get("/search")
def search_page():
    return render_template("search.html", max_mb=current_app.config["MAX_CONTENT_LENGTH"] / 1e6,
                           accept=accepted_types(), heic=current_app.config.get("HEIC_SUPPORTED", False))
