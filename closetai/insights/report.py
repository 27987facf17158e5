"""Trend report: pure aggregation of stored garments; its charts are closetai.insights.charts.

A *counted garment* is a photo's detection above the score threshold, or a video's track (once).
The store groups them in SQL into GarmentCounts (Store.report_counts) and report_from_counts builds
the Report from those small tables; build_report does the same from one row per garment (columns:
  analysis_id, kind ('photo'|'video'), source, captured_at (datetime), label, score, colour_name, colour_hex)
through count_items, the pandas twin of that grouping. No Flask, no SQL, no loops over rows.
The chart names (render_chart, CHARTS, chart_alt, ...) are re-exported here from closetai.insights.charts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from closetai import ClosetAIError
from closetai.insights.charts import (  # noqa: F401
    # The chart names, importable from here as before the charts moved (and importing the report
    # sets the charts' SVG rcParams, as it did).
    CHARTS,
    ESTIMATE_CAPTION,
    _figure,
    _listing,
    _placeholder,
    _render,
    _top_of,
    chart_alt,
    chart_colours,
    chart_comparison,
    chart_over_time,
    chart_pairs,
    chart_popular,
    chart_table,
    chart_top_colours,
    has_estimates,
    render_chart,
    render_charts,
    warm_up,
)
from closetai.vision.colour import palette_hex

ITEM_COLUMNS = ["analysis_id", "kind", "source", "captured_at", "label", "score", "colour_name", "colour_hex"]
FREQ_NAMES = {"D": "day", "W": "week", "M": "month"}


def items_frame(rows: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    df = pd.DataFrame(rows or [], columns=ITEM_COLUMNS)
    df["captured_at"] = pd.to_datetime(df["captured_at"])
    return df


MEDIA_KINDS = ("photo", "video")
PERIODS = {"day": "D", "week": "W", "month": "M"}


class BadFilter(ClosetAIError):
    """A report filter the user typed that cannot be understood (bad date, score outside 0-1, ...)."""

    status = 400


@dataclass(frozen=True)
class ReportFilters:
    """What the report is restricted to. Parsed from a URL query or the CLI; the store applies it in SQL."""

    sources: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    kind: str | None = None  # 'photo' | 'video' | None (both)
    min_score: float | None = None
    period: str | None = None  # 'day' | 'week' | 'month' | None (chosen from the date span)
    # Two groups compared side by side (issue 17.3): each "source:NAME" or "YYYY-MM-DD..YYYY-MM-DD"
    # (a period); the other filters apply to both. () : no comparison.
    compare: tuple[str, ...] = ()

    @classmethod
    def parse(cls, sources: Iterable[str] = (), since: str | None = None, until: str | None = None,
              kind: str | None = None, min_score: str | float | None = None,
              period: str | None = None, compare: Iterable[str] = ()) -> ReportFilters:
        """Strings as typed (empty = no filter) -> filters; BadFilter with a message a user can act on."""
        clean_sources = tuple(dict.fromkeys(s.strip() for s in sources if s and s.strip()))
        since_d, until_d = _parse_day(since, "since"), _parse_day(until, "until")
        if since_d and until_d and since_d > until_d:
            raise BadFilter(f"date range is empty: since {since_d} is after until {until_d}")
        kind = (kind or "").strip().lower() or None
        if kind in ("all", "any"):
            kind = None
        if kind is not None and kind not in MEDIA_KINDS:
            raise BadFilter(f"unknown media type {kind[:20]!r}: use photo or video (or leave it empty for both)")
        score = None
        if min_score not in (None, ""):
            try:
                score = float(min_score)
            except (TypeError, ValueError):
                raise BadFilter(f"minimum confidence {str(min_score)[:20]!r} is not a number between 0 and 1") from None
            if not (math.isfinite(score) and 0.0 <= score <= 1.0):
                raise BadFilter(f"minimum confidence must be between 0 and 1, not {str(min_score)[:20]}")
        period = (period or "").strip().lower() or None
        if period == "auto":
            period = None
        if period is not None and period not in PERIODS:
            raise BadFilter(f"unknown period {period[:20]!r}: use day, week or month")
        groups = tuple(g.strip() for g in compare if g and g.strip())
        if groups:
            if len(groups) != 2:
                raise BadFilter(f"compare needs exactly two groups (compare=...&compare=...), got {len(groups)}")
            for g in groups:
                _compare_group(g)  # raises BadFilter
        return cls(clean_sources, since_d, until_d, kind, score, period, groups)

    def group(self, which: int) -> ReportFilters:
        """The filters of one compared group: its source or its period replaces the report's."""
        sources, since, until = _compare_group(self.compare[which])
        if sources:
            return ReportFilters(sources, self.since, self.until, self.kind, self.min_score, self.period)
        return ReportFilters(self.sources, since, until, self.kind, self.min_score, self.period)

    def store_args(self) -> dict[str, Any]:
        """Keyword arguments for Store.report_items / report_counts / report_count_analyses."""
        return {"sources": list(self.sources) or None, "since": self.since, "until": self.until,
                "kind": self.kind}

    def query(self) -> list[tuple[str, str]]:
        """The filters as URL query pairs (only those set), so a link reproduces the report."""
        pairs = [("source", s) for s in self.sources]
        for key, value in (("since", self.since), ("until", self.until), ("kind", self.kind),
                           ("min_score", self.min_score), ("period", self.period)):
            if value is not None:
                pairs.append((key, str(value)))
        pairs += [("compare", g) for g in self.compare]
        return pairs

    def describe(self) -> dict[str, Any]:
        """JSON-friendly, recorded in the report and its exports."""
        return {"sources": list(self.sources), "since": self.since and self.since.isoformat(),
                "until": self.until and self.until.isoformat(), "kind": self.kind,
                "min_score": self.min_score, "period": self.period, "compare": list(self.compare)}


