"""Trend report pages: /report (charts inline as SVG + tables), /report.csv, /report.json, chart images.

Every route takes the same filters from the URL query (source (repeatable), since, until, kind,
min_score, period), so any view of the report is a link that can be shared. The numbers come from
closetai.report.report_tables for the page, the CSV and the JSON alike.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from markupsafe import Markup
from werkzeug.exceptions import NotFound

from closetai.report import (
    CHARTS,
    FREQ_NAMES,
    BadFilter,
    Report,
    ReportFilters,
    chart_alt,
    load_report,
    render_chart,
    report_tables,
    to_csv,
    to_json,
)
from closetai.web import store

bp = Blueprint("report", __name__)

# Table columns a person reads: (column, heading, format). Shares show as percentages on the page;
# data-value on each cell keeps the exact number the CSV and JSON carry.
TABLE_COLUMNS = {
    "popular": [("label", "class", "text"), ("count", "garments", "int"),
                ("analyses_with", "photos/clips with it", "int"), ("share_of_analyses", "share of photos/clips", "pct")],
    "over_time": [("period", "period", "text"), ("label", "class", "text"), ("count", "garments", "int"),
                  ("share", "share of the period's garments", "pct")],
    "colours": [("label", "class", "text"), ("colour_name", "colour", "text"), ("count", "garments", "int")],
    "top_colours": [("colour_name", "colour", "swatch"), ("count", "garments", "int"),
                    ("share", "share of garments", "pct")],
    "pairs": [("label_a", "class", "text"), ("label_b", "worn with", "text"),
              ("analyses", "photos/clips with both", "int")],
}
_XML_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)


CACHE_ENTRIES = 16


class _ReportCache:
    """Reports and rendered charts per (filters, store version), least recently used dropped first.

    With 100k stored detections the query, aggregation and charts take seconds on 2 cores; the data only
    changes when an analysis is added or deleted, which moves Store.report_version, so a hit is exact.
    """

    def __init__(self, size: int = CACHE_ENTRIES):
        self.size = size
        self.entries: OrderedDict[tuple, dict] = OrderedDict()
        self.lock = threading.Lock()

    def entry(self, filters: ReportFilters) -> dict:
        key = (filters, store().report_version())
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        # Built outside the lock: two first requests may both build it; one copy is kept.
        built = {"report": load_report(store(), filters), "charts": {}}
        with self.lock:
            entry = self.entries.setdefault(key, built)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return entry


def _cache() -> _ReportCache:
    return current_app.extensions.setdefault("closetai.report_cache", _ReportCache())


def _report(filters: ReportFilters) -> Report:
    return _cache().entry(filters)["report"]


def _chart(filters: ReportFilters, name: str, fmt: str, entry: dict | None = None) -> bytes:
    entry = entry or _cache().entry(filters)
    charts = entry["charts"]
    if (name, fmt) not in charts:
        charts[(name, fmt)] = render_chart(entry["report"], name, fmt)
    return charts[(name, fmt)]


def _filters() -> ReportFilters:
    args = request.args
    return ReportFilters.parse(args.getlist("source"), args.get("since"), args.get("until"), args.get("kind"),
                               args.get("min_score"), args.get("period"))


def _inline_svg(svg: bytes, alt: str, name: str) -> Markup:
    """matplotlib's SVG without its XML prologue, labelled for screen readers.

    Safe to inline: every string in it (class and colour names) went through matplotlib's XML escaping.
    """
    body = _XML_PROLOGUE.sub("", svg.decode("utf-8"), count=1)
    title = f'<title id="chart-{name}-alt">{Markup.escape(alt)}</title>'
    body = body.replace("<svg ", f'<svg role="img" aria-labelledby="chart-{name}-alt" ', 1)
    body = re.sub(r"(<svg[^>]*>)", lambda m: m.group(1) + title, body, count=1)
    return Markup(body)


@bp.errorhandler(BadFilter)
def _bad_filter(exc: BadFilter):
    if request.endpoint == "report.page":
        return render_template("report.html", error=str(exc), report=None, args=request.args,
                               sources=store().report_sources()), 400
    return jsonify(error=str(exc)), 400


@bp.get("/report")
def page():
    filters = _filters()
    entry = _cache().entry(filters)  # once: each lookup asks the database for report_version
    report = entry["report"]
    query = urlencode(filters.query())
    charts = {}
    if not report.empty:
        for name, (_fn, title, caption) in CHARTS.items():
            alt = chart_alt(report, name)
            charts[name] = {"title": title, "caption": caption, "alt": alt,
                            "svg": _inline_svg(_chart(filters, name, "svg", entry), alt, name)}
    tables = report_tables(report)
    return render_template(
        "report.html", error=None, report=report, filters=filters, query=query, args=request.args,
        sources=store().report_sources(), charts=charts, tables=tables, columns=TABLE_COLUMNS,
        period_name=FREQ_NAMES[report.freq], any_analyses=store().count_analyses() > 0,
        filtered=bool(filters.query()))


@bp.get("/report.csv")
def csv():
    report = _report(_filters())
    return Response(to_csv(report), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="closetai-report.csv"'})


@bp.get("/report.json")
def json_report():
    report = _report(_filters())
    # default=str: dates in the filters; everything else is plain numbers and strings.
    return Response(json.dumps(to_json(report), default=str), mimetype="application/json")


@bp.get("/report/charts/<name>.<fmt>")
def chart(name: str, fmt: str):
    if name not in CHARTS or fmt not in ("svg", "png"):
        raise NotFound()
    filters = _filters()
    mimetype = "image/svg+xml" if fmt == "svg" else "image/png"
    download = request.args.get("download") == "1"
    headers = {"Content-Disposition": f'attachment; filename="closetai-{name}.{fmt}"'} if download else {}
    return Response(_chart(filters, name, fmt), mimetype=mimetype, headers=headers)
