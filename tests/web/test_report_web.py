"""Report queries on a real SQLite file with hand-built rows, and the /report page and exports.

No model is needed: analyses are stored through Store.add_analysis directly, with known answers.
"""

from __future__ import annotations

import io
import json
import re
from datetime import date, datetime
from html.parser import HTMLParser

import pandas as pd
import pytest

from closetai.insights.report import PERIODS, ReportFilters, build_report, load_report, report_tables
from closetai.storage.store import NewAnalysis, NewTrack, Store
from closetai.web.report import TABLE_COLUMNS
from tests.report_helpers import NoModel, det, photo, seed_many


def seed_known(store: Store) -> None:
    """A1 photo milan Jan 1: jeans .9, top .4, footwear .8 | A2 photo paris Jan 5: jeans .7, outerwear .95
    A3 video milan Jan 3 15:00: track jeans (best .85, 5 detections), track top (best .6, 3 detections)
    A4 photo milan Jan 2: nothing found."""
    store.add_analysis(photo("milan", "2026-01-01 10:00", "a1"),
                       [det("jeans", .9), det("top", .4, "white"), det("footwear", .8, "black")])
    store.add_analysis(photo("paris", "2026-01-05 09:00", "a2"),
                       [det("jeans", .7, "denim"), det("outerwear", .95, "beige")])
    clip = NewAnalysis(kind="video", filename="c.mp4", sha256="a3", width=720, height=1280,
                       captured_at=datetime(2026, 1, 3, 15), source="milan", duration_s=10, fps=5, frame_count=50)
    tracks = [NewTrack(1, "jeans", 0, 4, 5, .85, "navy", "#123456"), NewTrack(2, "top", 1, 3, 3, .6, "white", "#ffffff")]
    dets = [det("jeans", .5 + .07 * i, track_no=1, frame_index=i) for i in range(5)]
    dets += [det("top", .6, "white", track_no=2, frame_index=i) for i in range(3)]
    store.add_analysis(clip, dets, tracks)
    store.add_analysis(photo("milan", "2026-01-02 12:00", "a4"), [])


@pytest.fixture
def known(store):
    seed_known(store)
    return store


def counts(store: Store, **filters) -> tuple[int, int, dict[str, int]]:
    items = store.report_items(**filters)
    n = store.report_count_analyses(**{k: v for k, v in filters.items() if k != "min_score"})
    return len(items), n, items["label"].value_counts().to_dict()


def test_all_garments_video_tracks_once(known):
    n_items, n_analyses, by_label = counts(known)
    assert (n_items, n_analyses) == (7, 4)
    assert by_label == {"jeans": 3, "top": 2, "footwear": 1, "outerwear": 1}  # 5 jeans detections, 1 track
    items = known.report_items()
    video = items[items["kind"] == "video"].set_index("label")
    assert video.loc["jeans", "score"] == pytest.approx(.85)  # the track's best score, not a detection's
    assert list(items.columns) == ["analysis_id", "kind", "source", "captured_at", "label", "score",
                                   "colour_name", "colour_hex"]


@pytest.mark.parametrize("filters, expected", [
    ({"sources": ["milan"]}, (5, 3)),
    ({"sources": ["paris"]}, (2, 1)),
    ({"sources": ["milan", "paris"]}, (7, 4)),
    ({"sources": ["nowhere"]}, (0, 0)),
    ({"since": date(2026, 1, 3)}, (4, 2)),
    ({"until": date(2026, 1, 3)}, (5, 3)),  # inclusive: the clip at 15:00 on Jan 3 counts
    ({"since": date(2026, 1, 2), "until": date(2026, 1, 2)}, (0, 1)),  # the empty photo only
    ({"kind": "video"}, (2, 1)),
    ({"kind": "photo"}, (5, 3)),
    ({"min_score": .75}, (4, 4)),  # analyses without garments above it still count as analysed
    ({"kind": "video", "min_score": .7}, (1, 1)),
])
def test_each_filter_changes_the_counts(known, filters, expected):
    n_items, n_analyses, _ = counts(known, **filters)
    assert (n_items, n_analyses) == expected


def test_sources_for_the_form(known):
    known.add_analysis(photo("", "2026-01-06 10:00", "a5"), [])
    assert known.report_sources() == ["milan", "paris"]