def _compare_group(text: str) -> tuple[tuple[str, ...], date | None, date | None]:
    """"source:NAME" -> ((NAME,), None, None); "2026-10-01..2026-10-31" -> ((), since, until)."""
    if text.lower().startswith("source:"):
        name = text[7:].strip()
        if not name:
            raise BadFilter("compare=source: needs a source name, e.g. compare=source:Milan street")
        return (name,), None, None
    if ".." in text:
        first, _, last = text.partition("..")
        since, until = _parse_day(first, "compare"), _parse_day(last, "compare")
        if since and until and since > until:
            raise BadFilter(f"compare: period {text[:40]!r} is empty (its start is after its end)")
        return (), since, until
    raise BadFilter(f"compare: {text[:40]!r} is neither source:NAME nor a period YYYY-MM-DD..YYYY-MM-DD")


def _parse_day(value: str | None, name: str) -> date | None:
    if value is None or not str(value).strip():
        return None
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise BadFilter(f"{name}: {str(value)[:30]!r} is not a date; use YYYY-MM-DD") from None


@dataclass
class Report:
    n_analyses: int  # analyses (photos + clips) matching the filters, with or without garments
    n_items: int
    popular: pd.DataFrame  # label, count, analyses_with, share_of_analyses
    over_time: pd.DataFrame  # period (str), label, count, share (of that period's garments)
    freq: str  # 'D' | 'W' | 'M'
    colours: pd.DataFrame  # label x colour_name counts (wide)
    top_colours: pd.DataFrame  # colour_name, hex, count, share
    pairs: pd.DataFrame  # label_a, label_b, analyses
    filters: dict[str, Any] = field(default_factory=dict)
    # Two groups side by side (ReportFilters.compare): label, group_a/b (share, ci, analyses), difference,
    # difference_ci, p_adjusted (Holm), significant. None: no comparison asked for (or no rates).
    comparison: pd.DataFrame | None = None

    @property
    def empty(self) -> bool:
        return self.n_items == 0


