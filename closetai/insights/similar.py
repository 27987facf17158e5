"""Similar items: nearest stored garments to a garment's embedding (closetai.vision.embed), over everything analysed.

The vectors live in the store's `embeddings` table; `SimilarItems` keeps them in memory as one float32
matrix and answers by cosine similarity (a dot product: the vectors are unit length).

Index choice: an exact search with numpy is the default. One matrix-vector product over 100,000
garments is a few milliseconds on two cores (bench/bench_similar.py), exact, and needs nothing beyond
numpy. When hnswlib is installed AND the collection holds more than HNSW_MIN_ITEMS garments, an HNSW
graph (approximate, sub-millisecond) answers instead; filtered queries (same class) ask it for more
candidates and filter them, falling back to the exact scan when too few survive. pgvector is not used
(out of scope for now): with PostgreSQL the vectors are still loaded from the table into this index.

The number shown with a match (issue 20.11): the whole-vector cosine ranks well but reads badly (its
class part makes any two garments of a class 0.7+ alike). What a page shows is the MatchScale
percentage: of pairs of DIFFERENT garments of the class in CCP training photos, the share that look
less alike than this pair (the look cosine, closetai.vision.embed.look_parts). Unrelated garments of a
class spread over 0-100 %; the same garment seen again lands near the top. The candidates found by the
whole vector are re-ordered by it, so the list reads in the order of its numbers.
`python scripts/fit_match_scale.py` fits it; `python bench/eval_similar.py --clips` measures it on
garments tracked through video clips.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from closetai.storage.store import NotFound, Store

HNSW_MIN_ITEMS = 200_000
# With a MatchScale, the whole-vector search returns RERANK x k candidates (at least RERANK_MIN), which
# the displayed match re-orders: the list then reads in the order of its numbers.
RERANK, RERANK_MIN = 3, 60


@dataclass
class Match:
    item_id: int
    score: float  # cosine of the whole vectors (what ranks the candidates)
    match: float | None = None  # MatchScale percentage (0-100) when the model ships a scale
    look: float | None = None  # cosine of the look parts


MIN_SCALE_PAIRS = 200  # a class with fewer negative pairs in the fit uses the all-classes quantiles


@dataclass
class MatchScale:
    """Look cosine -> "match" percentage: the share of different-garment pairs of the same class (fitted on
    CCP training photos, scripts/fit_match_scale.py) whose look cosine is lower. Per class, since
    footwear all look more alike than dresses do."""

    quantiles: dict[str, np.ndarray]  # class -> look cosines at the 0, 1, ..., 100th percentile of its pairs
    overall: np.ndarray
    num_classes: int
    colour_weight: float
    model_sha256: str
    embedding: str
    info: dict = field(default_factory=dict)

    def percent(self, label: str | None, look: np.ndarray) -> np.ndarray:
        q = self.quantiles.get(label, self.overall) if label is not None else self.overall
        return np.interp(np.asarray(look, np.float64), q, np.linspace(0.0, 100.0, len(q)))

    def look(self, vectors: np.ndarray) -> np.ndarray:
        from closetai.vision.embed import look_parts

        return look_parts(vectors, self.num_classes, self.colour_weight)

    def to_json(self) -> dict[str, Any]:
        return {"quantiles": {k: [round(float(x), 5) for x in v] for k, v in self.quantiles.items()},
                "overall": [round(float(x), 5) for x in self.overall], "num_classes": self.num_classes,
                "colour_weight": self.colour_weight, "model_sha256": self.model_sha256,
                "embedding": self.embedding, "info": self.info}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MatchScale:
        return cls({k: np.asarray(v, np.float64) for k, v in d["quantiles"].items()},
                   np.asarray(d["overall"], np.float64), int(d["num_classes"]), float(d["colour_weight"]),
                   d["model_sha256"], d["embedding"], d.get("info", {}))

    @classmethod
    def fit(cls, looks: np.ndarray, labels: list[str], garment_keys: list, photo_keys: list, **meta) -> MatchScale:
        """From look parts (N, D) of garments with their class, identity and photo: every pair of different
        garments of one class from different photos is a negative."""
        looks, labels_arr = np.asarray(looks, np.float32), np.asarray(labels)
        garments, photos = np.asarray(garment_keys), np.asarray(photo_keys)
        per_class, everything = {}, []
        for label in sorted(set(labels_arr.tolist())):
            idx = np.flatnonzero(labels_arr == label)
            sims = looks[idx] @ looks[idx].T
            a, b = np.triu_indices(len(idx), 1)
            keep = (garments[idx][a] != garments[idx][b]) & (photos[idx][a] != photos[idx][b])
            values = sims[a[keep], b[keep]]
            everything.append(values)
            if len(values) >= MIN_SCALE_PAIRS:
                per_class[label] = np.percentile(values, np.arange(101))
        overall = np.percentile(np.concatenate(everything), np.arange(101))
        return cls(per_class, overall, **meta)

    @classmethod
    def for_model(cls, model_path: str | Path, embedding: str) -> MatchScale | None:
        """The scale shipped next to the model (models/<name>.match.json), or None: none shipped, or fitted
        on another model file or embedding (its numbers would mean nothing)."""
        from closetai import sha256_file

        path = match_scale_path(model_path)
        if not path.is_file():
            return None
        scale = cls.from_json(json.loads(path.read_text()))
        if scale.embedding != embedding or scale.model_sha256 != sha256_file(model_path):
            return None
        return scale


def match_scale_path(model_path: str | Path) -> Path:
    """models/closetai-ccp15.pt -> models/closetai-ccp15.match.json"""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + ".match.json")


class ExactIndex:
    """Brute-force cosine search over unit vectors."""

    name = "exact"

    def __init__(self, vectors: np.ndarray):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """-> (row indices, scores) of the k best rows (allowed: bool mask of rows that may be returned)."""
        if not len(self.vectors) or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores = self.vectors @ np.asarray(query, dtype=np.float32)
        if allowed is not None:
            scores = np.where(allowed, scores, -np.inf)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[np.isfinite(scores[top])]
        return top, scores[top]


class HnswIndex:
    """hnswlib's HNSW graph (inner product on unit vectors = cosine). Approximate."""

    name = "hnsw"

    def __init__(self, vectors: np.ndarray, ef: int = 200, m: int = 16):
        import hnswlib

        self.exact = ExactIndex(vectors)
        self.graph = hnswlib.Index(space="ip", dim=vectors.shape[1])
        self.graph.init_index(max_elements=len(vectors), ef_construction=ef, M=m)
        self.graph.add_items(self.exact.vectors, np.arange(len(vectors)))
        self.graph.set_ef(ef)

    def add(self, vectors: np.ndarray) -> None:
        """Append rows (new uploads) without rebuilding the graph."""
        start = len(self.exact.vectors)
        self.exact = ExactIndex(np.concatenate([self.exact.vectors, vectors]))
        self.graph.resize_index(len(self.exact.vectors))
        self.graph.add_items(np.ascontiguousarray(vectors, dtype=np.float32), np.arange(start, len(self.exact.vectors)))

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.exact.vectors)
        want = min(n, k if allowed is None else k * 8)
        labels, distances = self.graph.knn_query(np.asarray(query, np.float32)[None], k=want)
        rows, scores = labels[0].astype(np.int64), 1.0 - distances[0]
        if allowed is not None:
            keep = allowed[rows]
            rows, scores = rows[keep], scores[keep]
            if len(rows) < min(k, int(allowed.sum())):  # a rare class: the graph's neighbours missed it
                return self.exact.search(query, k, allowed)
        return rows[:k], scores[:k].astype(np.float32)