def test_filters_parse_and_reject():
    f = ReportFilters.parse(["milan", " milan ", ""], "2026-01-01", "2026-01-31", "Photo", "0.5", "week")
    assert f == ReportFilters(("milan",), date(2026, 1, 1), date(2026, 1, 31), "photo", 0.5, "week")
    assert dict(f.query())["min_score"] == "0.5"
    assert ReportFilters.parse() == ReportFilters()
    from closetai.insights.report import BadFilter

    for bad in [dict(since="2026-13-01"), dict(until="yesterday"), dict(min_score="1.5"), dict(min_score="-0.1"),
                dict(min_score="nan"), dict(min_score="high"), dict(kind="gif"), dict(period="year"),
                dict(since="2026-02-01", until="2026-01-01")]:
        with pytest.raises(BadFilter):
            ReportFilters.parse(**bad)


def test_load_report_applies_min_score_and_period(known):
    r = load_report(known, ReportFilters(min_score=.75, period="month"))
    assert r.n_items == 4 and r.n_analyses == 4 and r.freq == "M"
    assert r.filters["min_score"] == .75


@pytest.mark.parametrize("filters", [ReportFilters(), ReportFilters(("milan",), min_score=.6, period="week"),
                                     ReportFilters(kind="video"), ReportFilters(kind="photo", period="month"),
                                     ReportFilters(("nowhere",))])
def test_sql_grouping_equals_pandas_grouping(store, filters):
    """load_report groups in SQL (Store.report_counts); build_report groups the same rows in pandas."""
    seed_known(store)
    seed_many(store)
    args = filters.store_args()
    items = store.report_items(**args, min_score=filters.min_score)
    expected = build_report(items, store.report_count_analyses(**args),
                            freq=PERIODS.get(filters.period or ""), filters=filters.describe())
    got = load_report(store, filters)
    assert (got.n_items, got.n_analyses, got.freq) == (expected.n_items, expected.n_analyses, expected.freq)
    for name, table in report_tables(expected).items():
        pd.testing.assert_frame_equal(report_tables(got)[name], table, obj=name)
    pd.testing.assert_frame_equal(got.colours, expected.colours)


# ---- web ----------------------------------------------------------------------------------------

@pytest.fixture
def predictor():
    return NoModel()


@pytest.fixture
def make_client(make_app):
    def make():
        app = make_app()
        return app, app.test_client()
    return make


