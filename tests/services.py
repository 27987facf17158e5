"""Real PostgreSQL and Redis servers for the scale-out tests (issue 8), each a throw-away instance on
loopback in a temporary folder, started and stopped by the tests themselves.

    with postgres_server() as url: ...      # postgresql+psycopg://closetai@127.0.0.1:PORT/closetai
    with redis_server(tmp) as url: ...      # redis://127.0.0.1:PORT/0

Both need the Debian packages (postgresql, redis-server; .ci/run installs them); tests skip without.
PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` system user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen | None, what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-1500:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start on port {port}: {log.read_text(errors='replace')[-1500:]}")


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def have_postgres() -> bool:
    return pg_bin() is not None


def have_redis() -> bool:
    return shutil.which("redis-server") is not None


needs_postgres = pytest.mark.skipif(not have_postgres(), reason="needs PostgreSQL (apt-get install postgresql)")
needs_redis = pytest.mark.skipif(not have_redis(), reason="needs Redis (apt-get install redis-server)")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """An empty PostgreSQL cluster with database `closetai` owned by role `closetai` (trust auth on
    loopback only). Yields a SQLAlchemy URL."""
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("needs PostgreSQL (apt-get install postgresql)")
    # Its own folder under /tmp, not `tmp`: pytest's folders are private to root, and as root the
    # cluster runs as `postgres`, which must be able to reach its data directory.
    tmp = Path(tempfile.mkdtemp(prefix="closetai-pg-"))
    data, log = tmp / "pgdata", tmp / "postgres.log"
    data.mkdir()
    log.touch()
    demote = None
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (tmp, data, log):
            os.chown(path, user.pw_uid, user.pw_gid)

        def demote() -> None:  # noqa: E306
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
    made = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "closetai", "--auth=trust", "-E", "UTF8",
                           "--no-sync"], capture_output=True, text=True, preexec_fn=demote)
    if made.returncode:
        raise RuntimeError(f"initdb failed: {made.stderr.strip()[-1000:]}")
    port = free_port()
    proc = subprocess.Popen([str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
                             "-c", f"unix_socket_directories={tmp}", "-c", "fsync=off", "-c", "max_connections=100"],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, preexec_fn=demote)
    try:
        _wait_port(port, proc, "postgres", log)
        deadline = time.monotonic() + 30
        while True:  # the port opens before the cluster accepts logins
            made = subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "closetai",
                                   "closetai"], capture_output=True, text=True)
            if made.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"createdb failed: {made.stderr}")
            time.sleep(0.2)
        yield f"postgresql+psycopg://closetai@127.0.0.1:{port}/closetai"
    finally:
        proc.send_signal(signal.SIGINT)  # "fast" shutdown: SIGTERM would wait for pooled connections
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A Redis server without persistence on loopback. Yields its URL (database 0)."""
    if not have_redis():
        pytest.skip("needs Redis (apt-get install redis-server)")
    tmp.mkdir(parents=True, exist_ok=True)
    port, log = free_port(), tmp / "redis.log"
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)], stdout=log.open("ab"), stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, "redis-server", log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