def hnsw_available() -> bool:
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        return False
    return True


class SimilarItems:
    """The in-memory index over a store's embeddings of one embedding model; refreshes itself from the
    table (new rows incrementally, a full reload after deletions or a reindex). Thread-safe."""

    def __init__(self, store: Store, model: str, hnsw_min_items: int = HNSW_MIN_ITEMS,
                 scale: MatchScale | None = None):
        self.store, self.model, self.hnsw_min_items, self.scale = store, model, hnsw_min_items, scale
        self._lock = threading.Lock()
        self._state: tuple[int, int] | None = None
        self.ids = np.zeros(0, np.int64)
        self.analysis_ids = np.zeros(0, np.int64)
        self.labels = np.zeros(0, dtype=object)
        self.label_codes = np.zeros(0, np.int32)  # the same-class filter compares ints, not 100k strings
        self._codes: dict[str, int] = {}
        self.vectors = np.zeros((0, 0), np.float32)
        self.index: ExactIndex | HnswIndex = ExactIndex(self.vectors)

    def __len__(self) -> int:
        return len(self.ids)

    def refresh(self) -> None:
        state = self.store.embedding_state(self.model)
        if state == self._state:
            return
        with self._lock:
            if state == self._state:
                return
            last = int(self.ids[-1]) if len(self.ids) else 0
            new = self.store.load_embeddings(after_id=last, model=self.model)
            incremental = len(self.ids) + len(new["ids"]) == state[0] and (
                not len(self.ids) or not len(new["ids"]) or new["vectors"].shape[1] == self.vectors.shape[1])
            if not incremental:
                new = self.store.load_embeddings(model=self.model)
                self.ids, self.analysis_ids = new["ids"], new["analysis_ids"]
                self.labels, self.vectors = np.array(new["labels"], dtype=object), new["vectors"]
            elif len(new["ids"]):
                self.ids = np.concatenate([self.ids, new["ids"]])
                self.analysis_ids = np.concatenate([self.analysis_ids, new["analysis_ids"]])
                self.labels = np.concatenate([self.labels, np.array(new["labels"], dtype=object)])
                self.vectors = new["vectors"] if not len(self.vectors) else np.concatenate([self.vectors, new["vectors"]])
            self.label_codes = np.array([self._codes.setdefault(lb, len(self._codes)) for lb in self.labels],
                                        dtype=np.int32)
            use_hnsw = len(self.ids) >= self.hnsw_min_items and hnsw_available()
            if use_hnsw and incremental and isinstance(self.index, HnswIndex):
                if len(new["ids"]):
                    self.index.add(new["vectors"])  # a graph over 100k+ garments takes a while to build
            else:
                self.index = HnswIndex(self.vectors) if use_hnsw else ExactIndex(self.vectors)
            self._state = state

    def search(self, vector: np.ndarray, k: int = 20, label: str | None = None,
               exclude_analysis: int | None = None, exclude_items: tuple[int, ...] = ()) -> list[Match]:
        """The k stored garments nearest to `vector`, best first; label: only that class;
        exclude_analysis: leave out the garments of that photo or clip (an item's own neighbours there)."""
        self.refresh()
        ids, analysis_ids, codes, index = self.ids, self.analysis_ids, self.label_codes, self.index
        vectors, labels = self.vectors, self.labels
        if not len(ids):
            return []
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.vectors.shape[1]:
            raise ValueError(f"query has {vector.shape[0]} dimensions, the index {self.vectors.shape[1]}")
        allowed = None
        if label is not None or exclude_analysis is not None or exclude_items:
            allowed = np.ones(len(ids), dtype=bool)
            if label is not None:
                allowed &= codes == self._codes.get(label, -1)
            if exclude_analysis is not None:
                allowed &= analysis_ids != exclude_analysis
            if exclude_items:
                allowed &= ~np.isin(ids, np.array(exclude_items, dtype=np.int64))
        if self.scale is None:
            rows, scores = index.search(vector, k, allowed)
            return [Match(int(ids[r]), float(s)) for r, s in zip(rows, scores, strict=True)]
        # RERANK candidates found by the whole vector, re-ordered by the displayed match
        rows, scores = index.search(vector, max(RERANK * k, RERANK_MIN), allowed)
        looks = self.scale.look(vectors[rows]) @ self.scale.look(vector)[0]
        percent = np.array([self.scale.percent(label, [look])[0] for label, look in zip(labels[rows], looks, strict=True)])
        order = np.lexsort((-scores, -percent))[:k]
        return [Match(int(ids[rows[i]]), float(scores[i]), float(percent[i]), float(looks[i])) for i in order]

    def vector_of(self, item_id: int) -> np.ndarray:
        self.refresh()
        pos = np.searchsorted(self.ids, item_id)
        if pos >= len(self.ids) or self.ids[pos] != item_id:
            raise NotFound(f"item {item_id} has no embedding from {self.model}; run `closetai reindex`")
        return self.vectors[pos]

    def similar_to(self, item_id: int, k: int = 20, same_class: bool = True) -> tuple[dict[str, Any], list[Match]]:
        """-> (the item, its k nearest garments in other photos and clips)."""
        item = self.store.get_item(item_id)
        vector = self.vector_of(item_id)
        matches = self.search(vector, k, label=item["label"] if same_class else None,
                              exclude_analysis=item["analysis_id"])
        return item, matches


