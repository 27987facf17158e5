"""Trend report pages: /report (charts inline as SVG + tables), /report.csv, /report.json, chart images.

Every route takes the same filters from the URL query (source (repeatable), since, until, kind,
min_score, period), so any view of the report is a link that can be shared. The numbers come from
closetai.insights.report.report_tables for the page, the CSV and the JSON alike.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from markupsafe import Markup
from werkzeug.exceptions import NotFound

from closetai.insights.charts import (
    CHARTS,
    ESTIMATE_CAPTION,
    chart_alt,
    has_estimates,
    render_chart,
    render_charts,
    warm_up,
)
from closetai.insights.report import (
    FREQ_NAMES,
    BadFilter,
    Report,
    ReportFilters,
    load_report,
    report_tables,
    to_csv,
    to_json,
)
from closetai.web.context import store

log = logging.getLogger(__name__)

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
TABLE_COLUMNS_COMPARISON = [("label", "class", "text"), ("share_a", "group 1 (estimated)", "pct"),
                            ("share_a_ci", "95 % interval", "ci"), ("share_b", "group 2 (estimated)", "pct"),
                            ("share_b_ci", "95 % interval", "ci"), ("difference", "difference", "pct"),
                            ("difference_ci", "95 % interval", "ci"), ("p_adjusted", "p (Holm)", "text"),
                            ("significant", "significant", "text"), ("trend", "rising / falling", "text")]
# Added to the popular table when the model has measured correction rates (closetai.insights.quantify).
ESTIMATE_COLUMNS = [("estimated_share", "estimated share (corrected)", "pct"),
                    ("estimated_share_ci", "95 % interval", "ci")]
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
        built = {"report": load_report(store(), filters, report_rates()), "charts": {}}
        with self.lock:
            entry = self.entries.setdefault(key, built)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return entry


def report_rates():
    """The correction rates for the estimated shares (closetai.insights.quantify): config REPORT_RATES (a Rates or
    a model file path), else those beside the served model's file; None (a logged warning) when missing
    or stale. Read once per app."""
    ext = current_app.extensions
    if "closetai.report_rates" not in ext:
        from closetai.insights.quantify import Rates, load_rates

        configured = current_app.config.get("REPORT_RATES")
        if isinstance(configured, Rates):
            ext["closetai.report_rates"] = configured
        else:
            model = configured or getattr(current_app.extensions["closetai.predictor"], "model_path", None)
            ext["closetai.report_rates"] = load_rates(model)
    return ext["closetai.report_rates"]


def _cache() -> _ReportCache:
    return current_app.extensions.setdefault("closetai.report_cache", _ReportCache())


def _report(filters: ReportFilters) -> Report:
    return _cache().entry(filters)["report"]


# Charts the second process draws on a cold page: ~0.3 s of the ~0.65 s the five take at 100k garments
# (bench/bench_report.py); the other three are drawn here meanwhile.
OFFLOADED_CHARTS = ("colours", "pairs")
CHART_PROCESS_TIMEOUT_S = 30.0
CHART_PROCESS_MAX_RESTARTS = 3  # in a row, without a chart drawn in between: then stop trying


class ChartProcess:
    """A second process that draws some of a cold report page's charts while this one draws the others.

    Why a process: matplotlib is pure Python under the GIL, so threads cannot put the page's charts on
    the machine's two cores; a process can. Spawned (not forked: the model and the server's threads live
    in this one) and warmed at start, so no request waits for it. One per server process, shared by its
    apps. Whenever it is not ready, broken, or late, the charts are drawn here: slower, never missing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future | None = None
        self._restarts = 0  # in a row; a process that cannot start at all must not be respawned forever

    def start(self) -> None:
        with self._lock:
            if self._pool is None and self._restarts <= CHART_PROCESS_MAX_RESTARTS:
                self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_start_chart_process,
                                                 initargs=(os.getpid(), warm_up))
                with _main_hidden():
                    self._ready = self._pool.submit(int)  # spawns it now; it warms up in the background

    def submit(self, report: Report, names: list[str], fmt: str) -> tuple[Future, ProcessPoolExecutor] | None:
        """(the charts as a future, the pool that runs them), or None when the process cannot take them
        now (draw them here)."""
        with self._lock:
            pool, ready = self._pool, self._ready
        if pool is None or ready is None or not ready.done() or ready.exception() is not None:
            if ready is not None and ready.done() and ready.exception() is not None:
                self.restart(pool)
            return None
        try:
            return pool.submit(render_charts, report, names, fmt), pool
        except RuntimeError:  # BrokenProcessPool (the process died) or shut down
            self.restart(pool)
            return None

    def drew(self) -> None:
        """A chart came back: the process works, so later failures start a fresh count."""
        self._restarts = 0

    def stop(self) -> None:
        """End the process now (server shutdown): killed, not waited for, since a chart in flight is
        worthless once no request waits for it. Without this a SIGTERM'd server left it running."""
        with self._lock:
            pool, self._pool, self._ready = self._pool, None, None
            self._restarts = CHART_PROCESS_MAX_RESTARTS + 1  # and no restart by a late request
        if pool is not None:
            _kill(pool)

    def restart(self, pool: ProcessPoolExecutor | None) -> None:
        """Drop a failed or stuck process (killed, not waited for) and start a fresh one in the background,
        unless CHART_PROCESS_MAX_RESTARTS in a row have failed: then every chart is drawn here."""
        with self._lock:
            if pool is None or self._pool is not pool:
                return
            self._pool = self._ready = None
            self._restarts += 1
            if self._restarts > CHART_PROCESS_MAX_RESTARTS:
                log.warning("the chart process failed %d times in a row; drawing every chart in the web "
                            "process from now on", self._restarts)
        _kill(pool)
        self.start()


