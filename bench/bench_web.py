"""Upload -> result page ready, through the real server, and the result page's weight.

Serves the app with waitress on 127.0.0.1 (model loaded once), then for N photos of 550x825:
  browser: headless chromium (Playwright) picks the file on `/`, the page posts it to the API and opens
           the result page; the clock stops when the page has drawn its overlay (body[data-ready]).
  http:    the same upload with urllib (POST /api/v1/analyses) + GET of the result page HTML, i.e.
           without browser rendering, to separate server time from page time.
Prints medians and p90s, server-side inference time, and the page weight (HTML + CSS + JS bytes; the
photo and crop thumbnails are counted separately).
Target (issue 3): median <= 1.5 s on 2 CPU cores; page < 1 MB apart from the photo.
Usage: python bench/bench_web.py [--runs 10] [--no-browser]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app  # noqa: E402
from closetai.vision.predict import Predictor  # noqa: E402

SHARED_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ccp" / "photos"
CHROMIUM = Path("/usr/bin/chromium")
SIZE = (550, 825)


def photos(n: int, folder: Path) -> list[Path]:
    """n distinct JPEGs of exactly 550x825 (CCP photos when ../shared is present)."""
    sources = sorted(SHARED_PHOTOS.glob("*.jpg"))[100:100 + n] if SHARED_PHOTOS.is_dir() else []
    if not sources:
        print("../shared absent: synthetic photos (timings then say little about real ones)")
    out = []
    for i in range(n):
        if sources:
            img = Image.open(sources[i % len(sources)]).convert("RGB").resize(SIZE, Image.Resampling.LANCZOS)
        else:
            img = Image.fromarray(np.random.default_rng(i).integers(0, 255, (SIZE[1], SIZE[0], 3), np.uint8))
        path = folder / f"bench{i:03d}.jpg"
        img.save(path, quality=90)
        out.append(path)
    return out


def post_photo(base: str, path: Path) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(base + "/api/v1/analyses", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req) as res:
        return json.loads(res.read())


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url) as res:
        return res.read()


def summary(name: str, values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return f"{name}: median {statistics.median(values):.3f} s, p90 {p90:.3f} s, min {values[0]:.3f} s over {len(values)} runs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()

    from waitress import create_server

    tmp = Path(tempfile.mkdtemp(prefix="closetai-bench-"))
    predictor = Predictor(device="cpu")
    predictor(np.zeros((SIZE[1], SIZE[0], 3), np.uint8))  # warm-up, as app.py does at start-up
    app = create_app({"PREDICTOR": predictor, "INSTANCE_PATH": tmp / "instance"})
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{server.effective_port}"
    files = photos(args.runs + 1, tmp)

    # HTTP only: server time (decode, inference, colours, crops, store) + page HTML
    http_times, infer_times = [], []
    for i, path in enumerate(files):
        t0 = time.perf_counter()
        body = post_photo(base, path)
        fetch(base + body["urls"]["page"])
        if i:  # the first run warms caches
            http_times.append(time.perf_counter() - t0)
            infer_times.append(predictor.timings.get("inference", float("nan")))
    print(summary("http upload + result HTML", http_times))
    print(f"  of which model inference: median {statistics.median(infer_times):.3f} s")

    # page weight of the last result page
    html = fetch(base + body["urls"]["page"])
    assets = [fetch(base + f"/static/{name}") for name in ("style.css", "result.js")]
    photo = fetch(base + body["urls"]["photo"])
    crops = [fetch(base + d["crop"]) for d in body["detections"] if d["crop"]]
    weight = len(html) + sum(len(a) for a in assets)
    print(f"result page weight: {weight / 1024:.1f} KiB HTML+CSS+JS (HTML {len(html) / 1024:.1f} KiB, "
          f"{len(body['detections'])} items with masks); photo {len(photo) / 1024:.1f} KiB, "
          f"{len(crops)} crop thumbnails {sum(map(len, crops)) / 1024:.1f} KiB")
    index_weight = len(fetch(base + "/")) + len(fetch(base + "/static/upload.js")) + len(assets[0])
    print(f"upload page weight: {index_weight / 1024:.1f} KiB HTML+CSS+JS")

    if args.no_browser or not CHROMIUM.exists():
        print("browser timing skipped" + ("" if args.no_browser else ": /usr/bin/chromium not found"))
        server.close()
        return 0
    from playwright.sync_api import sync_playwright

    browser_times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        for i, path in enumerate(files):
            page.goto(base + "/")
            t0 = time.perf_counter()
            page.set_input_files("#file", str(path))
            page.wait_for_url(base + "/analyses/*", timeout=60_000)
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            if i:
                browser_times.append(time.perf_counter() - t0)
        browser.close()
    print(summary("browser upload -> result page ready", browser_times) + "  (target <= 1.5 s)")
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
