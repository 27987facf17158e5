"""Benchmark: /report with 100,000 stored detections in SQLite (target: <= 1 s median).

Seeds a throw-away SQLite file with synthetic analyses: ~24,000 photos over 90 days and 4 sources, with
a skewed class mix and class-dependent colours, plus 200 video clips whose tracks hold many
detections each (the report must count a track once). Then times the page, the CSV and the JSON
through Flask's test client (rendering included, network excluded) and prints medians, cold (the app's
report cache emptied before each request) and cached (the same filters again, data unchanged); and
/report cold once more with every chart drawn in the web process (REPORT_CHART_PROCESS off).

  python bench/bench_report.py [--detections 100000] [--runs 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app  # noqa: E402
from closetai.storage.store import Store, analyses, default_sqlite_url, detections, tracks  # noqa: E402
from closetai.vision.colour import PALETTE  # noqa: E402

CLASSES = ["top", "jeans", "footwear", "outerwear", "bag", "trousers", "dress", "skirt", "shorts", "sunglasses",
           "hat", "belt", "scarf", "socks", "accessory"]
SOURCES = ["Milan street 2026-10", "Paris fashion week", "Berlin U-Bahn", "CCP street"]


class NoModel:
    class_names = tuple(CLASSES)
    min_score = 0.5
    info = {"name": "none", "taxonomy": "bench", "device": "cpu", "classes": CLASSES}


def seed(store: Store, n_detections: int, rng: np.random.Generator) -> dict[str, int]:
    colours = list(PALETTE)
    class_p = 1 / np.arange(1, len(CLASSES) + 1) ** 1.1
    class_p /= class_p.sum()
    # Each class prefers a few colours (jeans: blues; footwear: black/white...), as real data does.
    colour_p = rng.dirichlet(np.full(len(colours), 0.3), size=len(CLASSES))
    start = datetime(2026, 7, 1)
    n_videos, tracks_per_video, dets_per_track = 200, 10, 5
    video_dets = n_videos * tracks_per_video * dets_per_track
    photo_dets = n_detections - video_dets
    n_photos = int(photo_dets / 3.5)
    per_photo = rng.multinomial(photo_dets - n_photos, np.full(n_photos, 1 / n_photos)) + 1

    def analysis_rows(kind: str, n: int, first_id: int) -> list[dict]:
        when = [start + timedelta(seconds=int(s)) for s in rng.integers(0, 90 * 86400, n)]
        src = rng.choice(SOURCES, n, p=[0.35, 0.25, 0.15, 0.25])
        return [{"id": first_id + i, "kind": kind, "source": str(src[i]), "filename": f"{kind}{i}", "sha256": f"{kind}{i}",
                 "width": 550, "height": 830, "captured_at": when[i], "captured_from": "exif", "created_at": when[i],
                 "model_name": "bench", "taxonomy": "bench", "min_score": 0.5, "media_dir": f"bench/{kind}{i}"}
                for i in range(n)]

    # Masks as stored (COCO RLE JSON): ~410 characters on average for CCP's garments (median 250, max
    # ~1,700), so the rows a report reads past are as wide as real ones.
    rle_lengths = np.clip(rng.lognormal(np.log(260), 0.8, 512), 40, 1700).astype(int)
    masks = [json.dumps({"size": [830, 550], "counts": "x" * int(n)}) for n in rle_lengths]

    def garment_rows(n: int) -> tuple[np.ndarray, list[str], np.ndarray]:
        labels = rng.choice(len(CLASSES), n, p=class_p)
        cols = [colours[rng.choice(len(colours), p=colour_p[c])] for c in labels]
        return labels, cols, rng.uniform(0.5, 1.0, n).round(4)

    with store.engine.begin() as conn:
        conn.execute(analyses.insert(), analysis_rows("photo", n_photos, 1))
        conn.execute(analyses.insert(), analysis_rows("video", n_videos, n_photos + 1))
        labels, cols, scores = garment_rows(photo_dets)
        owner = np.repeat(np.arange(1, n_photos + 1), per_photo)
        conn.execute(detections.insert(), [
            {"analysis_id": int(owner[i]), "idx": i, "label": CLASSES[labels[i]], "score": float(scores[i]),
             "x1": 0, "y1": 0, "x2": 10, "y2": 10, "mask_rle": masks[i % len(masks)], "colour_name": cols[i],
             "colour_hex": PALETTE[cols[i]]}
            for i in range(photo_dets)])
        n_tracks = n_videos * tracks_per_video
        labels, cols, scores = garment_rows(n_tracks)
        conn.execute(tracks.insert(), [
            {"id": t + 1, "analysis_id": n_photos + 1 + t // tracks_per_video, "track_no": t % tracks_per_video,
             "label": CLASSES[labels[t]], "colour_name": cols[t], "colour_hex": PALETTE[cols[t]], "first_s": 0,
             "last_s": 5, "frames_seen": dets_per_track, "best_score": float(scores[t])} for t in range(n_tracks)])
        conn.execute(detections.insert(), [
            {"analysis_id": n_photos + 1 + t // tracks_per_video, "idx": k, "track_id": t + 1, "frame_index": k,
             "time_s": k / 5, "label": CLASSES[labels[t]], "score": float(scores[t]), "x1": 0, "y1": 0, "x2": 10,
             "y2": 10, "mask_rle": masks[(t + k) % len(masks)], "colour_name": cols[t], "colour_hex": PALETTE[cols[t]]}
            for t in range(n_tracks) for k in range(dets_per_track)])
    return {"photos": n_photos, "videos": n_videos, "detections": n_detections, "tracks": n_tracks}


def timed(client, url: str, runs: int, cold: bool) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(runs):
        if cold:  # drop the app's report caches: query, aggregation and charts all run again
            client.application.extensions.pop("closetai.report_cache", None)
            client.application.extensions.pop("closetai.outfits_cache", None)
        t0 = time.perf_counter()
        r = client.get(url)
        times.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise SystemExit(f"{url}: HTTP {r.status_code}: {r.data[:200]!r}")
        size = len(r.data)
    return statistics.median(times), size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detections", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", help="instance folder to keep (default: a temporary one)")
    ap.add_argument("--rates", default=str(Path(__file__).resolve().parents[1] / "models" / "closetai-ccp15.pt"),
                    help="model whose <model>.rates.json the report's estimated shares use (issue 17.1); "
                         "'none': without them")
    a = ap.parse_args()
    inst = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench-report-"))
    store = Store(default_sqlite_url(inst), inst / "media")
    store.init_schema()
    t0 = time.perf_counter()
    sizes = seed(store, a.detections, np.random.default_rng(0))
    print(f"seeded {sizes} in {time.perf_counter() - t0:.1f} s -> {inst}")
    store.dispose()

    app = create_app({"TESTING": True, "PREDICTOR": NoModel(), "INSTANCE_PATH": inst,
                      "REPORT_RATES": None if a.rates == "none" else a.rates})
    client = app.test_client()
    from closetai.web.report import report_rates

    with app.app_context():
        rates = report_rates()
    print("estimated shares: " + (f"on ({len(rates.truth)} calibration photos, {a.rates})" if rates else "off"))
    from closetai.web.report import chart_process

    chart_process()._ready.result(timeout=60)  # the chart process a real server starts with it is up
    client.get("/report")  # warm-up: imports, matplotlib font cache, SQLite page cache
    print(f"cpu load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work slows every figure)")
    for url in ["/report", "/report?source=Milan+street+2026-10&min_score=0.8&period=week", "/report.csv",
                "/report.json", "/report/charts/colours.png", "/report/outfits"]:
        cold, size = timed(client, url, a.runs, cold=True)
        warm, _ = timed(client, url, a.runs, cold=False)
        print(f"{url:66s} median cold {cold * 1000:6.0f} ms, cached {warm * 1000:5.0f} ms  "
              f"({size / 1e3:.0f} kB, {a.runs} runs)")
    app.config["REPORT_CHART_PROCESS"] = False
    cold, _ = timed(client, "/report", a.runs, cold=True)
    print(f"{'/report, every chart drawn in the web process (REPORT_CHART_PROCESS off)':66s} median cold "
          f"{cold * 1000:6.0f} ms")
    items = app.extensions["closetai.storage.store"]
    t0 = time.perf_counter()
    df = items.report_items()
    print(f"  SQL: every row (report_items, {len(df)} counted garments; the report no longer fetches them): "
          f"{(time.perf_counter() - t0) * 1000:.0f} ms")
    t0 = time.perf_counter()
    counts = items.report_counts()
    print(f"  SQL: grouped (report_counts, what the report uses: {len(counts['cells'])} cells, "
          f"{len(counts['label_sets'])} label sets): {(time.perf_counter() - t0) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
