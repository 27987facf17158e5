"""ClosetAI: find, segment, track and count clothing in street-fashion photos and videos.

Pipeline (one way): data -> model -> predict -> store -> report -> web/cli.
"""

import logging

__version__ = "0.1.0"


class ClosetAIError(Exception):
    """An error a user can act on (bad input, missing file, wrong format).

    The web layer turns it into a 4xx with the message; the CLI into exit code 2 and one line.
    """

    status = 400


def boolean(raw: str) -> bool:
    """An environment flag: 1/true/yes/on or 0/false/no/off, any case (the web app's and the workers')."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def sha256_file(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (uploads' content hash; the model a whitening was fitted on)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def one_malloc_arena() -> bool:
    """Make glibc malloc keep one arena for all threads (as MALLOC_ARENA_MAX=1 does), unless the
    environment already chose. Why: the web app infers in worker threads, and with a heap per thread
    the model's large per-frame buffers went back to the system and came back as fresh pages each time;
    the same clip's inference took ~25 % longer in a worker thread than in the main thread, ~10-15 %
    longer with one arena (bench/bench_web_video.py; README, "Speed"). Call it before the worker threads
    start: it changes only the arenas made afterwards. -> whether it was applied."""
    import ctypes
    import ctypes.util
    import os
    import sys

    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-8, 1))  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def quiet_libraries() -> None:
    """Log what an operator acts on (issue 20.10). Alembic's INFO lines (seven "setup plugin" at every
    start, each revision's docstring) say nothing an operator needs: closetai.storage.store logs one line when it
    upgrades the schema. waitress warns "Task queue depth is N" whenever a request waits a moment for one
    of the threads, which a page's burst of chart and media requests does on every visit."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
