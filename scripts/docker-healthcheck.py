"""The container health checks (Dockerfile HEALTHCHECK, docker-compose.yml): exit 0 when healthy, else 1
with one line saying why (docker inspect shows it).

  python scripts/docker-healthcheck.py web      GET /api/v1/health on this container's server
  python scripts/docker-healthcheck.py worker   this container's Celery worker answers a ping on the broker

Standard library and celery only, so a check costs a fraction of a second every interval.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request


def allowed_host() -> str:
    """A Host header the server answers: it refuses names outside CLOSETAI_ALLOWED_HOSTS (400), and a
    deployment that names only its public host there must still pass its own health check."""
    for name in (os.environ.get("CLOSETAI_ALLOWED_HOSTS") or "").split(","):
        name = name.strip().lower().lstrip(".")
        if name and name != "*":
            return f"[{name}]" if ":" in name else name  # an IPv6 address goes in brackets
    return "127.0.0.1"


def check_web() -> str | None:
    port = int(os.environ.get("CLOSETAI_PORT", "8000"))
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/health",
                                     headers={"Host": f"{allowed_host()}:{port}"})
    try:
        with urllib.request.urlopen(request, timeout=4) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        return f"/api/v1/health answered {exc.code}: {exc.read(300).decode('utf-8', 'replace')}"
    except (OSError, ValueError) as exc:
        return f"/api/v1/health: {exc}"
    if not body.get("classes"):
        return f"/api/v1/health has no model classes: {str(body)[:200]}"
    return None


def check_worker() -> str | None:
    from celery import Celery

    broker = os.environ.get("CLOSETAI_BROKER_URL")
    if not broker:
        return "CLOSETAI_BROKER_URL is not set"
    app = Celery("closetai-healthcheck", broker=broker)
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_connection_max_retries = 1
    try:
        replies = app.control.ping(timeout=3.0)
    except Exception as exc:  # noqa: BLE001 (kombu raises many kinds; any of them means unhealthy)
        return f"broker {broker}: {exc}"
    # Worker names are closetai-<pid>@<hostname> (closetai.cli): only this container's own counts.
    host = socket.gethostname()
    mine = [name for reply in replies for name in reply if name.endswith(f"@{host}")]
    if not mine:
        return f"no worker on {host} answered a ping on the broker ({len(replies)} other workers did)"
    return None


def main() -> int:
    kind = sys.argv[1] if len(sys.argv) > 1 else "web"
    checks = {"web": check_web, "worker": check_worker}
    if kind not in checks:
        print(f"usage: {sys.argv[0]} web|worker", file=sys.stderr)
        return 2
    problem = checks[kind]()
    if problem:
        print(f"unhealthy: {problem}")
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
