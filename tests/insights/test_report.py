"""Report aggregation on hand-built garments with known answers; charts render without pyplot."""

import io
import json
import re

import pandas as pd
import pytest

from closetai.insights.report import (
    build_report,
    chart_over_time,
    items_frame,
    pick_freq,
    render_chart,
    report_tables,
    to_csv,
    to_json,
)


def _rows():
    # analysis 1 (photo, Jan 1): jeans(navy) + top(white) + footwear x2 (black)
    # analysis 2 (photo, Jan 2): jeans(navy) + outerwear(beige)
    # analysis 3 (video, Jan 2): tracks: jeans(denim) + top(white)
    # analysis 4 (photo, Jan 3): nothing found (counts in n_analyses only)
    r = []

    def add(aid, kind, day, label, colour, score=0.9):
        r.append({"analysis_id": aid, "kind": kind, "source": "milan" if aid < 3 else "paris",
                  "captured_at": f"2026-01-0{day} 12:00", "label": label, "score": score,
                  "colour_name": colour, "colour_hex": "#000000"})

    add(1, "photo", 1, "jeans", "navy")
    add(1, "photo", 1, "top", "white")
    add(1, "photo", 1, "footwear", "black")
    add(1, "photo", 1, "footwear", "black")
    add(2, "photo", 2, "jeans", "navy")
    add(2, "photo", 2, "outerwear", "beige")
    add(3, "video", 2, "jeans", "denim")
    add(3, "video", 2, "top", "white")
    return r


@pytest.fixture
def report():
    return build_report(items_frame(_rows()), n_analyses=4)


def test_counts_and_shares(report):
    pop = report.popular.set_index("label")
    assert list(report.popular["label"]) == ["jeans", "footwear", "top", "outerwear"]
    assert pop.loc["jeans", "count"] == 3 and pop.loc["footwear", "count"] == 2
    assert pop.loc["jeans", "analyses_with"] == 3
    assert pop.loc["jeans", "share_of_analyses"] == 0.75  # 3 of 4 analyses, the empty one included
    assert pop.loc["footwear", "share_of_analyses"] == 0.25


def test_time_buckets_are_shares_of_each_day(report):
    assert report.freq == "D"
    day2 = report.over_time[report.over_time["period"] == "2026-01-02"].set_index("label")
    assert day2.loc["jeans", "count"] == 2 and day2.loc["jeans", "share"] == 0.5
    assert abs(day2["share"].sum() - 1.0) < 1e-6
    assert set(report.over_time["period"]) == {"2026-01-01", "2026-01-02"}


def test_week_and_month_buckets():
    df = items_frame(_rows())
    assert set(build_report(df, 4, freq="W").over_time["period"]) == {"2026-W01"}
    assert set(build_report(df, 4, freq="M").over_time["period"]) == {"2026-01"}
    spread = df.copy()
    spread.loc[0, "captured_at"] = pd.Timestamp("2024-06-01")
    assert pick_freq(spread["captured_at"]) == "M"


def test_colours_and_pairs(report):
    assert report.colours.loc["jeans", "navy"] == 2 and report.colours.loc["jeans", "denim"] == 1
    top = report.top_colours.set_index("colour_name")
    assert top.loc["navy", "count"] == 2 and top.loc["black", "count"] == 2 and top.loc["white", "count"] == 2
    pairs = {(a, b): n for a, b, n in report.pairs.itertuples(index=False)}
    assert pairs[("jeans", "top")] == 2  # photo 1 and clip 3
    assert pairs[("footwear", "jeans")] == 1
    assert ("footwear", "footwear") not in pairs


def test_csv_equals_what_the_charts_show(report):
    csv = pd.read_csv(io.StringIO(to_csv(report)))
    pop = csv[csv["table"] == "popular"]
    assert list(pop["label"]) == list(report.popular["label"])
    assert list(pop["count"]) == list(report.popular["count"])
    assert set(csv["table"]) == set(report_tables(report))
    data = to_json(report)
    json.dumps(data, default=str)
    assert data["garments"] == 8 and data["analyses"] == 4 and data["period"] == "day"


def test_empty_report_renders():
    empty = build_report(items_frame([]), n_analyses=0)
    assert empty.empty and empty.popular.empty and empty.pairs.empty
    assert to_json(empty)["garments"] == 0


@pytest.mark.parametrize("name", ["popular", "over_time", "colours", "top_colours", "pairs"])
def test_charts_render_svg_with_titles(report, name):
    svg = render_chart(report, name).decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_single_period_and_png():
    one = build_report(items_frame(_rows()[:4]), n_analyses=1)
    assert chart_over_time(one, fmt="png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_module_never_imports_pyplot_or_flask():
    import subprocess
    import sys

    code = ("import sys, closetai.insights.report as r; r.build_report(r.items_frame([]), 0); "
            "print('matplotlib.pyplot' in sys.modules, 'flask' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_charts_that_leave_classes_out_say_top_n_of_m():
    """11 classes over two days, 15 colours: the over-time chart draws 8 classes and the colour charts 12
    colours; their titles say so instead of dropping the rest silently (issue 20.15)."""
    rows = []
    for k in range(15):
        for day in (1, 2):
            rows.append({"analysis_id": day, "kind": "photo", "source": "s", "captured_at": f"2026-01-0{day} 12:00",
                         "label": f"class{k % 11}", "score": 0.9, "colour_name": f"colour{k}",
                         "colour_hex": "#123456"})
    report = build_report(items_frame(rows), n_analyses=2)
    assert "top 8 of 11 classes" in render_chart(report, "over_time").decode()
    assert "top 12 of 15 colours" in render_chart(report, "colours").decode()
    assert "top 12 of 15 colours" in render_chart(report, "top_colours").decode()
    few = build_report(items_frame(_rows()), n_analyses=4)  # 4 classes, 4 colours: nothing left out
    for name in ("over_time", "colours", "top_colours"):
        assert not re.search(r"top \d+ of \d+", render_chart(few, name).decode()), name
