"""Serving the app with waitress (`python app.py`): strict request framing and a clean shutdown.

- Framing: a request carrying both Content-Length and Transfer-Encoding is refused with 400 and its
  connection closed, before waitress frames its body (RFC 9112 section 6.1). Otherwise a front end that
  frames by Content-Length and this server, which frames by chunks, disagree on where the request ends,
  and the bytes in between run as a second, smuggled request. Checked here, in our own parser class,
  so it holds whatever waitress version is installed.
- Shutdown: SIGTERM (docker stop, systemd) and SIGINT (Ctrl-C) stop accepting, let the request threads
  finish, stop the job threads (a running job is marked failed) and the chart process, then return, so
  no process is left behind.
"""

from __future__ import annotations

import logging
import signal
import threading

from flask import Flask
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import create_server

log = logging.getLogger(__name__)

_FRAMING_HEADERS = {b"content-length", b"transfer-encoding"}


def header_names(header_block: bytes) -> list[bytes]:
    """Lower-cased field names of a raw request head (request line excluded)."""
    names = []
    for line in header_block.split(b"\n")[1:]:
        name, sep, _ = line.partition(b":")
        if sep:
            names.append(name.strip(b" \t\r").lower())
    return names


class StrictRequestParser(HTTPRequestParser):
    def parse_header(self, header_plus: bytes) -> None:
        if _FRAMING_HEADERS <= set(header_names(header_plus)):
            # waitress answers a ParsingError with 400 Bad Request and closes the connection.
            raise ParsingError("Content-Length and Transfer-Encoding in one request (RFC 9112 section 6.1)")
        super().parse_header(header_plus)


class StrictChannel(HTTPChannel):
    parser_class = StrictRequestParser


def make_server(app: Flask, host: str, port: int, threads: int = 4):
    """A waitress server for app with the strict parser; `.run()` serves until `.close()`."""
    server = create_server(app, host=host, port=port, threads=threads, ident="closetai")
    server.channel_class = StrictChannel
    return server


def serve(app: Flask, host: str, port: int, threads: int = 4) -> None:
    """Serve until SIGTERM or SIGINT; returns once the request threads are done (at most ~5 s)."""
    server = make_server(app, host, port, threads)
    stopping = threading.Event()

    def _stop(signum, frame) -> None:  # noqa: ANN001 (signal's)
        if stopping.is_set():
            return
        stopping.set()
        log.info("%s: shutting down", signal.Signals(signum).name)
        # Raised inside waitress' loop, which answers KeyboardInterrupt by shutting its task threads down.
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        server.close()
        log.info("stopped")


def main() -> None:
    """`python app.py`: build the app, warn about an open or unreachable setup, serve until stopped."""
    from closetai import quiet_libraries
    from closetai.web.factory import create_app
    from closetai.web.security import LOOPBACK_HOSTS, allowed_hosts

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries()
    _stop_on_sigterm()
    try:
        app = create_app()
    except KeyboardInterrupt:
        _shutdown(None)
        return
    app.logger.setLevel(logging.INFO)
    host, port = app.config["HOST"], app.config["PORT"]
    info = app.extensions["closetai.predictor"].info
    if host not in LOOPBACK_HOSTS and not app.extensions["closetai.access"].enabled:
        log.warning("listening on %s with access control off: anyone who can reach it can see and delete "
                    "every analysis (set CLOSETAI_PASSWORD and CLOSETAI_SECRET_KEY)", host)
    if host not in LOOPBACK_HOSTS and allowed_hosts(app.config["ALLOWED_HOSTS"]) == LOOPBACK_HOSTS:
        log.warning("listening on %s but answering only to the host names %s: set CLOSETAI_ALLOWED_HOSTS to "
                    "the name (or address) people type in their browser", host, ", ".join(LOOPBACK_HOSTS))
    log.info("ClosetAI serving on http://%s:%d (model %s on %s)", host, port, info["name"], info["device"])
    runner = app.extensions["closetai.jobs.runner"]
    try:
        runner.start()  # resume jobs left queued by the last run now, not at the first request
        serve(app, host=host, port=port, threads=4)
    except KeyboardInterrupt:
        pass
    finally:
        _shutdown(runner)


def _stop_on_sigterm() -> None:
    """SIGTERM (docker stop, systemd) ends start-up like Ctrl-C: through the finally blocks, not at once."""
    def _interrupt(signum, frame):  # noqa: ANN001 (signal's)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)


def _shutdown(runner) -> None:  # noqa: ANN001
    """Stop what the server started, so nothing outlives it: the job threads (a job cut short is marked
    failed: "cancelled: the server shut down ...") and the chart process."""
    from closetai.web.report import chart_process

    for sig in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl-C must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    if runner is not None:
        runner.stop(timeout=3.0)
    chart_process().stop()