def pick_freq(dates: pd.Series) -> str:
    """Day buckets for up to ~2 months of data, weeks up to ~1 year, months beyond."""
    if dates.empty:
        return "D"
    span = (dates.max() - dates.min()).days
    return "D" if span <= 62 else "W" if span <= 366 else "M"


def period_labels(dates: pd.Series, freq: str) -> pd.Series:
    """Bucket name per date. Formatted once per distinct day: strftime per row took ~1 s on 100k rows."""
    days = dates.dt.normalize()
    unique = pd.Series(days.unique())
    names = dict(zip(unique, _period_names(unique, freq), strict=True))
    return days.map(names)


def _period_names(dates: pd.Series, freq: str) -> pd.Series:
    if freq == "D":
        return dates.dt.strftime("%Y-%m-%d")
    if freq == "W":
        iso = dates.dt.isocalendar()
        return iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2)
    return dates.dt.strftime("%Y-%m")


# An outfit is the set of clothes a person wears (issue 21): footwear (on nearly everyone) and the
# accessories are left out, or nearly every person's set would be unique; they show in "worn together".
OUTFIT_CLASSES = ("top", "sweater", "outerwear", "vest", "dress", "skirt", "trousers", "jeans", "shorts")


@dataclass
class GarmentCounts:
    """Counted garments grouped just enough for every table of the report (what Store.report_counts returns).

    cells:      day (date, str or datetime), label, colour_name, count
    label_sets: labels (list of an analysis's distinct labels), analyses (how many analyses have exactly
                that set), first, last (captured_at): analyses per class and pairs without a row per garment
    """

    cells: pd.DataFrame
    label_sets: pd.DataFrame
    # labels, analyses: the sets "worn together" pairs come from, when some photo has people (one set per
    # person there, per analysis elsewhere); None: label_sets
    pair_sets: pd.DataFrame | None = None


def count_items(items: pd.DataFrame) -> GarmentCounts:
    """The pandas twin of Store.report_counts, for a frame of items (tests, small data)."""
    items = items.assign(day=items["captured_at"].dt.normalize())
    cells = items.groupby(["day", "label", "colour_name"], dropna=False).size().rename("count").reset_index()
    per_analysis = items.groupby("analysis_id").agg(labels=("label", lambda s: tuple(sorted(set(s)))),
                                                    captured_at=("captured_at", "first"))
    sets = per_analysis.groupby("labels").agg(analyses=("captured_at", "size"), first=("captured_at", "min"),
                                              last=("captured_at", "max")).reset_index()
    return GarmentCounts(cells, sets)


def build_report(items: pd.DataFrame, n_analyses: int, freq: str | None = None,
                 filters: dict[str, Any] | None = None, top_pairs: int = 10, rates: Any = None,
                 threshold: float | None = None) -> Report:
    bins = None
    if rates is not None:
        from closetai.insights.quantify import score_bin, score_edges

        edges = score_edges(rates.threshold if threshold is None else threshold)
        best = items.groupby(["analysis_id", "label"])["score"].max().reset_index()
        bins = (best.assign(bin=score_bin(best["score"].to_numpy(), edges)).groupby(["label", "bin"])
                .size().rename("analyses").reset_index())
    return report_from_counts(count_items(items), n_analyses, freq, filters, top_pairs, rates, threshold, bins)


