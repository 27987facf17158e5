"""Rows for the report tests, stored through Store.add_analysis directly, and the stand-in model for an app
that only reports."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from closetai.storage.store import NewAnalysis, NewDetection, Store


class NoModel:
    """The report never runs the model; create_app only needs something in PREDICTOR's place."""

    class_names = ("jeans", "top", "footwear", "outerwear")
    min_score = 0.5
    info = {"name": "none", "taxonomy": "test", "device": "cpu", "classes": list(class_names)}


def photo(source: str, when: str, sha: str) -> NewAnalysis:
    return NewAnalysis(kind="photo", filename=f"{sha}.jpg", sha256=sha, width=100, height=100,
                       captured_at=datetime.fromisoformat(when), source=source)


def det(label: str, score: float, colour: str = "navy", **kw) -> NewDetection:
    return NewDetection(label=label, score=score, box=(0, 0, 10, 10), colour_name=colour, colour_hex="#123456", **kw)


def seed_many(store: Store, n: int = 40, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    labels, colours = ["jeans", "top", "footwear", "outerwear", "skirt"], ["navy", "black", "white", "red"]
    for i in range(n):
        k = int(rng.integers(0, 4))
        dets = [det(str(rng.choice(labels)), float(rng.uniform(.5, 1)), str(rng.choice(colours))) for _ in range(k)]
        store.add_analysis(photo(str(rng.choice(["milan", "paris"])), f"2026-03-{1 + i % 28:02d} 12:00", f"m{i}"), dets)