class Tables(HTMLParser):
    """Collects data-value of each cell of each <table data-table=...>, and counts <svg> elements."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current = None
        self.svgs = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "data-table" in a:
            self.current = self.tables.setdefault(a["data-table"], [])
        elif tag == "tr" and self.current is not None:
            self.current.append([])
        elif tag == "td" and self.current is not None:
            self.current[-1].append(a["data-value"])
        elif tag == "svg":
            self.svgs += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self.current = None


def parse_page(html: str) -> Tables:
    p = Tables()
    p.feed(html)
    p.tables = {k: [r for r in v if r] for k, v in p.tables.items()}  # drop the header rows
    return p


def test_report_page_with_no_analyses(make_client):
    _app, client = make_client()
    r = client.get("/report")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "No analyses yet" in html and "closetai ingest" in html
    assert "<svg" not in html
    assert json.loads(client.get("/report.json").data)["garments"] == 0
    assert 'href="/report"' in client.get("/").get_data(as_text=True)  # linked in the nav


def test_report_page_with_one_analysis(make_client):
    app, client = make_client()
    app.extensions["closetai.storage.store"].add_analysis(photo("milan", "2026-01-01 10:00", "one"),
                                                   [det("jeans", .9), det("top", .8, "white")])
    html = client.get("/report").get_data(as_text=True)
    page = parse_page(html)
    assert page.svgs == 5  # popular, over time, top colours, heatmap, pairs
    assert page.tables["popular"] == [["jeans", "1", "1", "1.0"], ["top", "1", "1", "1.0"]]
    assert page.tables["pairs"] == [["jeans", "top", "1"]]
    assert 'role="img"' in html and "<title id=\"chart-popular-alt\">Bar chart of garments per class" in html
    assert "<?xml" not in html  # the SVG prologue is stripped before inlining
    assert 'id="one-period"' in html  # one capture day: the page says why the time chart is flat


def test_no_garments_found_explains_itself(make_client):
    app, client = make_client()
    app.extensions["closetai.storage.store"].add_analysis(photo("milan", "2026-01-01 10:00", "empty"), [])
    html = client.get("/report").get_data(as_text=True)
    assert "No garments to count" in html and "1 analysis match" in html
    html = client.get("/report?source=paris").get_data(as_text=True)
    assert "No photos or clips match these filters" in html


def test_many_analyses_csv_equals_json_equals_page(make_client):
    app, client = make_client()
    seed_many(app.extensions["closetai.storage.store"])
    query = "?source=milan&min_score=0.6&period=week"
    html = client.get("/report" + query).get_data(as_text=True)
    assert 'id="one-period"' not in html
    page = parse_page(html)
    csv = pd.read_csv(io.StringIO(client.get("/report.csv" + query).get_data(as_text=True)), dtype=str,
                      keep_default_na=False)
    data = json.loads(client.get("/report.json" + query).data)
    assert data["filters"]["sources"] == ["milan"] and data["period"] == "week"
    expected = report_tables(load_report(app.extensions["closetai.storage.store"],
                                         ReportFilters(("milan",), min_score=.6, period="week")))
    assert page.svgs == 5
    for name, cols in TABLE_COLUMNS.items():
        keys = [c for c, _h, _k in cols]
        from_csv = csv[csv["table"] == name][keys].values.tolist()
        from_json = [[str(row[k]) for k in keys] for row in data[name]]
        from_report = [[str(v) for v in row] for row in expected[name][keys].values.tolist()]
        assert len(from_report) > 0, name
        assert page.tables[name] == from_json == from_report, name
        # pandas writes floats like 1.0 the same way str() does; ints as ints
        assert from_csv == from_report, name
    total = sum(int(r[1]) for r in page.tables["popular"])
    assert total == data["garments"] < 40 * 3  # the source and score filters removed some


def test_filters_stay_in_the_links(make_client):
    app, client = make_client()
    seed_many(app.extensions["closetai.storage.store"], n=10)
    html = client.get("/report?source=paris&kind=photo&since=2026-03-02").get_data(as_text=True)
    assert 'id="share-link"' in html
    link = re.search(r'href="([^"]+)" id="share-link"', html).group(1)
    assert "source=paris" in link and "kind=photo" in link and "since=2026-03-02" in link
    assert "/report.csv?source=paris" in html
    assert re.search(r'/report/charts/popular\.png\?source=paris[^"]*download=1', html)
    assert '<option value="paris" selected>' in html


def test_chart_downloads(make_client):
    app, client = make_client()
    seed_many(app.extensions["closetai.storage.store"], n=10)
    svg = client.get("/report/charts/colours.svg?kind=photo")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    png = client.get("/report/charts/over_time.png?download=1")
    assert png.data[:8] == b"\x89PNG\r\n\x1a\n" and "attachment" in png.headers["Content-Disposition"]
    empty = client.get("/report/charts/pairs.svg?source=nowhere")
    assert empty.status_code == 200 and b"no garments match" in empty.data
    assert client.get("/report/charts/nope.svg").status_code == 404
    assert client.get("/report/charts/popular.gif").status_code == 404


@pytest.mark.parametrize("url, words", [
    ("/report?since=2026-13-01", "is not a date"),
    ("/report?min_score=1.5", "between 0 and 1"),
    ("/report?kind=gif", "unknown media type"),
    ("/report.json?min_score=abc", "not a number"),
    ("/report.csv?until=soon", "is not a date"),
    ("/report/charts/popular.svg?kind=audio", "unknown media type"),
])
def test_bad_filters_are_400(make_client, url, words):
    _app, client = make_client()
    r = client.get(url)
    assert r.status_code == 400
    if url.startswith("/report?"):
        html = r.get_data(as_text=True)
        assert "text/html" in r.content_type and words in html and 'id="filters"' in html
    else:
        assert r.is_json and words in r.get_json()["error"]


def test_cached_report_follows_new_and_deleted_analyses(make_client):
    app, client = make_client()
    s = app.extensions["closetai.storage.store"]
    s.add_analysis(photo("milan", "2026-01-01 10:00", "c1"), [det("jeans", .9)])
    assert client.get("/report.json").get_json()["garments"] == 1
    assert client.get("/report.json").get_json()["garments"] == 1  # served from the cache
    new_id = s.add_analysis(photo("milan", "2026-01-02 10:00", "c2"), [det("top", .9), det("jeans", .8)])
    assert client.get("/report.json").get_json()["garments"] == 3
    s.delete_analysis(new_id)
    data = client.get("/report.json").get_json()
    assert data["garments"] == 1 and data["analyses"] == 1


def test_a_second_process_draws_part_of_a_cold_page_and_a_dead_one_is_replaced(make_client, monkeypatch):
    """The chart process (REPORT_CHART_PROCESS, on by default) draws the offloaded charts, byte for byte
    what this process would; killed, the next page is drawn here in full and a fresh process starts."""
    import os
    import signal
    import time

    import closetai.web.report as web_report
    from closetai.insights.report import CHARTS, render_chart

    app, client = make_client()
    store = app.extensions["closetai.storage.store"]
    seed_many(store)
    proc = web_report.chart_process()
    proc.start()
    proc._ready.result(timeout=60)
    drawn_here = []
    monkeypatch.setattr(web_report, "render_chart",
                        lambda report, name, fmt="svg": drawn_here.append(name) or render_chart(report, name, fmt))
    assert parse_page(client.get("/report").get_data(as_text=True)).svgs == 5
    assert sorted(drawn_here) == sorted(set(CHARTS) - set(web_report.OFFLOADED_CHARTS))
    report = load_report(store)
    for name in web_report.OFFLOADED_CHARTS:  # served from the cache the page filled
        assert client.get(f"/report/charts/{name}.svg").data == render_chart(report, name, "svg"), name

    pid = next(iter(proc._pool._processes))
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    app.extensions.pop("closetai.report_cache")
    drawn_here.clear()
    assert parse_page(client.get("/report").get_data(as_text=True)).svgs == 5
    assert sorted(drawn_here) == sorted(CHARTS)
    proc._ready.result(timeout=60)
    assert pid not in proc._pool._processes
    app.extensions.pop("closetai.report_cache")
    drawn_here.clear()
    assert parse_page(client.get("/report").get_data(as_text=True)).svgs == 5
    assert len(drawn_here) == len(CHARTS) - len(web_report.OFFLOADED_CHARTS)  # the fresh one is used


def test_a_script_that_builds_the_app_at_import_time_is_not_rerun_in_the_chart_process(tmp_path):
    """multiprocessing's spawn re-runs the parent's main script in the child; the chart process must not
    (a second app, model and server in it). The script below has no __main__ guard on purpose."""
    import subprocess
    import sys

    from tests.helpers import REPO

    marker = tmp_path / "imports.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(f"""