def _with_estimates(popular: pd.DataFrame, score_bins: pd.DataFrame | None, n_analyses: int, rates: Any,
                    threshold: float | None) -> pd.DataFrame:
    """popular + estimated_share and estimated_share_ci ([low, high]) from closetai.insights.quantify: the share
    of photos/clips with each class, corrected for the detector's measured errors (probabilistic
    counting over the best score's bins), with its 95 % interval. None where there are no rates, or for
    a class the rates do not cover."""
    import numpy as np

    from closetai.insights.quantify import pcc_from_bins, score_edges

    popular = popular.assign(estimated_share=None, estimated_share_ci=None).astype(
        {"estimated_share": object, "estimated_share_ci": object})
    if rates is None or score_bins is None or n_analyses <= 0 or popular.empty:
        return popular
    threshold = rates.threshold if threshold is None else threshold
    k = len(score_edges(threshold)) - 1
    index = {c: i for i, c in enumerate(rates.classes)}
    counts = np.zeros((len(rates.classes), k), np.int64)
    for label, b, n in score_bins[["label", "bin", "analyses"]].itertuples(index=False):
        if label in index and 1 <= int(b) <= k:
            counts[index[label], int(b) - 1] += int(n)
    est = pcc_from_bins(counts, n_analyses, rates, threshold).by_class()
    popular["estimated_share"] = [round(est[c][0], 4) if c in est else None for c in popular["label"]]
    popular["estimated_share_ci"] = [[round(est[c][1], 4), round(est[c][2], 4)] if c in est else None
                                     for c in popular["label"]]
    return popular


def report_from_counts(counts: GarmentCounts, n_analyses: int, freq: str | None = None,
                       filters: dict[str, Any] | None = None, top_pairs: int = 10, rates: Any = None,
                       threshold: float | None = None, score_bins: pd.DataFrame | None = None) -> Report:
    """rates: closetai.insights.quantify.Rates measured for the model that made the detections (None: no
    estimated shares); threshold: the score a counted detection needs (None: the rates' default);
    score_bins: Store.report_score_bins at closetai.insights.quantify.score_edges(threshold) (label, bin,
    analyses), which the estimates need."""
    cells, sets = counts.cells.astype({"count": "int64"}), counts.label_sets
    n_items = int(cells["count"].sum())
    span = pd.to_datetime(pd.concat([sets["first"], sets["last"]], ignore_index=True), format="ISO8601")
    freq = freq or pick_freq(span)
    if freq not in FREQ_NAMES:
        raise ValueError(f"unknown period {freq!r}: use D, W or M")
    # One row per (label set, label): analyses with a class, and pairs of classes within one set.
    present = (sets[["labels", "analyses"]].reset_index(names="set").explode("labels")
               .rename(columns={"labels": "label"}).astype({"analyses": "int64"}))
    with_class = present.groupby("label")["analyses"].sum().rename("analyses_with")
    popular = pd.concat([cells.groupby("label")["count"].sum(), with_class], axis=1).reset_index()
    popular["share_of_analyses"] = (popular["analyses_with"] / max(n_analyses, 1)).round(4)
    popular = popular.sort_values(["count", "label"], ascending=[False, True], ignore_index=True)
    popular = _with_estimates(popular, score_bins, n_analyses, rates, threshold)

    # Periods per distinct day (~90), not per cell (~17k).
    days = pd.Series(cells["day"].unique())
    names = dict(zip(days, period_labels(pd.to_datetime(days, format="ISO8601"), freq), strict=True))
    cells = cells.assign(period=cells["day"].map(names) if len(cells) else pd.Series(dtype=str))
    over = cells.groupby(["period", "label"])["count"].sum().reset_index()
    over["share"] = (over["count"] / over.groupby("period")["count"].transform("sum")).round(4)
    over = over.sort_values(["period", "label"], ignore_index=True)

    by_colour = cells.groupby(["label", "colour_name"])["count"].sum()
    colours = by_colour.unstack(fill_value=0) if len(by_colour) else pd.DataFrame()
    top = cells.groupby("colour_name")["count"].sum().reset_index()
    top["hex"] = top["colour_name"].map(palette_hex)
    top["share"] = (top["count"] / max(n_items, 1)).round(4)
    top = top.sort_values(["count", "colour_name"], ascending=[False, True], ignore_index=True)

    if counts.pair_sets is not None and len(counts.pair_sets):
        present = (counts.pair_sets[["labels", "analyses"]].reset_index(names="set").explode("labels")
                   .rename(columns={"labels": "label"}).astype({"analyses": "int64"}))
    pairs = present.merge(present[["set", "label"]], on="set", suffixes=("_a", "_b"))
    pairs = pairs[pairs["label_a"] < pairs["label_b"]]
    pairs = pairs.groupby(["label_a", "label_b"])["analyses"].sum().reset_index()
    pairs = pairs.sort_values(["analyses", "label_a", "label_b"], ascending=[False, True, True],
                              ignore_index=True).head(top_pairs)
    return Report(n_analyses, n_items, popular, over, freq, colours, top, pairs, dict(filters or {}))


