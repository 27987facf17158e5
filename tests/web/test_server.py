"""The server in front of the app (closetai.web.server, app.py): host names, request framing, shutdown.

DNS rebinding and request smuggling go through a real waitress server on loopback (in this process,
FakePredictor); shutdown is tested on a real `python app.py` with the shipped model, as docker stop and
Ctrl-C meet it.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app import create_app
from tests.helpers import REPO, SHIPPED_MODEL, FakePredictor, flat_png


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(port, app): the app behind closetai.web.server's waitress server, on 127.0.0.1."""
    from closetai.web.server import make_server

    app = create_app({"TESTING": True, "PREDICTOR": FakePredictor(), "REPORT_CHART_PROCESS": False,
                      "INSTANCE_PATH": tmp_path_factory.mktemp("server") / "instance"})
    port = _free_port()
    srv = make_server(app, "127.0.0.1", port, threads=2)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield port, app
    srv.close()
    srv.task_dispatcher.shutdown()
    app.extensions["closetai.jobs.runner"].stop()


def _exchange(port: int, raw: bytes, wait_s: float = 3.0) -> tuple[bytes, bool]:
    """Send raw bytes, read until the server closes or goes quiet -> (everything read, closed by server)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        s.sendall(raw)
        got, closed = b"", False
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                closed = True
                break
            got += chunk
        return got, closed


def _statuses(response_bytes: bytes) -> list[int]:
    """Status codes of the responses in a byte stream (a body needs no line break before the next)."""
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", response_bytes)]


# ---- DNS rebinding -------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["attacker.example:5000", "attacker.example", "127.0.0.1.nip.io:5000",
                                  "localhost.attacker.example", "[::2]:5000", ""])
def test_an_unknown_host_header_is_refused(server, host):
    port, _ = server
    got, _ = _exchange(port, f"GET /api/v1/analyses HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    assert _statuses(got) == [400], got[:300]
    body = json.loads(got.split(b"\r\n\r\n", 1)[1])
    assert "unknown host" in body["error"] and "CLOSETAI_ALLOWED_HOSTS" in body["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "localhost:5000", "LOCALHOST", "[::1]:5000", "127.0.0.1"])
def test_loopback_host_names_are_answered(server, host):
    port, _ = server
    got, _ = _exchange(port, f"GET /api/v1/analyses HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    assert _statuses(got) == [200], got[:300]


def test_a_rebound_page_cannot_delete_either(server):
    """The attack the guard is for: a cross-site page on a name resolving to 127.0.0.1 sends a DELETE
    whose Origin matches its own Host; both are the attacker's, so the Origin check alone passes it."""
    port, app = server
    client = app.test_client()
    aid = client.post("/api/v1/analyses", data={"file": (io.BytesIO(flat_png()), "a.png")}).get_json()["id"]
    got, _ = _exchange(port, (f"DELETE /api/v1/analyses/{aid} HTTP/1.1\r\nHost: attacker.example:{port}\r\n"
                              f"Origin: http://attacker.example:{port}\r\nConnection: close\r\n\r\n").encode())
    assert _statuses(got) == [400]
    assert client.get(f"/api/v1/analyses/{aid}").status_code == 200


def test_allowed_hosts_setting_adds_names_and_subdomains(tmp_path):
    app = create_app({"TESTING": True, "PREDICTOR": FakePredictor(), "REPORT_CHART_PROCESS": False,
                      "INSTANCE_PATH": tmp_path / "instance", "ALLOWED_HOSTS": "closet.example.com, .corp.example"})
    try:
        c = app.test_client()
        for host, status in [("closet.example.com", 200), ("closet.example.com:8000", 200),
                             ("a.corp.example", 200), ("corp.example", 200), ("localhost", 400),
                             ("evilcorp.example", 400), ("closet.example.com.evil", 400)]:
            assert c.get("/api/v1/health", headers={"Host": host}).status_code == status, host
    finally:
        app.extensions["closetai.jobs.runner"].stop()


# ---- request smuggling ----------------------------------------------------------------------------------

