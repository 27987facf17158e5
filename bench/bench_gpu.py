"""GPU throughput of the predictor on 720x1280 frames in batches (issue 7: >= 150 frames/s at batch 8).

Frames are crops of a CCP photo when ../shared is there (garments in view, so mask heads and pasting
do real work), else noise. Times with CUDA synchronisation, after warm-up; prints a table for
bf16 autocast (the Predictor's CUDA default) and fp32, with where a frame's time went (predict_batch's
timings: to tensor, the model, post-processing, embedding; the last two are mostly CPU work the GPU
waits on). `--device cpu` prints the same breakdown on the CPU (fp32 only), to see that CPU share
without a GPU.
`--profile N` then runs N more fp32 batches under torch.profiler and prints the ops that took the most
time on the CPU and on the device, to find what a batch waits on.
Usage: python bench/bench_gpu.py [--batch 8] [--iters 20] [--device cuda|cpu] [--profile 3]
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

from closetai.vision.predict import Predictor  # noqa: E402

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
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (the Predictor's default)")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="then profile N fp32 batches")
    a = ap.parse_args()
    cuda = a.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("no CUDA GPU: nothing to measure (--device cpu times the CPU side)")
        return
    predictor = Predictor(a.model, device=a.device, threads=a.threads)
    batch = frames(a.batch)
    where = torch.cuda.get_device_name(0) if cuda else f"CPU, {a.threads} threads"
    print(f"{where}, model {predictor.info['name']}, short side "
          f"{predictor.meta['config']['min_size']}, batch {a.batch} of 720x1280 frames")
    stages = ("preprocess", "inference", "postprocess", "embed")
    print(f"{'precision':>10} {'median s/batch':>15} {'frames/s':>9} {'garments/frame':>15}   "
          f"ms per frame: {' / '.join(stages)}")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for name, amp in (("bf16", True), ("fp32", False)) if cuda else (("fp32", False),):
        predictor.amp = amp
        for _ in range(3 if cuda else 1):
            predictor.predict_batch(batch)
        sync()
        times, found, spent = [], 0, {k: [] for k in stages}
        for _ in range(a.iters):
            t0 = time.perf_counter()
            dets = predictor.predict_batch(batch)
            sync()
            times.append(time.perf_counter() - t0)
            found = sum(len(d) for d in dets)
            for k in stages:
                spent[k].append(predictor.timings[k] * 1000 / a.batch)
        med = statistics.median(times)
        split = " / ".join(f"{statistics.median(spent[k]):.1f}" for k in stages)
        print(f"{name:>10} {med:>15.4f} {a.batch / med:>9.1f} {found / a.batch:>15.1f}   {split}")
    if a.profile:
        profile(predictor, batch, a.profile, cuda)


def profile(predictor: Predictor, batch: list[np.ndarray], n: int, cuda: bool) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    predictor.amp = False
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=activities) as prof:
        for _ in range(n):
            predictor.predict_batch(batch)
            if cuda:
                torch.cuda.synchronize()
    table = prof.key_averages()
    print(f"\ntorch.profiler, {n} fp32 batches of {len(batch)}: ops by self CPU time")
    print(table.table(sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=48))
    if cuda:
        print("ops by self device time")
        print(table.table(sort_by="self_device_time_total", row_limit=20, max_name_column_width=48))


if __name__ == "__main__":
    main()