def report_tables(report: Report) -> dict[str, pd.DataFrame]:
    """The numbers behind each chart, as long tables (what the CSV/JSON exports and the page show)."""
    colours = (report.colours.stack().rename("count").reset_index() if not report.colours.empty
               else pd.DataFrame(columns=["label", "colour_name", "count"]))
    colours = colours[colours["count"] > 0].reset_index(drop=True)
    tables = {"popular": report.popular, "over_time": report.over_time, "colours": colours,
              "top_colours": report.top_colours, "pairs": report.pairs}
    if report.comparison is not None:
        tables["comparison"] = report.comparison
    return tables


def to_csv(report: Report) -> str:
    """One CSV: a `table` column names the chart each row belongs to."""
    frames = []
    for name, table in report_tables(report).items():
        # Nullable ints: the concat pads other tables' columns with NaN, which turned counts into "8.0".
        ints = {c: "Int64" for c in table.select_dtypes("integer").columns}
        table = table.astype(ints)
        for col in [c for c in table.columns if c.endswith("_ci")]:  # [low, high] as the JSON writes it
            table = table.assign(**{col: [None if v is None else f"[{v[0]}, {v[1]}]" for v in table[col]]})
        frames.append(table.assign(table=name))
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    cols = ["table"] + [c for c in out.columns if c != "table"]
    return out[cols].to_csv(index=False)


def to_json(report: Report) -> dict[str, Any]:
    return {"analyses": report.n_analyses, "garments": report.n_items, "period": FREQ_NAMES[report.freq],
            "filters": report.filters,
            **{name: table.to_dict(orient="records") for name, table in report_tables(report).items()}}


def load_report(store: Any, filters: ReportFilters | None = None, rates: Any = None) -> Report:
    """Query a closetai.storage.store.Store (duck-typed: this module stays SQL-free) and aggregate.
    rates: closetai.insights.quantify.Rates for the estimated shares (None: without them)."""
    filters = filters or ReportFilters()
    args = filters.store_args()
    counts = GarmentCounts(**store.report_counts(**args, min_score=filters.min_score))
    n_analyses = store.report_count_analyses(**args)
    # Stored detections already passed the model's threshold: a lower filter counts the same ones.
    threshold = None if rates is None else max(rates.threshold, filters.min_score or 0.0)
    bins = None
    if rates is not None:
        from closetai.insights.quantify import score_edges

        bins = store.report_score_bins(score_edges(threshold), **args, min_score=filters.min_score)
    report = report_from_counts(counts, n_analyses, freq=PERIODS.get(filters.period or ""),
                                filters=filters.describe(), rates=rates, threshold=threshold, score_bins=bins)
    if filters.compare:
        if rates is None:
            raise BadFilter("compare needs the model's measured correction rates "
                            "(closetai calibrate-report MODEL DATA; see the README's Estimated shares)")
        report.comparison = _comparison(store, filters, rates, threshold)
    return report


