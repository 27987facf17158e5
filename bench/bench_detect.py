"""Photo latency of `detect` end to end (decode, inference, masks, RLE) with the model loaded once.

Prints median / p95 seconds per photo, per-stage medians (decode, transform, backbone+FPN, RPN, ROI
heads, mask paste, RLE), peak RSS, and the same photos through torchvision's stock
maskrcnn_resnet50_fpn (weights=None, forced to the same number of detections) with the ratio, since
absolute times drift on shared machines.
Targets: issue 2 median <= 1.0 s for a 550x825 photo on 2 CPU cores, peak RSS < 1.5 GB;
issue 7 median <= 0.6 s, >= 4x faster than the stock model, peak RSS < 1.2 GB.
Usage: python bench/bench_detect.py [--runs 20] [--threads 2] [--model PATH] [--device cpu] [--no-stock]
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from closetai.media.imageio import load_rgb  # noqa: E402
from closetai.vision.predict import Predictor  # noqa: E402

SHARED_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ccp" / "photos"


def photos(n: int) -> list[tuple[str, bytes]]:
    if SHARED_PHOTOS.is_dir():
        return [(f.name, f.read_bytes()) for f in sorted(SHARED_PHOTOS.glob("*.jpg"))[:n]]
    print("../shared absent: synthetic 550x825 images (latency then says little about real photos)")
    from PIL import Image

    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (825, 550, 3), np.uint8)).save(buf, "JPEG")
        out.append((f"synthetic{i}.jpg", buf.getvalue()))
    return out


class StageTimer:
    """Forward hooks on the Mask R-CNN's parts: seconds spent in each, per call."""

    def __init__(self, model):
        self.t: dict[str, float] = {}
        self.starts: dict[str, float] = {}
        parts = {"backbone+fpn": model.backbone, "rpn": model.rpn, "roi_heads": model.roi_heads}
        for name, mod in parts.items():
            mod.register_forward_pre_hook(lambda m, a, n=name: self.starts.__setitem__(n, time.perf_counter()))
            mod.register_forward_hook(lambda m, a, o, n=name: self.t.__setitem__(n, time.perf_counter() - self.starts[n]))
        post = model.transform.postprocess

        def timed_postprocess(*args, **kwargs):
            t0 = time.perf_counter()
            out = post(*args, **kwargs)
            self.t["mask paste"] = time.perf_counter() - t0
            return out

        model.transform.postprocess = timed_postprocess


def bench_stock(inputs, counts, threads: int) -> list[float]:
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=16, box_score_thresh=0.0).eval()
    times = []
    with torch.inference_mode():
        for (name, data), n in zip(inputs, counts, strict=True):
            rgb, _ = load_rgb(data, name)
            model.roi_heads.detections_per_img = max(int(n), 1)
            x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255
            t0 = time.perf_counter()
            model([x])
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--min-size", type=int)
    ap.add_argument("--no-stock", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t = time.perf_counter()
    predictor = Predictor(a.model, device=a.device, threads=a.threads, min_size=a.min_size)
    print(f"model {predictor.info['name']} loaded in {time.perf_counter() - t:.2f} s on {predictor.device}, "
          f"{a.threads} threads, test short side {predictor.meta['config']['min_size']}, "
          f"score threshold {predictor.min_score}")
    inputs = photos(a.runs)
    timer = StageTimer(predictor.model)
    predictor(load_rgb(inputs[0][1], inputs[0][0])[0])  # warm-up
    totals, stages, counts = [], defaultdict(list), []
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
        for k, v in timer.t.items():
            stages[k].append(v)
        stages["to tensor + filter"].append(predictor.timings["preprocess"] + predictor.timings["postprocess"])
        stages["rle"].append(t3 - t2)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med = statistics.median(totals)
    p95 = sorted(totals)[min(len(totals) - 1, int(round(0.95 * (len(totals) - 1))))]
    print(f"\n{'model':>14} {'photos':>7} {'median s':>9} {'p95 s':>7} {'garments/photo':>15}")
    print(f"{'closetai':>14} {len(totals):>7} {med:>9.3f} {p95:>7.3f} {np.mean(counts):>15.1f}")
    print("stage medians (s): " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in stages.items()))
    print(f"peak RSS {rss_mb:.0f} MB (closetai model only)")
    if not a.no_stock:
        stock = bench_stock(inputs[: min(len(inputs), 8)], counts[:8], a.threads)
        smed = statistics.median(stock)
        print(f"{'stock r50-fpn':>14} {len(stock):>7} {smed:>9.3f} {max(stock):>7.3f} {'same as ours':>15}")
        print(f"speed-up vs torchvision maskrcnn_resnet50_fpn (inference only for stock): {smed / med:.1f}x")


if __name__ == "__main__":
    main()