def _start_chart_process(parent_pid: int, warm) -> None:
    """In the chart process: exit as soon as the server process is gone. A server killed with SIGKILL (or
    crashing) cannot stop it, and it would live on under PID 1 with multiprocessing's resource tracker.
    `warm` (warm_up) comes from the parent, pickled by name, so the function the parent sees is the one
    that runs."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="closetai-parent-watch", daemon=True).start()
    warm()


def _kill(pool: ProcessPoolExecutor) -> None:
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public API to kill a stuck one
    for process in processes:
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(2.0)


@contextmanager
def _main_hidden():
    """While the chart process is spawned: multiprocessing's spawn re-runs the parent's main script (or
    -m module) in the child so that objects defined there unpickle; everything the child needs lives in
    closetai. A script that calls create_app() at import time, with no `if __name__ == "__main__"`,
    would otherwise build a second app (and model, and server) inside the chart process."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        if "__spec__" in saved:
            main.__spec__ = None
        if "__file__" in saved:
            del main.__file__
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)


_CHART_PROCESS = ChartProcess()


def chart_process() -> ChartProcess:
    return _CHART_PROCESS


def _charts(entry: dict, names: list[str], fmt: str) -> dict[str, bytes]:
    """Charts of a cached report entry, drawing the missing ones (some in the chart process)."""
    charts, report = entry["charts"], entry["report"]
    missing = [n for n in names if (n, fmt) not in charts]
    away = [n for n in missing if n in OFFLOADED_CHARTS] if len(missing) > len(OFFLOADED_CHARTS) else []
    submitted = (chart_process().submit(report, away, fmt)
                 if away and current_app.config.get("REPORT_CHART_PROCESS") else None)
    if submitted is None:
        away = []
    for name in missing:
        if name not in away:
            charts[(name, fmt)] = render_chart(report, name, fmt)
    if submitted is not None:
        future, pool = submitted
        try:
            drawn = future.result(timeout=CHART_PROCESS_TIMEOUT_S)
            chart_process().drew()
        except Exception as exc:  # died, stuck, or raised: draw them here (a real chart bug raises again)
            log.warning("chart process failed (%s: %s); drawing %s here", type(exc).__name__, exc, ", ".join(away))
            chart_process().restart(pool)
            drawn = {name: render_chart(report, name, fmt) for name in away}
        charts.update({(name, fmt): svg for name, svg in drawn.items()})
    return {name: charts[(name, fmt)] for name in names}


