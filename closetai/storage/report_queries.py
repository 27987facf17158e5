"""The trend report's SQL: closetai.insights.report aggregates what these return (it stays SQL-free)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import String, case, cast, func, literal, select, union_all

from closetai.storage.engine import StoreBase
from closetai.storage.schema import analyses, detections, tracks

if TYPE_CHECKING:
    import pandas as pd


class ReportQueries(StoreBase):
    """Counted garments for the report, filtered and mostly grouped in SQL."""

    # -- trend report (closetai.insights.report aggregates what these return) -----------------------------
    def report_items(self, sources: list[str] | None = None, since: date | None = None,
                     until: date | None = None, kind: str | None = None,
                     min_score: float | None = None) -> pd.DataFrame:
        """One row per counted garment (closetai.insights.report.ITEM_COLUMNS), every filter applied in SQL.

        Photos count each detection (score >= min_score); videos count each track once, with its best
        score. `since`/`until` are inclusive calendar days on captured_at.
        """
        import pandas as pd

        query = _counted_garments(sources, since, until, kind, min_score)
        with self.engine.connect() as conn:
            df = pd.read_sql(query, conn)
        df["captured_at"] = pd.to_datetime(df["captured_at"], format="ISO8601")
        return df

    def report_counts(self, sources: list[str] | None = None, since: date | None = None,
                      until: date | None = None, kind: str | None = None,
                      min_score: float | None = None) -> dict[str, pd.DataFrame]:
        """The counted garments of report_items, already grouped in SQL (closetai.insights.report.GarmentCounts).

        Fetching ~100k rows into pandas to group them there took ~0.45 s; these tables have at most a
        few thousand rows. Keys:
          cells       day ('YYYY-MM-DD'), label, colour_name, count
          label_sets  labels (list of the distinct labels of an analysis), analyses (how many analyses
                      have exactly that set), first, last (captured_at, ISO strings)
        """
        import pandas as pd

        dialect = self.engine.dialect.name
        g = _counted_garments(sources, since, until, kind, min_score, dialect=dialect).subquery("g")
        day = func.substr(g.c.captured_at, 1, 10).label("day")
        cells = (select(day, g.c.label, g.c.colour_name, func.count().label("count"))
                 .group_by(day, g.c.label, g.c.colour_name))
        per_analysis = _counted_garments(sources, since, until, kind, min_score, per_analysis=True,
                                         dialect=dialect).subquery("p")
        sets = (select(per_analysis.c.labels, func.count().label("analyses"),
                       func.min(per_analysis.c.captured_at).label("first"),
                       func.max(per_analysis.c.captured_at).label("last"))
                .group_by(per_analysis.c.labels))
        with self.engine.connect() as conn:
            out = {"cells": pd.read_sql(cells, conn), "label_sets": pd.read_sql(sets, conn), "pair_sets": None}
            # Worn together means by one person (issue 21): where a model found people, the sets are per
            # person; elsewhere per analysis, as label_sets. Only queried when some photo has people.
            if conn.execute(select(analyses.c.id).where(analyses.c.people.is_not(None)).limit(1)).first():
                groups = []
                for per_person in (True, False):
                    q = _counted_garments(sources, since, until, kind, min_score, per_analysis=True,
                                          dialect=dialect, per_person=per_person)
                    if q is not None:
                        sub = q.subquery("pp")
                        groups.append(pd.read_sql(select(sub.c.labels, func.count().label("analyses"))
                                                  .group_by(sub.c.labels), conn))
                out["pair_sets"] = pd.concat(groups, ignore_index=True)
        # "jeans\x1f,top\x1f": each label ends with \x1f so a comma inside a class name cannot split it.
        for key in ("label_sets", "pair_sets"):
            if out[key] is not None:
                out[key]["labels"] = out[key]["labels"].str[:-1].str.split(_LABEL_END + ",")
        return out

    def report_score_bins(self, edges, sources: list[str] | None = None, since: date | None = None,
                          until: date | None = None, kind: str | None = None,
                          min_score: float | None = None) -> pd.DataFrame:
        """Per class, how many analyses have their best counted score in each bin (closetai.insights.quantify's
        score_edges: bin j holds edges[j-1] <= best < edges[j]; analyses without the class are not
        listed). Columns label, bin, analyses: at most classes x bins rows."""
        import pandas as pd

        # Only the three columns it needs, grouped inside each part: from the covering index, without
        # the cast dates and colours of _counted_garments' rows (~2x faster at 100k detections).
        parts = []
        for media, table, score in (("photo", detections, detections.c.score), ("video", tracks, tracks.c.best_score)):
            if kind not in (None, media):
                continue
            q = (select(table.c.analysis_id, table.c.label, func.max(score).label("best"))
                 .select_from(table.join(analyses, table.c.analysis_id == analyses.c.id))
                 .where(analyses.c.kind == media, *_analysis_filters(sources, since, until)))
            if min_score is not None:
                q = q.where(score >= min_score)
            parts.append(q.group_by(table.c.analysis_id, table.c.label))
        best = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("best")
        k = len(edges) - 1
        which = case(*[(best.c.best >= float(edges[j - 1]), j) for j in range(k, 0, -1)], else_=0).label("bin")
        query = select(best.c.label, which, func.count().label("analyses")).group_by(best.c.label, which)
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn)

    def outfit_garments(self, sources: list[str] | None = None, since: date | None = None,
                        until: date | None = None, min_score: float | None = None) -> dict[str, pd.DataFrame]:
        """What the outfits view (closetai.insights.outfits) counts, photos only (tracks are not assigned to
        people). Keys:
          garments  analysis_id, person (NULL in a photo whose model found no people), label, colour_name,
                    score: one row per counted detection; in a photo with people, only garments someone wears
          photos    analysis_id, people (the JSON list, NULL: the model found no people): every photo under
                    the filters, garments or not (the denominators)
        """
        import pandas as pd

        a, d = analyses.c, detections.c
        filters = [a.kind == "photo", *_analysis_filters(sources, since, until)]
        garments = (select(d.analysis_id, d.person, d.label, d.colour_name, d.score)
                    .select_from(detections.join(analyses, d.analysis_id == a.id))
                    .where(*filters, (a.people.is_(None)) | (d.person.is_not(None))))
        if min_score is not None:
            garments = garments.where(d.score >= min_score)
        with self.engine.connect() as conn:
            return {"garments": pd.read_sql(garments, conn),
                    "photos": pd.read_sql(select(a.id.label("analysis_id"), a.people).where(*filters), conn)}

    def report_version(self) -> tuple:
        """Changes whenever an analysis, detection or track is added or removed: a cache key for reports.

        Ids are never reused (AUTOINCREMENT), so insert-then-delete still moves max(id)."""
        with self.engine.connect() as conn:
            return (tuple(conn.execute(select(func.count(), func.max(analyses.c.id))).one())
                    + tuple(conn.execute(select(func.max(detections.c.id))).one())
                    + tuple(conn.execute(select(func.count(), func.max(tracks.c.id))).one()))

    def report_count_analyses(self, sources: list[str] | None = None, since: date | None = None,
                              until: date | None = None, kind: str | None = None) -> int:
        """Analyses matching the report's filters, with or without garments (the share denominator)."""
        query = select(func.count()).select_from(analyses).where(*_analysis_filters(sources, since, until))
        if kind:
            query = query.where(analyses.c.kind == kind)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def report_sources(self) -> list[str]:
        """Distinct non-empty source labels, for the report's filter form."""
        query = (select(analyses.c.source).where(analyses.c.source != "").distinct()
                 .order_by(analyses.c.source))
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(query)]


