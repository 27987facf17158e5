"""Outfits (issue 21): the sets of clothes people wear together, most common first.

An outfit is one person's clothes: the classes of closetai.insights.report.OUTFIT_CLASSES they wear
(footwear and accessories aside: nearly everyone wears shoes, and with accessories nearly every set is
unique), named in that order ("top + outerwear + jeans"), and the same with each garment's colour
("white top + black outerwear + blue jeans").

Who is one person: where the photo's model found people, each of them (closetai.vision.people gives each
garment to the person wearing it; garments nobody wears are left out). A photo whose model found no
people (the shipped model has no person class) counts as ONE outfit: right for the one-person photos
street fashion mostly is, wrong for a crowd; the page says which of the two its figures rest on.
Photos only: a clip's tracks are not assigned to people.

Estimated share (with the model's rates, closetai.insights.quantify.outfit_shares): the share of outfits that
truly are the set, from each class's calibrated P(present | best score). Measured on held-out tagged
photos (bench/eval_report.py, the README's "Outfits"): closer to the truth than the raw share, but its
bootstrap interval is far too narrow (it assumes the classes are detected independently), so none is
shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from closetai.insights.report import OUTFIT_CLASSES, ReportFilters

TOP_OUTFITS = 15
NOTHING = "(no clothes recognised)"


@dataclass
class Outfits:
    n: int  # outfits counted: people found + photos without people
    people: int
    photos_without_people: int
    photos: int
    outfits: pd.DataFrame  # outfit, found, share, estimated_share (None without rates)
    colour_outfits: pd.DataFrame  # outfit, found, share
    estimated: bool
    filters: dict[str, Any] = field(default_factory=dict)

    @property
    def basis(self) -> str:
        if not self.n:
            return "none"
        if self.people and self.photos_without_people:
            return "mixed"
        return "people" if self.people else "photos"


def _units(garments: pd.DataFrame, photos: pd.DataFrame) -> tuple[list[tuple[int, int | None]], int]:
    """Every outfit's key (analysis_id, person id or None for a photo without people), and how many people."""
    keys: list[tuple[int, int | None]] = []
    people = 0
    for analysis_id, raw in photos[["analysis_id", "people"]].itertuples(index=False):
        found = json.loads(raw) if isinstance(raw, str) and raw else None
        if found:
            keys += [(int(analysis_id), int(p["id"])) for p in found]
            people += len(found)
        else:
            keys.append((int(analysis_id), None))
    return keys, people


def count_outfits(garments: pd.DataFrame, photos: pd.DataFrame, rates: Any = None, threshold: float | None = None,
                  top: int = TOP_OUTFITS, filters: dict[str, Any] | None = None) -> Outfits:
    """garments, photos: Store.outfit_garments' tables. rates: closetai.insights.quantify.Rates (None: no estimates)."""
    keys, people = _units(garments, photos)
    classes = OUTFIT_CLASSES
    index = {k: i for i, k in enumerate(keys)}
    best = np.zeros((len(keys), len(classes)), np.float32)
    colour = np.full((len(keys), len(classes)), "", dtype=object)
    # Each outfit's best garment per class (vectorised: ~90k rows at the report's scale).
    g = garments[garments["label"].isin(classes)]
    g = g.sort_values("score", kind="stable").drop_duplicates(["analysis_id", "person", "label"], keep="last")
    person = g["person"].astype("float64").fillna(-1).astype("int64")
    rows = np.array([index.get((a, None if p < 0 else p), -1) for a, p in zip(g["analysis_id"].astype("int64"),
                                                                              person, strict=True)], np.int64)
    cols = g["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
    ok = rows >= 0
    best[rows[ok], cols[ok]] = g["score"].to_numpy(np.float32)[ok]
    colour[rows[ok], cols[ok]] = g["colour_name"].fillna("").to_numpy(object)[ok]
    found = best > 0
    names = np.array([" + ".join(np.array(classes)[f]) or NOTHING for f in found], dtype=object)
    colour_names = np.array([" + ".join(f"{colour[r, c]} {classes[c]}".strip() for c in np.flatnonzero(found[r]))
                             or NOTHING for r in range(len(keys))], dtype=object)
    n = len(keys)

    def ranked(values: np.ndarray) -> pd.DataFrame:
        if not n:
            return pd.DataFrame({"outfit": pd.Series(dtype=str), "found": pd.Series(dtype="int64"),
                                 "share": pd.Series(dtype=float)})
        table = pd.Series(values).value_counts().rename_axis("outfit").reset_index(name="found")
        table = table.sort_values(["found", "outfit"], ascending=[False, True], ignore_index=True).head(top)
        return table.assign(share=(table["found"] / n).round(4))

    outfits, by_colour = ranked(names), ranked(colour_names)
    estimated = rates is not None and n > 0 and all(c in rates.classes for c in classes)
    outfits["estimated_share"] = None
    if estimated:
        outfits["estimated_share"] = _estimates(outfits["outfit"], best, rates, threshold).round(4)
    return Outfits(n, people, n - people, len(photos), outfits, by_colour, estimated,
                   dict(filters or {}))


def _estimates(outfit_names: pd.Series, best: np.ndarray, rates: Any, threshold: float | None) -> np.ndarray:
    from closetai.insights.quantify import Rates, outfit_shares, score_bin, score_edges

    keep = [rates.classes.index(c) for c in OUTFIT_CLASSES]
    sub = Rates(OUTFIT_CLASSES, rates.truth[:, keep], rates.scores[:, keep], rates.threshold)
    threshold = rates.threshold if threshold is None else threshold
    sets = np.array([[c in name.split(" + ") for c in OUTFIT_CLASSES] for name in outfit_names], bool)
    bins = score_bin(best, score_edges(threshold))
    return outfit_shares(bins, sub, threshold, outfits=sets.reshape(-1, len(OUTFIT_CLASSES)), n_boot=0).share


def load_outfits(store: Any, filters: ReportFilters | None = None, rates: Any = None) -> Outfits:
    """Query a closetai.storage.store.Store (duck-typed) with the report's filters and count the outfits."""
    filters = filters or ReportFilters()
    args = {k: v for k, v in filters.store_args().items() if k in ("sources", "since", "until")}
    tables = store.outfit_garments(**args, min_score=filters.min_score)
    threshold = None if rates is None else max(rates.threshold, filters.min_score or 0.0)
    return count_outfits(tables["garments"], tables["photos"], rates, threshold, filters=filters.describe())


def to_json(o: Outfits) -> dict[str, Any]:
    return {"outfits_counted": o.n, "people": o.people, "photos_without_people": o.photos_without_people,
            "photos": o.photos, "basis": o.basis, "filters": o.filters, "estimated": o.estimated,
            "outfits": o.outfits.to_dict(orient="records"), "colour_outfits": o.colour_outfits.to_dict(orient="records")}


def to_csv(o: Outfits) -> str:
    """One CSV, a `table` column saying which list a row belongs to."""
    frames = [o.outfits.assign(table="outfits"), o.colour_outfits.assign(table="colour_outfits")]
    out = pd.concat(frames, ignore_index=True).astype({"found": "Int64"})
    return out[["table", "outfit", "found", "share", "estimated_share"]].to_csv(index=False)