import json, os, sys
sys.path.insert(0, {str(REPO)!r})
with open({str(marker)!r}, "a") as f:
    f.write(f"{{os.getpid()}}\\n")
from app import create_app
import closetai.web.report as web_report
from closetai.insights.report import render_chart
from tests.report_helpers import NoModel, seed_many
app = create_app({{"TESTING": True, "PREDICTOR": NoModel(), "INSTANCE_PATH": {str(tmp_path / "instance")!r}}})
seed_many(app.extensions["closetai.storage.store"])
web_report.chart_process()._ready.result(timeout=60)
here = []
web_report.render_chart = lambda report, name, fmt="svg": here.append(name) or render_chart(report, name, fmt)
html = app.test_client().get("/report").get_data(as_text=True)
print(json.dumps({{"svgs": html.count("<svg "), "here": sorted(here)}}))
""")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["svgs"] == 5 and result["here"] == ["over_time", "popular", "top_colours"]
    assert len(marker.read_text().split()) == 1  # only the parent ran the script


def _failing_warm_up():
    raise RuntimeError("simulated: the chart process cannot start")


def test_a_chart_process_that_cannot_start_is_given_up_after_a_few_tries(make_client, monkeypatch):
    import closetai.web.report as web_report

    proc = web_report.ChartProcess()
    monkeypatch.setattr(web_report, "_CHART_PROCESS", proc)
    monkeypatch.setattr(web_report, "warm_up", _failing_warm_up)  # the child imports it from this module
    app, client = make_client()
    seed_many(app.extensions["closetai.storage.store"])
    for _ in range(web_report.CHART_PROCESS_MAX_RESTARTS + 3):
        if proc._ready is not None:
            with pytest.raises(Exception):  # noqa: B017  (BrokenProcessPool: its initializer raised)
                proc._ready.result(timeout=60)
        app.extensions.pop("closetai.report_cache", None)
        assert parse_page(client.get("/report").get_data(as_text=True)).svgs == 5  # drawn here instead
    assert proc._pool is None and proc._restarts == web_report.CHART_PROCESS_MAX_RESTARTS + 1
    proc.start()
    assert proc._pool is None  # and not started again