_LABEL_END = "\x1f"


def _counted_garments(sources: list[str] | None, since: date | None, until: date | None,
                      kind: str | None, min_score: float | None, per_analysis: bool = False,
                      dialect: str = "sqlite", per_person: bool | None = None):
    """SELECT of one row per counted garment (report_items' columns): photo detections, video tracks.

    per_analysis: one row per analysis instead (analysis_id, captured_at, labels: its distinct labels,
    each followed by _LABEL_END, comma-separated). Grouped by analyses.id, which SQLite scans in order,
    so it needs no sort (~70 ms on 100k garments; a DISTINCT (analysis, label) self-join took ~180 ms).

    per_person (with per_analysis): True: one row per person wearing garments, in photos whose model
    found people; False: only the analyses without people (clips, and photos of a model without the
    class); None: every analysis.
    """
    a = analyses.c
    # captured_at as text: SQLAlchemy's per-row datetime parsing cost more than the query itself
    # (100k rows); pandas parses the ISO strings in one vectorised pass.
    when = cast(a.captured_at, String).label("captured_at")
    parts = []
    for media, table, score in (("photo", detections, detections.c.score), ("video", tracks, tracks.c.best_score)):
        if kind not in (None, media):
            continue
        if per_person and media == "video":
            continue  # tracks are not assigned to people
        if per_analysis:
            # group_concat(DISTINCT x) takes no separator argument in SQLite (it joins with ","), hence
            # the terminator; PostgreSQL's string_agg takes DISTINCT and the same "," explicitly.
            term = (table.c.label + _LABEL_END).distinct()
            labels = (func.string_agg(term, literal(",")) if dialect == "postgresql" else func.group_concat(term))
            columns = [a.id.label("analysis_id"), when, labels.label("labels")]
        else:
            columns = [a.id.label("analysis_id"), a.kind, a.source, when, table.c.label, score.label("score"),
                       table.c.colour_name, table.c.colour_hex]
        query = (select(*columns).select_from(table.join(analyses, table.c.analysis_id == a.id))
                 .where(a.kind == media, *_analysis_filters(sources, since, until)))
        if min_score is not None:
            query = query.where(score >= min_score)
        if per_person:
            query = query.where(a.people.is_not(None), detections.c.person.is_not(None))
            parts.append(query.group_by(a.id, detections.c.person))
            continue
        if per_person is False:
            query = query.where(a.people.is_(None))
        parts.append(query.group_by(a.id) if per_analysis else query)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else union_all(*parts)


def _analysis_filters(sources: list[str] | None, since: date | None, until: date | None) -> list:
    """WHERE clauses on analyses shared by the report queries. `until` is inclusive: < the next day.

    A copy of a file stored again (copy_of set) is never counted: each distinct file (content sha256)
    counts once, as its first stored analysis, with that one's source and date (issue 17.2)."""
    clauses = [analyses.c.copy_of.is_(None)]
    if sources:
        clauses.append(analyses.c.source.in_(list(sources)))
    if since is not None:
        clauses.append(analyses.c.captured_at >= datetime.combine(since, datetime.min.time()))
    if until is not None and until < date.max:  # until 9999-12-31 has no next day and bounds nothing
        clauses.append(analyses.c.captured_at < datetime.combine(until + timedelta(days=1), datetime.min.time()))
    return clauses
