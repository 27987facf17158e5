"""HTML pages (upload, result, history) and id-based media routes.

Media is only ever found through a stored row's relative path (Store.media_path refuses anything
outside instance/media); no route takes a file name from the user.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, redirect, render_template, request, send_file, url_for

from closetai.analyse import annotated_png
from closetai.store import NotFound
from closetai.web import analysis_json, analysis_summary, class_colours, class_names, predictor, store
from closetai.web.api import create_photo_analysis

bp = Blueprint("pages", __name__)

HISTORY_PAGE = 24
MEDIA_MAX_AGE = 86400  # ids are never reused, so a day of caching is safe


def _accepted_types() -> str:
    types = ["image/jpeg", "image/png", "image/webp", ".jpg", ".jpeg", ".png", ".webp"]
    if current_app.config.get("HEIC_SUPPORTED"):
        types += ["image/heic", "image/heif", ".heic", ".heif"]
    return ",".join(types)


@bp.get("/")
def index():
    recent = store().list_analyses(limit=6)
    return render_template("index.html", accept=_accepted_types(), recent=[analysis_summary(r) for r in recent],
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
    return render_template("result.html", a=data, colours=colours, page_data={"analysis": data, "colours": colours})


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
    return send_file(store().media_path(relative), mimetype=mimetype, max_age=MEDIA_MAX_AGE, conditional=True)


@bp.get("/media/<int:analysis_id>/photo.jpg")
def photo(analysis_id: int):
    return _send_media(store().get_analysis_row(analysis_id)["photo_path"], "image/jpeg")


@bp.get("/media/<int:analysis_id>/thumb.jpg")
def thumb(analysis_id: int):
    return _send_media(store().get_analysis_row(analysis_id)["thumb_path"], "image/jpeg")


@bp.get("/media/<int:analysis_id>/crops/<int:idx>.jpg")
def crop(analysis_id: int, idx: int):
    return _send_media(store().get_detection(analysis_id, idx)["crop_path"], "image/jpeg")


@bp.get("/analyses/<int:analysis_id>/annotated.png")
def annotated(analysis_id: int):
    analysis = store().get_analysis(analysis_id)
    png = annotated_png(store(), analysis, class_names())
    return Response(png, mimetype="image/png", headers={
        "Content-Disposition": f'attachment; filename="closetai-{analysis_id}-annotated.png"',
        "Cache-Control": f"public, max-age={MEDIA_MAX_AGE}"})


@bp.get("/analyses/<int:analysis_id>.json")
def download_json(analysis_id: int):
    body = json.dumps(analysis_json(store().get_analysis(analysis_id)), indent=1)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="closetai-{analysis_id}.json"'})
