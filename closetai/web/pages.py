"""HTML pages (upload, result, history) and id-based media routes.

Media is only ever found through a stored row's relative path (Store.media_path refuses anything
outside instance/media); no route takes a file name from the user.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from closetai.analysis.photo import annotated_png
from closetai.storage.store import NotFound
from closetai.web.context import (
    MEDIA_CACHE_CONTROL,
    analysis_json,
    analysis_summary,
    class_colours,
    class_names,
    predictor,
    send_private,
    store,
)
from closetai.web.forms import BadRequest, accepted_types, create_photo_analysis

bp = Blueprint("pages", __name__)

HISTORY_PAGE = 24
# Under this many pixels on the short side the result page says the photo is too small to trust: the model
# scales every photo up to 448+ px, and a 40x40 one gives a blur with "0 items" and no reason.
SMALL_PHOTO_SIDE = 160


@bp.get("/")
def index():
    recent = store().list_analyses(limit=6)
    return render_template("index.html", accept=accepted_types(), recent=[analysis_summary(r) for r in recent],
                           heic=current_app.config.get("HEIC_SUPPORTED", False),
                           max_mb=current_app.config["MAX_CONTENT_LENGTH"] / 1e6, model=predictor().info)


@bp.post("/upload")
def upload():
    """Form fallback when JavaScript is off; the page's script posts to the API instead."""
    analysis_id = create_photo_analysis()
    return redirect(url_for("pages.result", analysis_id=analysis_id), code=303)


@bp.get("/analyses/<int:analysis_id>")
def result(analysis_id: int):
    analysis = store().get_analysis(analysis_id)
    if analysis["kind"] == "video":  # history lists videos too; their page lives under /videos
        return redirect(url_for("video.by_analysis", analysis_id=analysis_id))
    data = analysis_json(analysis)
    colours = class_colours()
    # tojson in the template escapes "<" etc., so a file name cannot close the <script> element.
    return render_template("result.html", a=data, colours=colours, page_data={"analysis": data, "colours": colours},
                           small_side=SMALL_PHOTO_SIDE)


@bp.get("/favicon.ico")
def favicon():
    """Pages link static/favicon.svg; this answers clients that ask for /favicon.ico regardless."""
    return redirect(url_for("static", filename="favicon.svg"), code=301)


@bp.get("/history")
def history():
    page = request.args.get("page", "1")
    # ASCII digits only ("²".isdigit() is true too) and short enough for int() and SQLite
    if not (page.isascii() and page.isdigit()) or len(page) > 18 or int(page) < 1:
        raise NotFound(f"no such history page: {page[:20]}")
    page_no = int(page)
    total = store().count_analyses()
    pages = max(1, -(-total // HISTORY_PAGE))
    if page_no > pages:
        raise NotFound(f"no such history page: {page_no} (there are {pages})")
    rows = store().list_analyses(limit=HISTORY_PAGE, offset=(page_no - 1) * HISTORY_PAGE)
    return render_template("history.html", rows=[analysis_summary(r) for r in rows], page=page_no, pages=pages,
                           total=total)


def _send_media(relative: str | None, mimetype: str):
    return send_private(store().media_path(relative), mimetype)


@bp.get("/media/<int:analysis_id>/photo.jpg")
def photo(analysis_id: int):
    return _send_media(store().get_analysis_row(analysis_id)["photo_path"], "image/jpeg")


@bp.get("/media/<int:analysis_id>/thumb.jpg")
def thumb(analysis_id: int):
    return _send_media(store().get_analysis_row(analysis_id)["thumb_path"], "image/jpeg")


@bp.get("/media/<int:analysis_id>/crops/<int:idx>.jpg")
def crop(analysis_id: int, idx: int):
    return _send_media(store().get_detection(analysis_id, idx)["crop_path"], "image/jpeg")


def _flag_arg(name: str) -> bool:
    raw = request.args.get(name, "1")
    if raw not in ("0", "1"):
        raise BadRequest(f"{name} must be 0 or 1, got {raw[:20]!r}")
    return raw == "1"


def _score_arg(name: str) -> float | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number between 0 and 1, got {raw[:20]!r}") from None
    if not 0 <= value <= 1:  # also refuses nan and inf
        raise BadRequest(f"{name} must be between 0 and 1, got {raw[:20]!r}")
    return value


@bp.get("/analyses/<int:analysis_id>/annotated.png")
def annotated(analysis_id: int):
    """?min_score=0.7&masks=0&boxes=1: the garments and layers the result page's slider and toggles show
    (its script keeps the download link's query in step with them)."""
    min_score, masks, boxes = _score_arg("min_score"), _flag_arg("masks"), _flag_arg("boxes")
    analysis = store().get_analysis(analysis_id)
    png = annotated_png(store(), analysis, class_names(), min_score=min_score, masks=masks, boxes=boxes)
    return Response(png, mimetype="image/png", headers={
        "Content-Disposition": f'attachment; filename="closetai-{analysis_id}-annotated.png"',
        "Cache-Control": MEDIA_CACHE_CONTROL})


@bp.get("/analyses/<int:analysis_id>.json")
def download_json(analysis_id: int):
    body = json.dumps(analysis_json(store().get_analysis(analysis_id)), indent=1)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="closetai-{analysis_id}.json"'})