def _label_set_matrix(sets: pd.DataFrame, n_analyses: int, classes: tuple[str, ...]):
    """GarmentCounts.label_sets -> (found (S+1, C) bool, counts (S+1,)), the last row the analyses where
    nothing was found (what closetai.insights.quantify's estimators take)."""
    import numpy as np

    index = {c: i for i, c in enumerate(classes)}
    found = np.zeros((len(sets) + 1, len(classes)), bool)
    for row, labels in enumerate(sets["labels"]):
        found[row, [index[c] for c in labels if c in index]] = True
    counts = np.append(sets["analyses"].to_numpy(np.int64), 0)
    counts[-1] = max(n_analyses - int(counts.sum()), 0)
    return found, counts


def _trend(difference: float, significant: bool, later_is_b: bool | None) -> str | None:
    """difference is group a minus group b; None when the groups are not two periods."""
    if later_is_b is None:
        return None
    if not significant or not math.isfinite(difference):
        return "steady"
    grew = difference < 0 if later_is_b else difference > 0
    return "rising" if grew else "falling"


def _comparison(store: Any, filters: ReportFilters, rates: Any, threshold: float) -> pd.DataFrame:
    """Estimated shares of the two compared groups, their difference with its 95 % interval and which
    differences stay significant after Holm's correction over the classes found in either group."""
    import numpy as np

    from closetai.insights.quantify import compare_shares

    groups = []
    for which in (0, 1):
        g = filters.group(which)
        args = g.store_args()
        sets = store.report_counts(**args, min_score=g.min_score)["label_sets"]
        groups.append((sets, store.report_count_analyses(**args)))
    if min(n for _, n in groups) == 0:
        raise BadFilter("compare: a group has no photos or clips (" + " / ".join(
            f"{name}: {n}" for name, (_, n) in zip(filters.compare, groups, strict=True)) + ")")
    (sets_a, n_a), (sets_b, n_b) = groups
    cmp_ = compare_shares(*_label_set_matrix(sets_a, n_a, rates.classes),
                          *_label_set_matrix(sets_b, n_b, rates.classes), rates, threshold)
    seen = {c for sets in (sets_a, sets_b) for labels in sets["labels"] for c in labels}
    # Two periods: the later one decides "rising" / "falling", only where the difference is significant
    # after Holm's correction (no rising on noise); "steady" otherwise. Not for two sources.
    starts = [_compare_group(g)[1] for g in filters.compare]
    later_is_b = None if None in starts else starts[1] > starts[0]
    rows = []
    for i, c in enumerate(rates.classes):
        if c not in seen:
            continue
        def num(v):  # None: a class the detector cannot tell apart has no estimate
            return round(float(v), 4) if np.isfinite(v) else None

        def ci(lo, hi):
            return [num(lo), num(hi)] if np.isfinite(lo) else None

        rows.append({"label": c, "group_a": filters.compare[0], "share_a": num(cmp_.a.share[i]),
                     "share_a_ci": ci(cmp_.a.low[i], cmp_.a.high[i]), "analyses_a": n_a,
                     "group_b": filters.compare[1], "share_b": num(cmp_.b.share[i]),
                     "share_b_ci": ci(cmp_.b.low[i], cmp_.b.high[i]), "analyses_b": n_b,
                     "difference": num(cmp_.difference[i]), "difference_ci": ci(cmp_.low[i], cmp_.high[i]),
                     "p_adjusted": num(cmp_.p_adjusted[i]), "significant": bool(cmp_.significant[i]),
                     "trend": _trend(cmp_.difference[i], bool(cmp_.significant[i]), later_is_b)})
    columns = ["label", "group_a", "share_a", "share_a_ci", "analyses_a", "group_b", "share_b", "share_b_ci",
               "analyses_b", "difference", "difference_ci", "p_adjusted", "significant", "trend"]
    out = pd.DataFrame(rows, columns=columns).astype({c: object for c in ("share_a", "share_b", "difference",
                                                                          "p_adjusted")})
    order = out["difference"].map(lambda v: -v if v is not None else np.inf)
    return out.iloc[order.argsort(kind="stable")].reset_index(drop=True)

