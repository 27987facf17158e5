"""Load: N concurrent photo uploads against a real server process (python app.py, waitress) on loopback.

    python bench/bench_load.py                 # 50 uploads at once, the shipped model, a fresh instance
    python bench/bench_load.py --n 100 --json out.json

Starts the server in a temporary instance folder, waits for /api/v1/health, sends every upload at once
(one thread per upload, so all N connections are open together), then checks the database file itself:
N stored analyses, none lost or duplicated, no 5xx, PRAGMA integrity_check ok. Prints latency p50/p95/max
and throughput, and exits 1 when a check fails. tests/test_faults.py runs it with N=50.

Photos: distinct synthetic JPEGs (640x480, coloured shapes), so no two uploads share a sha256.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]


def synthetic_photo(seed: int, size: tuple[int, int] = (480, 640)) -> bytes:
    rng = np.random.default_rng(seed)
    h, w = size
    ramp = np.linspace(60, 200, h, dtype=np.float32)[:, None, None] * np.ones((1, w, 3), np.float32)
    image = Image.fromarray((ramp + rng.normal(0, 6, (h, w, 3))).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = int(rng.integers(0, w - 120)), int(rng.integers(0, h - 160))
        draw.rectangle([x, y, x + int(rng.integers(60, 120)), y + int(rng.integers(80, 160))],
                       fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(instance: Path, port: int, log: Path, threads: int = 2) -> subprocess.Popen:
    env = {**os.environ, "CLOSETAI_INSTANCE": str(instance), "CLOSETAI_PORT": str(port),
           "CLOSETAI_DEVICE": os.environ.get("CLOSETAI_DEVICE", "cpu"), "CLOSETAI_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)


def wait_up(base: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited:\n" + log.read_text()[-2000:])
        try:
            with urllib.request.urlopen(base + "/api/v1/health", timeout=5):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("server did not start:\n" + log.read_text()[-2000:])


def post_photo(url: str, data: bytes, name: str, timeout: float) -> tuple[int, float, dict]:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "Accept": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, payload = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    except OSError as exc:  # refused / reset / timed out: counted as lost
        return 0, time.perf_counter() - started, {"error": f"{type(exc).__name__}: {exc}"}
    elapsed = time.perf_counter() - started
    try:
        return status, elapsed, json.loads(payload)
    except ValueError:
        return status, elapsed, {"error": payload[:200].decode("utf-8", "replace")}


def run(n: int, timeout: float, threads: int) -> dict:
    photos = [synthetic_photo(i) for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="closetai-load-") as tmp:
        instance, log = Path(tmp) / "instance", Path(tmp) / "server.log"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(instance, port, log, threads)
        try:
            wait_up(base, proc, log)
            results: list[tuple[int, float, dict]] = [None] * n  # type: ignore[list-item]
            go = threading.Event()

            def one(i: int) -> None:
                go.wait()
                results[i] = post_photo(base + "/api/v1/analyses", photos[i], f"load-{i:03d}.jpg", timeout)

            workers = [threading.Thread(target=one, args=(i,)) for i in range(n)]
            for t in workers:
                t.start()
            started = time.perf_counter()
            go.set()
            for t in workers:
                t.join()
            wall = time.perf_counter() - started
            alive = proc.poll() is None
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        db = sqlite3.connect(instance / "closetai.sqlite")
        try:
            stored = db.execute("SELECT count(*), count(DISTINCT sha256) FROM analyses").fetchone()
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            db.close()
        leftovers = [str(p.relative_to(instance)) for p in (instance / "media" / ".tmp").rglob("*")] \
            if (instance / "media" / ".tmp").exists() else []
        server_log = log.read_text(errors="replace")

    statuses = [r[0] for r in results]
    latencies = sorted(r[1] for r in results if r[0] == 201)
    ids = [r[2].get("id") for r in results if r[0] == 201]
    errors = sorted({r[2].get("error", "") for r in results if r[0] != 201})
    q = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else [float("nan")] * 19
    return {
        "uploads": n,
        "created": statuses.count(201),
        "server_errors_5xx": sum(500 <= s < 600 for s in statuses),
        "other_failures": sum(s != 201 and not 500 <= s < 600 for s in statuses),
        "errors": errors[:5],
        "distinct_ids": len(set(ids)),
        "stored_rows": stored[0],
        "stored_distinct_sha256": stored[1],
        "integrity_check": integrity,
        "tmp_leftovers": leftovers,
        "server_alive_after": alive,
        "database_locked_in_log": "database is locked" in server_log,
        "wall_s": round(wall, 2),
        "p50_s": round(statistics.median(latencies), 2) if latencies else None,
        "p95_s": round(q[18], 2),
        "max_s": round(latencies[-1], 2) if latencies else None,
        "photos_per_s": round(len(latencies) / wall, 2),
    }


def problems(r: dict) -> list[str]:
    out = []
    if r["created"] != r["uploads"]:
        out.append(f"{r['uploads'] - r['created']} uploads not created ({r['errors']})")
    if r["server_errors_5xx"]:
        out.append(f"{r['server_errors_5xx']} responses were 5xx")
    if not (r["distinct_ids"] == r["stored_rows"] == r["stored_distinct_sha256"] == r["uploads"]):
        out.append("stored rows / ids do not match the uploads one to one (lost or duplicated)")
    if r["integrity_check"] != "ok":
        out.append(f"integrity_check: {r['integrity_check']}")
    if r["tmp_leftovers"]:
        out.append(f"temporary files left: {r['tmp_leftovers'][:3]}")
    if not r["server_alive_after"]:
        out.append("the server died")
    if r["database_locked_in_log"]:
        out.append("'database is locked' in the server log")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50, help="concurrent uploads")
    ap.add_argument("--timeout", type=float, default=300, help="per-request client timeout, s")
    ap.add_argument("--threads", type=int, default=2, help="inference threads of the server")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    r = run(a.n, a.timeout, a.threads)
    bad = problems(r)
    print(f"{r['uploads']} concurrent photo uploads (640x480 JPEG) -> {r['created']} created, "
          f"{r['server_errors_5xx']} 5xx, {r['stored_rows']} rows stored ({r['stored_distinct_sha256']} distinct)")
    print(f"latency p50 {r['p50_s']} s, p95 {r['p95_s']} s, max {r['max_s']} s; "
          f"{r['photos_per_s']} photos/s over {r['wall_s']} s; integrity_check {r['integrity_check']}")
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1))
    for line in bad:
        print("FAIL:", line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
