"""Similar items: query time over a large collection, and what embedding adds to photo latency.

    python bench/bench_similar.py                  # both parts: 100,000 synthetic garments; 20 CCP photos
    python bench/bench_similar.py --items 100000 --queries 200 --no-latency

Index part: a temporary SQLite store filled with N synthetic garments (unit vectors of the real
embedding's size, clustered like garments of 15 classes), then `SimilarItems.similar_to` (the API's
path: the item's row, the cosine scan, the result rows from SQL) timed per query, with and without the
same-class filter, plus the cold load of the vectors. Threads are capped at --threads (default 2) before
numpy loads. Target: < 100 ms per query over 100,000 garments on 2 CPU cores.
Latency part: the same photos through Predictor with embeddings off and on (alternating, model loaded
once). Target: embedding adds < 10 % to photo latency.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _percentiles(values: list[float]) -> tuple[float, float]:
    import numpy as np

    return float(np.median(values)), float(np.percentile(values, 95))


def fill_store(store, n: int, dim: int, model: str, seed: int = 0) -> None:
    """n garments in n/4 photos: analyses + detections + embeddings rows, inserted in bulk."""
    from datetime import datetime

    import numpy as np

    from closetai.storage.store import analyses, detections, embeddings, to_blob

    rng = np.random.default_rng(seed)
    classes = [f"class{i}" for i in range(15)]
    centres = rng.normal(size=(60, dim)).astype(np.float32)
    now = datetime(2026, 11, 1)
    per_photo = 4
    with store.engine.begin() as conn:
        for start in range(0, n, 20_000):
            count = min(20_000, n - start)
            first_analysis = start // per_photo + 1
            conn.execute(analyses.insert(), [
                {"id": first_analysis + i, "kind": "photo", "source": "bench", "filename": f"p{first_analysis + i}.jpg",
                 "sha256": "0" * 64, "width": 550, "height": 825, "captured_at": now, "captured_from": "upload",
                 "created_at": now, "model_name": "bench", "taxonomy": "bench", "min_score": 0.5,
                 "media_dir": "bench"} for i in range(count // per_photo)])
            cluster = rng.integers(0, len(centres), count)
            vectors = centres[cluster] + 0.8 * rng.normal(size=(count, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            labels = [classes[c % 15] for c in cluster]
            conn.execute(detections.insert(), [
                {"id": start + i + 1, "analysis_id": first_analysis + i // per_photo, "idx": i % per_photo,
                 "label": labels[i], "score": 0.9, "x1": 0.0, "y1": 0.0, "x2": 10.0, "y2": 10.0,
                 "crop_path": None} for i in range(count)])
            conn.execute(embeddings.insert(), [
                {"analysis_id": first_analysis + i // per_photo, "detection_id": start + i + 1, "label": labels[i],
                 "model": model, "dim": dim, "vector": to_blob(vectors[i])} for i in range(count)])


def bench_index(items: int, queries: int, dim: int) -> None:
    import numpy as np

    from closetai.insights.similar import SimilarItems, hnsw_available
    from closetai.storage.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/bench.sqlite", Path(tmp) / "media")
        store.init_schema()
        t0 = time.perf_counter()
        fill_store(store, items, dim, "bench/v1")
        print(f"index: {items:,} synthetic garments, {dim} dimensions (filled in {time.perf_counter() - t0:.1f} s)")
        index = SimilarItems(store, "bench/v1", hnsw_min_items=10**12)  # exact
        t0 = time.perf_counter()
        index.refresh()
        print(f"  cold load of the vectors from SQLite: {time.perf_counter() - t0:.2f} s "
              f"({index.vectors.nbytes / 1e6:.0f} MB in memory)")
        rng = np.random.default_rng(1)
        ids = rng.choice(index.ids, size=queries, replace=False)
        for same_class in (True, False):
            times = []
            for item_id in ids:
                t0 = time.perf_counter()
                _, matches = index.similar_to(int(item_id), k=20, same_class=same_class)
                index.store.get_items([m.item_id for m in matches])  # the result rows, as the API reads them
                times.append(time.perf_counter() - t0)
            med, p95 = _percentiles(times)
            print(f"  exact, k=20, same_class={int(same_class)}: median {med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms "
                  f"per query ({queries} queries, API path incl. SQL)")
        if hnsw_available():
            t0 = time.perf_counter()
            approx = SimilarItems(store, "bench/v1", hnsw_min_items=0)
            approx.refresh()
            print(f"  hnswlib graph built in {time.perf_counter() - t0:.1f} s")
            times, recall = [], []
            for item_id in ids:
                v = index.vector_of(int(item_id))
                exact = {m.item_id for m in index.search(v, 20)}
                t0 = time.perf_counter()
                got = approx.search(v, 20)
                times.append(time.perf_counter() - t0)
                recall.append(len(exact & {m.item_id for m in got}) / 20)
            med, p95 = _percentiles(times)
            print(f"  hnsw, k=20: median {med * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms, recall@20 {np.mean(recall):.3f}")
        else:
            print("  hnswlib not installed: approximate index not measured")
        store.dispose()


def bench_latency(n_photos: int, rounds: int) -> None:
    import numpy as np

    from closetai.media.imageio import load_rgb
    from closetai.vision.predict import Predictor

    photos_dir = REPO.parent / "shared" / "data" / "ccp" / "photos"
    if not photos_dir.is_dir():
        print("latency: ../shared absent; skipped")
        return
    images = [load_rgb(p.read_bytes(), p.name)[0] for p in sorted(photos_dir.glob("*.jpg"))[:n_photos]]
    p = Predictor(device="cpu")
    p(images[0])  # warm-up
    total = {False: [], True: []}
    embed_share = []
    for _ in range(rounds):
        for rgb in images:
            for on in (False, True):  # alternate, so drift on a shared machine hits both alike
                p.embed = on
                t0 = time.perf_counter()
                dets = p(rgb)
                total[on].append(time.perf_counter() - t0)
                if on:
                    embed_share.append(p.timings["embed"])
                    assert dets.embeddings is not None
    off, on = float(np.median(total[False])), float(np.median(total[True]))
    print(f"latency: {len(images)} CCP photos x {rounds}, Predictor on cpu ({os.environ.get('OMP_NUM_THREADS')} threads)")
    print(f"  median per photo: {off * 1000:.0f} ms without embeddings, {on * 1000:.0f} ms with "
          f"(+{(on - off) / off * 100:.1f} %); the embedding step itself: median {np.median(embed_share) * 1000:.1f} ms "
          f"({np.median(embed_share) / on * 100:.1f} % of the photo)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--no-index", action="store_true")
    a = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(a.threads)
    from closetai.vision.embed import embedding_dim

    if not a.no_index:
        bench_index(a.items, a.queries, embedding_dim(128))
    if not a.no_latency:
        bench_latency(a.photos, a.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
