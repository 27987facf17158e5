"""GPU throughput of the predictor on 720x1280 frames in batches (issue 7: >= 150 frames/s at batch 8).

Frames are crops of a CCP photo when ../shared is there (garments in view, so mask heads and pasting
do real work), else noise. Times with CUDA synchronisation, after warm-up; prints a table for
bf16 autocast (the Predictor's CUDA default) and fp32.
Usage: python bench/bench_gpu.py [--batch 8] [--iters 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from closetai.predict import Predictor  # noqa: E402

PHOTO = ROOT.parent / "shared" / "data" / "ccp" / "photos" / "0010.jpg"


def frames(n: int) -> list[np.ndarray]:
    if PHOTO.is_file():
        from PIL import Image

        big = np.asarray(Image.open(PHOTO).convert("RGB").resize((900, 1350)))
        return [np.ascontiguousarray(big[30:1310, 20 * i: 20 * i + 720]) for i in range(n)]
    return [np.random.default_rng(i).integers(0, 255, (1280, 720, 3), np.uint8) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--model")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to measure")
        return
    predictor = Predictor(a.model, device="cuda")
    batch = frames(a.batch)
    print(f"{torch.cuda.get_device_name(0)}, model {predictor.info['name']}, short side "
          f"{predictor.meta['config']['min_size']}, batch {a.batch} of 720x1280 frames")
    print(f"{'precision':>10} {'median s/batch':>15} {'frames/s':>9} {'garments/frame':>15}")
    for name, amp in (("bf16", True), ("fp32", False)):
        predictor.amp = amp
        for _ in range(3):
            predictor.predict_batch(batch)
        torch.cuda.synchronize()
        times, found = [], 0
        for _ in range(a.iters):
            t0 = time.perf_counter()
            dets = predictor.predict_batch(batch)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            found = sum(len(d) for d in dets)
        med = statistics.median(times)
        print(f"{name:>10} {med:>15.4f} {a.batch / med:>9.1f} {found / a.batch:>15.1f}")


if __name__ == "__main__":
    main()
