"""Garments to people (issue 21): which person wears which garment, in one photo or frame.

A model with the `person` class (issue 16) returns the people beside the garments (Detections.people).
Each garment goes to the person whose mask holds the largest share of the garment's own mask, when that
share reaches MIN_SHARE; otherwise to nobody (a bag on a bench, a garment of someone the model missed).
People without garments are kept: a person is counted whether or not their clothes are recognised.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from closetai.vision.detections import Detections, encode_mask, mask_extent

# Share of a garment's pixels a person's mask must hold to wear it. Chosen with bench/eval_people.py on
# composites of selection photos (training photos held out), not on the validation photos it reports.
MIN_SHARE = 0.5


def assign_garments(garments: Detections, people: Detections | None, min_share: float = MIN_SHARE) -> np.ndarray:
    """(N,) index into `people` of the person wearing each garment, -1 for none."""
    out = np.full(len(garments), -1, np.int64)
    if people is None or not len(people) or not len(garments) or garments.masks is None or people.masks is None:
        return out
    person_extent = [mask_extent(m) for m in people.masks]
    for i, g in enumerate(garments.masks):
        ext = mask_extent(g)
        if ext is None:
            continue
        y1, y2, x1, x2 = ext
        area = int(g[y1:y2, x1:x2].sum())
        best, best_share = -1, 0.0
        for j, pe in enumerate(person_extent):
            if pe is None or pe[0] >= y2 or pe[1] <= y1 or pe[2] >= x2 or pe[3] <= x1:
                continue
            share = int((g[y1:y2, x1:x2] & people.masks[j, y1:y2, x1:x2]).sum()) / max(area, 1)
            if share > best_share:
                best, best_share = j, share
        if best_share >= min_share:
            out[i] = best
    return out


def people_json(garments: Detections, assignment: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The photo JSON's "people": [{"id", "box", "score", "mask" (RLE), "garments": [detection indices]}]."""
    people = garments.people
    if people is None:
        return []
    if assignment is None:
        assignment = assign_garments(garments, people)
    return [{"id": j, "box": [round(float(v), 1) for v in people.xyxy[j]], "score": round(float(people.scores[j]), 4),
             "mask": encode_mask(people.masks[j]) if people.masks is not None else None,
             "garments": [int(i) for i in np.flatnonzero(assignment == j)]} for j in range(len(people))]


def with_people(garments: Detections) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(detections JSON with each garment's "person": id or null, people JSON) for one photo."""
    assignment = assign_garments(garments, garments.people)
    items = garments.to_json()
    for item, j in zip(items, assignment, strict=True):
        item["person"] = int(j) if j >= 0 else None
    return items, people_json(garments, assignment)
