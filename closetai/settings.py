"""Every CLOSETAI_* setting in one place: its variable, type, default and meaning (issue 19).

The web app (app.py: defaults < instance/config.py < environment < test config), the Celery workers and
the CLI (`closetai ingest`, `closetai worker`) all read them through `load()`, so a clip limit or an
analysis rate means the same on every entry point. `closetai settings` prints the table the README
shows; tests/test_settings.py checks the two agree.

Plain Python only: this module is imported before anything heavy (torch, the database) is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from closetai import ClosetAIError, boolean


class BadSetting(ClosetAIError):
    """A CLOSETAI_* variable that does not parse as its type."""


@dataclass(frozen=True)
class Setting:
    env: str  # the environment variable
    key: str  # the web app's config key (instance/config.py uses it too)
    kind: Callable[[str], Any]
    default: Any
    meaning: str
    shown_default: str | None = None  # for the table, where the default is not a plain value


def _text(raw: str) -> str:
    return raw


_text.__name__ = "text"

SETTINGS: tuple[Setting, ...] = (
    # where it runs and what it keeps
    Setting("CLOSETAI_HOST", "HOST", _text, "127.0.0.1", "address `python app.py` listens on"),
    Setting("CLOSETAI_PORT", "PORT", int, 5000, "port `python app.py` listens on", "5000"),
    Setting("CLOSETAI_INSTANCE", "INSTANCE", _text, None, "folder of the SQLite file, media and config.py",
            "`instance/` beside app.py"),
    Setting("CLOSETAI_DATABASE_URL", "DATABASE_URL", _text, None, "SQLAlchemy URL (PostgreSQL to scale out)",
            "SQLite file in the instance folder"),
    Setting("CLOSETAI_MEDIA_ROOT", "MEDIA_ROOT", _text, None, "stored photos, clips and crops", "`<instance>/media`"),
    Setting("CLOSETAI_ALLOWED_HOSTS", "ALLOWED_HOSTS", _text, "localhost,127.0.0.1,::1",
            "host names the server answers (comma-separated, `.example.com` with subdomains, `*` any); "
            "others get 400"),
    # the model
    Setting("CLOSETAI_MODEL", "MODEL_PATH", _text, None, "model file", "`models/closetai-ccp15.pt`"),
    Setting("CLOSETAI_DEVICE", "DEVICE", _text, "auto", "`cpu`, `cuda` or `auto`"),
    Setting("CLOSETAI_THREADS", "THREADS", int, None, "CPU threads for inference per process", "torch's default"),
    Setting("CLOSETAI_MIN_SCORE", "MIN_SCORE", float, None, "score threshold for stored detections",
            "the model's (0.5)"),
    Setting("CLOSETAI_BACKBONE_WEIGHTS", "BACKBONE_WEIGHTS", _text, None,
            "ImageNet backbone weights file for `closetai train`", "the installed package's"),
    # photos
    Setting("CLOSETAI_MAX_UPLOAD_MB", "MAX_UPLOAD_MB", float, 25.0, "largest photo upload"),
    Setting("CLOSETAI_MAX_PIXELS", "MAX_PIXELS", int, 40_000_000, "largest photo, checked before decoding"),
    Setting("CLOSETAI_ANALYSIS_MAX_SIDE", "ANALYSIS_MAX_SIDE", int, 1600,
            "larger photos are analysed and stored at this long side; 0 keeps full size"),
    # videos
    Setting("CLOSETAI_VIDEO_FPS", "VIDEO_FPS", float, 5.0, "frames analysed per second of clip"),
    Setting("CLOSETAI_VIDEO_MIN_SIZE", "VIDEO_MIN_SIZE", int, 448, "inference short side of video frames"),
    Setting("CLOSETAI_VIDEO_ALL_FRAMES", "VIDEO_ANNOTATE_ALL_FRAMES", boolean, True,
            "annotated video holds every frame at the clip's rate; `0`: only the analysed frames (faster)"),
    Setting("CLOSETAI_VIDEO_MAX_UPLOAD_MB", "VIDEO_MAX_UPLOAD_MB", float, 200.0, "largest clip upload"),
    Setting("CLOSETAI_VIDEO_MAX_DURATION_S", "VIDEO_MAX_DURATION_S", float, 300.0,
            "longest clip (web, workers and `closetai ingest`)"),
    Setting("CLOSETAI_VIDEO_MAX_PIXELS", "VIDEO_MAX_PIXELS", int, 3840 * 2160, "largest frame (4K UHD)"),
    Setting("CLOSETAI_VIDEO_SHOT_CUTS", "VIDEO_SHOT_CUTS", boolean, True,
            "tracks end at shot cuts; `0` carries them across by position"),
    Setting("CLOSETAI_VIDEO_REID", "VIDEO_REID", boolean, True,
            "after a cut, a garment like one of an earlier shot continues its track"),
    # jobs
    Setting("CLOSETAI_JOB_WORKERS", "JOB_WORKERS", int, 1, "video jobs at once in the web process"),
    Setting("CLOSETAI_JOB_STALE_S", "JOB_STALE_S", float, 60.0, "a running job silent this long is failed or taken over"),
    Setting("CLOSETAI_BROKER_URL", "BROKER_URL", _text, None, "`redis://...`: jobs run on `closetai worker`s",
            "unset: in the web process's threads"),
    Setting("CLOSETAI_BROKER_VISIBILITY_S", "BROKER_VISIBILITY_S", float, 1800.0,
            "how long a vanished worker machine's job waits before another worker takes it"),
    # the report
    Setting("CLOSETAI_REPORT_CHART_PROCESS", "REPORT_CHART_PROCESS", boolean, True,
            "a second process (~100 MB) draws some of a fresh `/report`'s charts; `0`: all in the web process"),
    # access control (closetai.web.auth): any of the first three turns it on
    Setting("CLOSETAI_PASSWORD", "PASSWORD", _text, None, "team password for the pages (`/login`)", "unset"),
    Setting("CLOSETAI_PASSWORD_HASH", "PASSWORD_HASH", _text, None, "instead of it, a werkzeug hash of it", "unset"),
    Setting("CLOSETAI_API_TOKENS", "API_TOKENS", _text, None, "comma-separated bearer tokens for scripts", "unset"),
    Setting("CLOSETAI_SECRET_KEY", "SECRET_KEY", _text, "dev",
            "signs the session cookie; your own 16+ characters with access control"),
    Setting("CLOSETAI_SECURE_COOKIES", "SECURE_COOKIES", boolean, None,
            "`0` sends the session cookie over plain http too", "on with access control"),
    Setting("CLOSETAI_SESSION_HOURS", "SESSION_HOURS", float, 12.0, "a login ends after this long without a request"),
)
BY_ENV = {s.env: s for s in SETTINGS}
BY_KEY = {s.key: s for s in SETTINGS}


def defaults() -> dict[str, Any]:
    """Config key -> default, for every setting."""
    return {s.key: s.default for s in SETTINGS}


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Config key -> value for the CLOSETAI_* variables that are set (and not empty)."""
    environ = os.environ if environ is None else environ
    out = {}
    for s in SETTINGS:
        raw = environ.get(s.env)
        if raw in (None, ""):
            continue
        try:
            out[s.key] = s.kind(raw.strip())
        except ValueError:
            raise BadSetting(f"{s.env}={raw!r} is not a valid {s.kind.__name__}") from None
    return out


def load(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every setting: the defaults with the environment over them (what workers and the CLI use)."""
    return {**defaults(), **from_env(environ)}


def markdown_table() -> str:
    """The README's settings table."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for s in SETTINGS:
        if s.shown_default is not None:
            shown = s.shown_default
        elif isinstance(s.default, bool):
            shown = f"`{int(s.default)}`"
        elif isinstance(s.default, int | float):
            shown = f"{s.default:,}" if isinstance(s.default, int) else f"{s.default:g}"
        else:
            shown = f"`{s.default}`"
        rows.append(f"| `{s.env}` | {shown} | {s.meaning} |")
    return "\n".join(rows)
