"""Photo latency of `detect` end to end (decode, inference, masks, RLE) with the model loaded once.

Prints median / p95 seconds per photo, the per-stage split and peak RSS. Target (issue 2):
median <= 1.0 s for a 550x825 photo on 2 CPU cores, peak RSS < 1.5 GB.
Usage: python bench/bench_detect.py [--runs 20] [--threads 2] [--model PATH] [--device cpu]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from closetai.imageio import load_rgb  # noqa: E402
from closetai.predict import Predictor  # noqa: E402

SHARED_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ccp" / "photos"


def photos(n: int) -> list:
    if SHARED_PHOTOS.is_dir():
        files = sorted(SHARED_PHOTOS.glob("*.jpg"))[:n]
        return [(f.name, f.read_bytes()) for f in files]
    print("../shared absent: using synthetic 550x825 images (latency then says little about real photos)")
    import io

    from PIL import Image

    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (825, 550, 3), np.uint8)).save(buf, "JPEG")
        out.append((f"synthetic{i}.jpg", buf.getvalue()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    t = time.perf_counter()
    predictor = Predictor(a.model, device=a.device, threads=a.threads)
    print(f"model {predictor.info['name']} loaded in {time.perf_counter() - t:.2f} s on {predictor.device}, "
          f"{a.threads} threads, test short side {predictor.meta['config']['min_size']}")
    inputs = photos(a.runs)
    predictor(load_rgb(inputs[0][1], inputs[0][0])[0])  # warm-up
    totals, stages, counts = [], {"decode": [], "inference": [], "postprocess": [], "rle": []}, []
    for name, data in inputs:
        t0 = time.perf_counter()
        rgb, _ = load_rgb(data, name)
        t1 = time.perf_counter()
        dets = predictor(rgb)
        t2 = time.perf_counter()
        dets.to_json()
        t3 = time.perf_counter()
        totals.append(t3 - t0)
        counts.append(len(dets))
        stages["decode"].append(t1 - t0)
        stages["inference"].append(predictor.timings["inference"])
        stages["postprocess"].append(predictor.timings["postprocess"] + predictor.timings["preprocess"])
        stages["rle"].append(t3 - t2)
    totals.sort()
    p95 = totals[min(len(totals) - 1, int(round(0.95 * (len(totals) - 1))))]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{'photos':>8} {'median s':>9} {'p95 s':>7} {'peak RSS MB':>12} {'garments/photo':>15}")
    print(f"{len(totals):>8} {statistics.median(totals):>9.3f} {p95:>7.3f} {rss_mb:>12.0f} {np.mean(counts):>15.1f}")
    print("stage medians (s): " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in stages.items()))


if __name__ == "__main__":
    main()
