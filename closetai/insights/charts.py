"""Trend report charts: each of closetai.insights.report's tables drawn as SVG or PNG bytes, with its alt
text (matplotlib's Figure API on an Agg canvas, never pyplot: pyplot keeps global state and leaks in a server).

closetai.insights.report re-exports every name here, so `from closetai.insights.report import render_chart`
keeps working; it imports this module, so the names this one needs from it are imported inside the
functions that use them (a module-level import would make the two a cycle).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING

import matplotlib
import pandas as pd
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from closetai.insights.report import Report

# Text stays text in the SVGs: glyphs as paths made a 15x25 heatmap ~1 MB and unselectable.
matplotlib.rcParams["svg.fonttype"] = "none"
# Fixed ids inside the SVGs (random per figure otherwise): the same report draws the same bytes, in
# this process or in the web app's chart process.
matplotlib.rcParams["svg.hashsalt"] = "closetai"


def _figure(width: float = 7.5, height: float = 3.6):
    # Figure + Agg canvas, never pyplot: pyplot keeps global state and leaks in a server.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _render(fig, fmt: str) -> bytes:
    # bbox_inches="tight" draws the whole figure once only to measure it, then again to save it: ~40%
    # of the chart time on /report. The tight box needs only the extents, which get_tightbbox works
    # out without a draw, here on the canvas's Agg renderer at the dpi the format is saved at (savefig
    # forces 72 for SVG). Agg's hinted text metrics move the SVG's margins by a point or two at most.
    if fmt == "svg":
        fig.set_dpi(72)
    bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(matplotlib.rcParams["savefig.pad_inches"])
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, bbox_inches=bbox, metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()


def _top_of(shown: int, total: int, what: str) -> str:
    """"top 8 of 11 classes" when a chart leaves some out (the tables list them all), else ""."""
    return f"top {shown} of {total} {what}" if shown < total else ""


def has_estimates(report: Report) -> bool:
    return "estimated_share" in report.popular and report.popular["estimated_share"].notna().any()


def chart_popular(report: Report, fmt: str = "svg") -> bytes:
    """Garments per class; with measured rates, beside it each class's share of photos/clips: raw (bar)
    and estimated (dot with its 95 % interval)."""
    estimates = has_estimates(report)
    fig = _figure(10.5 if estimates else 7.5, max(2.5, 0.32 * len(report.popular) + 1))
    ax = fig.add_subplot(1, 2, 1) if estimates else fig.add_subplot()
    data = report.popular.iloc[::-1]
    ax.barh(data["label"], data["count"], color="#3b6ea5")
    for y, (c, s) in enumerate(zip(data["count"], data["share_of_analyses"], strict=True)):
        ax.text(c, y, f" {c}  ({s:.0%} of analyses)", va="center", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Most popular items")
    ax.set_xlabel("garments counted (photo detections + video tracks)")
    ax.set_ylabel("class")
    ax.margins(x=0.25)
    if estimates:
        fig.subplots_adjust(wspace=0.35)  # room for the left panel's value labels
        right = fig.add_subplot(1, 2, 2, sharey=ax)
        y = range(len(data))
        right.barh(y, data["share_of_analyses"], color="#c9ccd6", label="raw: found by the detector")
        known = data["estimated_share"].notna().to_numpy()
        est = data["estimated_share"].where(known, 0).astype(float).to_numpy()
        ci = [v if v is not None else [0.0, 0.0] for v in data["estimated_share_ci"]]
        low = est - [c[0] for c in ci]
        high = [c[1] for c in ci] - est
        yk = [i for i in y if known[i]]
        right.errorbar(est[known], yk, xerr=[low[known], high[known]], fmt="o", color="#b5452e",
                       ecolor="#b5452e", capsize=3, markersize=4, label="estimated, 95 % interval")
        right.set_xlim(0, 1)
        right.xaxis.set_major_formatter("{x:.0%}")
        right.set_title("Share of photos/clips with each class")
        right.set_xlabel("share of photos/clips")
        right.tick_params(labelleft=False)
        right.legend(loc="lower right", fontsize=8)
    return _render(fig, fmt)


def chart_over_time(report: Report, fmt: str = "svg", top: int = 8) -> bytes:
    from closetai.insights.report import FREQ_NAMES

    fig = _figure()
    ax = fig.add_subplot()
    wide = report.over_time.pivot_table(index="period", columns="label", values="share", fill_value=0)
    keep = list(report.popular["label"].head(top))
    n_classes = len(wide.columns)
    wide = wide[[c for c in keep if c in wide.columns]]
    shown = _top_of(len(wide.columns), n_classes, "classes")
    if len(wide) == 1:
        wide.T.plot.bar(ax=ax, legend=False, color="#3b6ea5")
        ax.set_xlabel("class")
        ax.set_title(f"Share of garments, {wide.index[0]}" + (f" ({shown})" if shown else ""))
    else:
        ax.stackplot(range(len(wide)), wide.T.values, labels=wide.columns)
        ax.set_xticks(range(len(wide)), wide.index, rotation=45, ha="right", fontsize=8)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        ax.set_xlabel(FREQ_NAMES[report.freq] + " of capture")
        ax.set_title(f"Share of each class per {FREQ_NAMES[report.freq]}" + (f" ({shown})" if shown else ""))
    ax.set_ylabel("share of that period's garments")
    return _render(fig, fmt)


def chart_colours(report: Report, fmt: str = "svg") -> bytes:
    fig = _figure(8, max(3, 0.32 * len(report.colours) + 1.5))
    ax = fig.add_subplot()
    # The 12 most frequent colours: 28 columns of mostly empty cells were unreadable (and slow to draw).
    order = [c for c in report.top_colours["colour_name"] if c in report.colours.columns][:12]
    counts = report.colours.reindex(report.popular["label"])
    # Shade by share within each class (row): with absolute counts the most common class (footwear on
    # CCP) took the whole scale and every other row looked white. Cells still print the counts.
    shares = counts.div(counts.sum(axis=1).replace(0, 1), axis=0)[order]
    counts = counts[order]
    top = max(float(shares.values.max()), 1e-9)
    im = ax.imshow(shares.values, aspect="auto", cmap="Blues", vmin=0, vmax=top)
    ax.set_xticks(range(len(order)), order, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(counts)), counts.index, fontsize=8)
    for (y, x), v in pd.DataFrame(counts.values).stack().items():
        if v:
            # Out of the tight-bbox layout: the numbers sit inside the image, so the bbox is the same,
            # and savefig's extra layout pass skips measuring ~200 texts (~25 ms on 100k garments).
            ax.text(x, y, int(v), ha="center", va="center", fontsize=7,
                    color="white" if shares.values[y, x] > top / 2 else "black").set_in_layout(False)
    fig.colorbar(im, ax=ax, label="share of the class's garments", format="{x:.0%}")
    shown = _top_of(len(order), len(report.colours.columns), "colours")
    ax.set_title("Colour by class (numbers: garments" + (f"; {shown}" if shown else "") + ")")
    ax.set_xlabel("dominant colour")
    ax.set_ylabel("class")
    return _render(fig, fmt)


def chart_top_colours(report: Report, fmt: str = "svg", top: int = 12) -> bytes:
    fig = _figure(7.5, 2.8)
    ax = fig.add_subplot()
    data = report.top_colours.head(top)
    ax.bar(data["colour_name"], data["count"], color=list(data["hex"]), edgecolor="#333333")
    ax.set_xticks(range(len(data)), data["colour_name"], rotation=45, ha="right", fontsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    shown = _top_of(len(data), len(report.top_colours), "colours")
    ax.set_title("Top colours overall" + (f" ({shown})" if shown else ""))
    ax.set_xlabel("dominant colour (swatch = palette colour)")
    ax.set_ylabel("garments")
    return _render(fig, fmt)


def chart_pairs(report: Report, fmt: str = "svg") -> bytes:
    fig = _figure(7.5, max(2.5, 0.32 * len(report.pairs) + 1))
    ax = fig.add_subplot()
    data = report.pairs.iloc[::-1]
    ax.barh(data["label_a"] + " + " + data["label_b"], data["analyses"], color="#7a5ea8")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Worn together")
    ax.set_xlabel("photos / clips where both classes appear")
    ax.set_ylabel("pair")
    return _render(fig, fmt)


# The popular chart's caption when the report has estimated shares (one sentence on the correction).
ESTIMATE_CAPTION = ("Right: the share of photos/clips in which the detector found each class (bar) and the "
                    "estimated true share (dot, 95 % interval), corrected for how often the detector misses "
                    "or falsely finds the class at each confidence on labelled calibration photos.")
CHARTS = {
    "popular": (chart_popular, "Most popular items",
                "Garments per class: each photo detection above the confidence threshold once, each video track once."),
    "over_time": (chart_over_time, "Over time",
                  "Share of each class among the garments captured in each period (EXIF date, else upload time)."),
    "colours": (chart_colours, "Colour by class",
                "Garments per class and dominant colour name; shade = share of that class's garments "
                "(the 12 most frequent colours; the table lists all)."),
    "top_colours": (chart_top_colours, "Top colours", "Garments per dominant colour, all classes together."),
    "pairs": (chart_pairs, "Worn together", "Photos or clips in which both classes of a pair were found; where "
              "the model finds people, worn by the same person."),
}


def chart_table(report: Report, name: str) -> pd.DataFrame:
    """The table a chart draws (empty: the chart has nothing to show)."""
    return {"popular": report.popular, "over_time": report.over_time, "colours": report.colours,
            "top_colours": report.top_colours, "pairs": report.pairs}[name]


def _placeholder(name: str, fmt: str) -> bytes:
    fig = _figure(7.5, 1.6)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"{CHARTS[name][1]}: no garments match these filters", ha="center", va="center",
            fontsize=11, color="#6b7080")
    return _render(fig, fmt)


def chart_comparison(report: Report, fmt: str = "svg") -> bytes:
    """The compared groups' difference per class (group 1 minus group 2) with its 95 % interval; the
    significant ones (after Holm) solid, the rest hollow. Drawn only when the report has a comparison."""
    table = report.comparison
    if table is None or table.empty or table["difference"].isna().all():
        raise ValueError("no comparison to draw")
    data = table[table["difference"].notna()].iloc[::-1]
    fig = _figure(7.5, max(2.5, 0.32 * len(data) + 1.2))
    ax = fig.add_subplot()
    y = list(range(len(data)))
    diff = data["difference"].astype(float).to_numpy()
    low = [d - ci[0] for d, ci in zip(diff, data["difference_ci"], strict=True)]
    high = [ci[1] - d for d, ci in zip(diff, data["difference_ci"], strict=True)]
    sig = data["significant"].to_numpy(bool)
    ax.errorbar(diff, y, xerr=[low, high], fmt="none", ecolor="#888888", capsize=3)
    ax.scatter(diff[sig], [v for v, s in zip(y, sig, strict=True) if s], color="#b5452e", zorder=3,
               label="significant (Holm)")
    ax.scatter(diff[~sig], [v for v, s in zip(y, sig, strict=True) if not s], facecolors="white",
               edgecolors="#3b6ea5", zorder=3, label="not significant")
    ax.axvline(0, color="#444444", linewidth=0.8)
    ax.set_yticks(y, data["label"], fontsize=9)
    ax.xaxis.set_major_formatter("{x:+.0%}")
    a, b = data["group_a"].iloc[0], data["group_b"].iloc[0]
    ax.set_title(f"{a} minus {b}")
    ax.set_xlabel("difference in estimated share of photos/clips (95 % interval)")
    ax.legend(loc="lower right", fontsize=8)
    return _render(fig, fmt)


def render_chart(report: Report, name: str, fmt: str = "svg") -> bytes:
    """One chart as SVG or PNG bytes; a short 'nothing to show' image when its table is empty."""
    if name not in CHARTS:
        raise KeyError(name)
    if fmt not in ("svg", "png"):
        raise ValueError(f"chart format must be svg or png, not {fmt!r}")
    if chart_table(report, name).empty:
        return _placeholder(name, fmt)
    return CHARTS[name][0](report, fmt)


def warm_up() -> None:
    """Draw one small chart: loads the fonts and the SVG backend, which cost the first real chart ~0.3 s
    (a process that will draw charts runs it at start)."""
    fig = _figure(2, 1)
    fig.add_subplot().set_title("warm-up")
    _render(fig, "svg")


def render_charts(report: Report, names: Iterable[str], fmt: str = "svg") -> dict[str, bytes]:
    """Several charts of one report: {name: bytes} (closetai.web.report sends half of a page's here, in
    a second process)."""
    return {name: render_chart(report, name, fmt) for name in names}


def _listing(names: Iterable[str], values: Iterable[str], limit: int = 5) -> str:
    parts = [f"{n} {v}" for n, v in zip(names, values, strict=False)]
    more = f", and {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def chart_alt(report: Report, name: str) -> str:
    """Alt text: what the chart shows in words, the leading values included (screen readers, no images)."""
    from closetai.insights.report import FREQ_NAMES, report_tables

    title = CHARTS[name][1]
    if chart_table(report, name).empty:
        return f"{title}: no garments match these filters."
    if name == "popular":
        p = report.popular
        text = (f"Bar chart of garments per class, {report.n_items} garments in {report.n_analyses} analyses: "
                + _listing(p["label"], [f"{c} ({s:.0%} of analyses)" for c, s in
                                         zip(p["count"], p["share_of_analyses"], strict=True)]) + ".")
        if has_estimates(report):
            known = p[p["estimated_share"].notna()]
            text += (" Estimated share of photos/clips, corrected for detector errors (95 % interval): "
                     + _listing(known["label"], [f"{e:.0%} ({ci[0]:.0%}-{ci[1]:.0%})" for e, ci in
                                                 zip(known["estimated_share"], known["estimated_share_ci"],
                                                     strict=True)]) + ".")
        return text
    if name == "over_time":
        periods = sorted(report.over_time["period"].unique())
        last = report.over_time[report.over_time["period"] == periods[-1]].sort_values("share", ascending=False)
        return (f"Stacked shares of each class per {FREQ_NAMES[report.freq]}, {len(periods)} periods from "
                f"{periods[0]} to {periods[-1]}. In {periods[-1]}: "
                + _listing(last["label"], [f"{v:.0%}" for v in last["share"]]) + ".")
    if name == "colours":
        long = report_tables(report)["colours"].sort_values("count", ascending=False)
        return ("Heatmap of garments per class and dominant colour; most frequent combinations: "
                + _listing(long["colour_name"] + " " + long["label"], long["count"].astype(str)) + ".")
    if name == "top_colours":
        t = report.top_colours
        return ("Bar chart of garments per dominant colour, bars in the colour itself: "
                + _listing(t["colour_name"], [f"{c} ({s:.0%})" for c, s in zip(t["count"], t["share"], strict=True)])
                + ".")
    pairs = report.pairs
    return ("Bar chart of the class pairs most often found in the same photo or clip: "
            + _listing(pairs["label_a"] + " + " + pairs["label_b"], pairs["analyses"].astype(str)) + ".")