def _chart(filters: ReportFilters, name: str, fmt: str) -> bytes:
    return _charts(_cache().entry(filters), [name], fmt)[name]


def _filters() -> ReportFilters:
    args = request.args
    return ReportFilters.parse(args.getlist("source"), args.get("since"), args.get("until"), args.get("kind"),
                               args.get("min_score"), args.get("period"), args.getlist("compare"))


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
        svgs = _charts(entry, list(CHARTS), "svg")
        for name, (_fn, title, caption) in CHARTS.items():
            if name == "popular" and has_estimates(report):
                caption = f"{caption} {ESTIMATE_CAPTION}"
            alt = chart_alt(report, name)
            charts[name] = {"title": title, "caption": caption, "alt": alt,
                            "svg": _inline_svg(svgs[name], alt, name)}
    tables = report_tables(report)
    if report.comparison is not None and report.comparison["difference"].notna().any():
        from closetai.insights.charts import chart_comparison

        alt = ("Difference in estimated share per class between " + " and ".join(filters.compare)
               + ", with 95 % intervals")
        charts["comparison"] = {"title": "Difference per class", "alt": alt, "caption": "",
                                "svg": _inline_svg(chart_comparison(report, "svg"), alt, "comparison")}
    return render_template(
        "report.html", error=None, report=report, filters=filters, query=query, args=request.args,
        sources=store().report_sources(), charts=charts, tables=tables,
        columns={**TABLE_COLUMNS, "comparison": TABLE_COLUMNS_COMPARISON,
                 **({"popular": TABLE_COLUMNS["popular"] + ESTIMATE_COLUMNS} if has_estimates(report) else {})},
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


# ---- outfits (issue 21) ---------------------------------------------------------------------------------
OUTFIT_ESTIMATE_NOTE = ("Estimated share: the share of outfits that truly are this set, corrected for the detector's "
                        "measured misses and false finds of each class (it assumes a class is found or missed "
                        "independently of the others, so no interval is given; see the README's Outfits).")


def _outfits():
    """(filters, Outfits), from a small cache keyed like the report's (filters + the data's version)."""
    from closetai.insights.outfits import load_outfits

    filters = _filters()
    cache = current_app.extensions.setdefault("closetai.outfits_cache", OrderedDict())
    key = (filters, store().report_version())
    with _OUTFITS_LOCK:
        if key in cache:
            cache.move_to_end(key)
            return filters, cache[key]
    outfits = load_outfits(store(), filters, report_rates())
    with _OUTFITS_LOCK:
        cache[key] = outfits
        while len(cache) > CACHE_ENTRIES:
            cache.popitem(last=False)
    return filters, outfits


_OUTFITS_LOCK = threading.Lock()


@bp.get("/report/outfits")
def outfits_page():
    try:
        filters, outfits = _outfits()
    except BadFilter as exc:
        return render_template("outfits.html", error=str(exc), outfits=None, args=request.args, query="",
                               sources=store().report_sources(), filtered=True, unit_plural="outfits",
                               estimate_note=OUTFIT_ESTIMATE_NOTE), 400
    return render_template("outfits.html", error=None, outfits=outfits, args=request.args,
                           query=urlencode(filters.query()), sources=store().report_sources(),
                           filtered=bool(filters.query()), estimate_note=OUTFIT_ESTIMATE_NOTE,
                           unit_plural="people" if outfits.basis == "people" else "outfits")


@bp.get("/report/outfits.csv")
def outfits_csv():
    from closetai.insights.outfits import to_csv as outfits_to_csv

    return Response(outfits_to_csv(_outfits()[1]), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="closetai-outfits.csv"'})


@bp.get("/report/outfits.json")
def outfits_json():
    from closetai.insights.outfits import to_json as outfits_to_json

    return Response(json.dumps(outfits_to_json(_outfits()[1]), default=str), mimetype="application/json")
