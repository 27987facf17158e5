"""Fanned-out ingest: `closetai ingest FOLDER` through Redis to 1 vs 2 worker processes (1 torch thread each).

    python bench/bench_workers.py                      # 200 CCP photos (../shared), else synthetic ones
    python bench/bench_workers.py --n 50 --workers 1,2,4 --json out.json

For each worker count: a fresh Redis (redis-server on loopback), a fresh SQLite instance, one
`closetai worker --concurrency K --threads 1` with the shipped model. Each pool process loads the model
on its first job, so 2K warm-up photos go first, untimed; then the wall time of `closetai ingest` over
N other photos (hashing, queueing, analysis, storing, the 0.5 s polling of its progress bar) gives
photos/s. Prints photos/s per worker count and the ratio to one worker.

A GPU worker (`closetai worker --device cuda` on a GPU machine, same broker and database) adds its own
photos/s to the pool; it is only measurable with a GPU, so this script does not guess a figure.
Needs Debian's redis-server. Check `uptime` first: other processes on the cores skew the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CCP_PHOTOS = REPO.parent / "shared" / "data" / "ccp" / "photos"

from tests.services import redis_server  # noqa: E402  (the throw-away server the tests use)


def synthetic_photo(path: Path, seed: int, size: tuple[int, int] = (825, 550)) -> None:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(90, 160, (*size, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x, y = int(rng.integers(0, size[1] - 100)), int(rng.integers(0, size[0] - 150))
        draw.rectangle([x, y, x + int(rng.integers(60, 250)), y + int(rng.integers(80, 350))],
                       fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    img.save(path, quality=90)


def photo_folders(root: Path, n: int, warmup: int) -> tuple[Path, Path, str]:
    """(warm-up folder, timed folder, what the photos are)."""
    warm, timed = root / "warmup", root / "photos"
    warm.mkdir()
    timed.mkdir()
    ccp = sorted(CCP_PHOTOS.glob("*.jpg")) if CCP_PHOTOS.is_dir() else []
    if len(ccp) >= n + warmup:
        for i, src in enumerate(ccp[:warmup + n]):
            shutil.copy(src, (warm if i < warmup else timed) / src.name)
        return warm, timed, f"CCP photos from {CCP_PHOTOS}"
    for i in range(warmup + n):
        synthetic_photo((warm if i < warmup else timed) / f"s{i:04d}.jpg", seed=i)
    return warm, timed, "synthetic 550x825 photos"


def ingest(folder: Path, instance: Path, broker: str, env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "closetai", "ingest", str(folder), "--quiet", "--broker-url", broker,
                           "--instance", str(instance)], cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"ingest failed: {done.stderr[-2000:]}")
    return elapsed, done.stdout.strip()


def run(k: int, warm: Path, timed: Path, args, tmp: Path) -> dict:
    work = tmp / f"k{k}"
    with redis_server(work / "redis") as broker:
        env = {**os.environ, "CLOSETAI_BROKER_URL": broker}
        log = work / "worker.log"
        cmd = [sys.executable, "-m", "closetai", "worker", "--concurrency", str(k), "--threads", str(args.threads),
               "--device", args.device, "--instance", str(work / "instance")]
        if args.model:
            cmd += ["--model", args.model]
        worker = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while " ready." not in log.read_text(errors="replace"):
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"worker did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
            ingest(warm, work / "instance", broker, env)  # every pool process loads its model
            elapsed, line = ingest(timed, work / "instance", broker, env)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
    ingested = int(re.search(r": (\d+) ingested", line).group(1))
    return {"workers": k, "photos": ingested, "seconds": round(elapsed, 1),
            "photos_per_s": round(ingested / elapsed, 3), "summary": line}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="timed photos")
    ap.add_argument("--workers", default="1,2", help="worker process counts to compare")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker process")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", help="default: the shipped model")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    counts = [int(k) for k in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="closetai-bench-workers-") as tmp_name:
        tmp = Path(tmp_name)
        warm, timed, what = photo_folders(tmp, args.n, warmup=2 * max(counts))
        print(f"{args.n} {what}; {args.threads} torch thread(s) per worker process; load average "
              f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        results = []
        for k in counts:
            r = run(k, warm, timed, args, tmp)
            results.append(r)
            print(f"{k} worker process(es): {r['photos']} photos in {r['seconds']} s = {r['photos_per_s']} photos/s")
    base = results[0]["photos_per_s"]
    for r in results[1:]:
        print(f"{r['workers']} vs {results[0]['workers']}: {r['photos_per_s'] / base:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"what": what, "threads": args.threads, "results": results}, indent=1))


if __name__ == "__main__":
    main()