SMUGGLED = b"GET /api/v1/analyses HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.mark.parametrize("te", [b"Transfer-Encoding: chunked", b"transfer-encoding: chunked",
                                b"Transfer-Encoding : chunked", b"Transfer-Encoding: gzip, chunked"])
def test_content_length_with_transfer_encoding_is_refused_and_closed(server, te):
    port, _ = server
    chunked_body = b"0\r\n\r\n"
    request = (b"POST /api/v1/analyses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
               + b"Content-Length: " + str(len(chunked_body) + len(SMUGGLED)).encode() + b"\r\n" + te
               + b"\r\n\r\n" + chunked_body + SMUGGLED)
    got, closed = _exchange(port, request)
    assert _statuses(got) == [400], got[:400]  # one answer, the refusal: the smuggled GET never ran
    assert closed


def test_plain_chunked_and_plain_content_length_requests_still_work(server):
    port, _ = server
    for framing, body in ((b"Transfer-Encoding: chunked", b"4\r\nabcd\r\n0\r\n\r\n"), (b"Content-Length: 4", b"abcd")):
        got, _ = _exchange(port, b"POST /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + framing
                           + b"\r\nConnection: close\r\n\r\n" + body)
        assert _statuses(got) == [405], got[:300]  # framed and routed: health takes GET only
    got, _ = _exchange(port, b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 2)
    assert _statuses(got) == [200, 200]  # keep-alive pipelining is untouched


# ---- shutdown of a real `python app.py` -----------------------------------------------------------------

def _children(pid: int) -> set[int]:
    """Every descendant of pid, from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start_app(tmp_path: Path, ready_path: str = "/report") -> tuple[subprocess.Popen, int, Path]:
    """A real `python app.py` on a free loopback port, answering `ready_path`: (process, port, its log)."""
    import urllib.request

    port = _free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "CLOSETAI_INSTANCE": str(tmp_path / "instance"), "CLOSETAI_PORT": str(port),
           "CLOSETAI_DEVICE": "cpu", "CLOSETAI_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(log.read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=30) as r:
                assert r.status == 200
            return proc, port, log
        except OSError:
            time.sleep(0.3)


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="models/closetai-ccp15.pt not present")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
                         ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_the_server_stops_at_a_signal_and_leaves_no_process(tmp_path, signum):
    """docker stop, systemd and Ctrl-C: a clean shutdown within 5 s. SIGKILL (the OOM killer, kill -9)
    cannot be handled: the chart process notices its parent is gone and exits by itself."""
    proc, _port, log = _start_app(tmp_path)
    try:
        descendants = _children(proc.pid)
        assert descendants, "the chart process should be running"  # so the test can see it go
        started = time.monotonic()
        proc.send_signal(signum)
        proc.wait(15)
        took = time.monotonic() - started
        deadline = time.monotonic() + 4
        while any(_alive(p) for p in descendants) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p in descendants if _alive(p)]
        assert not left, (left, [Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p in left])
        if signum == signal.SIGKILL:
            return
        assert took <= 5.0, f"shutdown took {took:.1f} s"
        assert proc.returncode == 0, log.read_text()[-2000:]
        assert "shutting down" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="models/closetai-ccp15.pt not present")
def test_the_server_log_says_what_an_operator_needs_and_no_more(tmp_path):
    """issue 20.10: no alembic plugin lines at start, one line for the new schema, and no "Task queue
    depth" warnings from a burst of requests (a report page's charts and media) on the 4 threads."""
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    proc, port, log = _start_app(tmp_path, "/api/v1/health")

    def get(path: str) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
            r.read()
            return r.status

    try:
        with ThreadPoolExecutor(24) as pool:
            codes = list(pool.map(get, ["/api/v1/health", "/report", "/static/style.css"] * 16))
        assert set(codes) == {200}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    text = log.read_text()
    assert "setup plugin" not in text and "Running upgrade" not in text, text
    assert "Task queue depth" not in text, text
    assert text.count("database schema created to revision") == 1, text
    assert "ClosetAI serving on" in text