def _load_rgb_file(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _track_view(store: Store, track: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """A track's stored best-view crop and its mask on that crop (from the best detection's RLE)."""
    import cv2

    from closetai.vision.detections import decode_mask

    if not track["crop_path"]:
        return None
    try:
        crop = _load_rgb_file(store.media_path(track["crop_path"]))
    except (NotFound, OSError):
        return None
    mask = np.ones(crop.shape[:2], dtype=bool)
    best = store.best_view(track["id"])
    if best and best["mask_rle"]:
        full = decode_mask(best["mask_rle"])
        h, w = full.shape
        x1, y1 = max(0, int(np.floor(best["box"][0]))), max(0, int(np.floor(best["box"][1])))
        x2, y2 = min(w, max(x1 + 1, int(np.ceil(best["box"][2])))), min(h, max(y1 + 1, int(np.ceil(best["box"][3]))))
        part = full[y1:y2, x1:x2].astype(np.uint8)
        part = cv2.resize(part, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
        if part.any():
            mask = part
    return crop, mask


def reindex(store: Store, predictor, everything: bool = False, progress=None) -> dict[str, int]:
    """(Re)embed stored garments: those without a vector from predictor's embedding model, or all of them.

    Photos: the stored photo (the one analysed) with each detection's stored mask, exactly as at analysis
    time. Video tracks: the stored best-view crop with its mask (the full frame is not kept, so the
    features see less context than at analysis time). progress(iterable, total) may wrap the loop (tqdm).
    Returns counts: analyses, garments written, skipped (no photo / crop file).
    """
    from closetai.vision.detections import decode_mask

    model = predictor.embedding_model
    todo = store.garments_to_embed(None if everything else model)
    loop = progress(todo.items(), len(todo)) if progress else todo.items()
    written = skipped = 0
    for analysis_id, garments in loop:
        rows: list[dict[str, Any]] = []
        dets = garments["detections"]
        if dets:
            try:
                rgb = _load_rgb_file(store.media_path(store.get_analysis_row(analysis_id)["photo_path"]))
            except (NotFound, OSError):
                skipped += len(dets)
                rgb = None
            if rgb is not None:
                boxes = np.array([d["box"] for d in dets], dtype=np.float32)
                masks = np.zeros((len(dets),) + rgb.shape[:2], dtype=bool)
                for i, d in enumerate(dets):
                    m = decode_mask(d["mask_rle"]) if d["mask_rle"] else None
                    if m is None or m.shape != rgb.shape[:2] or not m.any():
                        x1, y1, x2, y2 = (int(round(v)) for v in d["box"])
                        masks[i, y1:y2, x1:x2] = True
                    else:
                        masks[i] = m
                vectors = predictor.embed_regions(rgb, boxes, masks)
                rows += [{"detection_id": d["id"], "label": d["label"], "vector": v}
                         for d, v in zip(dets, vectors, strict=True)]
        for t in garments["tracks"]:
            view = _track_view(store, t)
            if view is None:
                skipped += 1
                continue
            crop, mask = view
            box = np.array([[0, 0, crop.shape[1], crop.shape[0]]], dtype=np.float32)
            rows.append({"track_id": t["id"], "label": t["label"],
                         "vector": predictor.embed_regions(crop, box, mask[None])[0]})
        if rows:
            written += store.put_embeddings(analysis_id, model, rows)
    return {"analyses": len(todo), "garments": written, "skipped": skipped}
