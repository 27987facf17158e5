"""Access control for a server shared by a team: a login for the pages, bearer tokens for the API.

Off by default: one person on 127.0.0.1 needs no login. A configured secret turns it on:
CLOSETAI_PASSWORD (or CLOSETAI_PASSWORD_HASH, a werkzeug hash) lets people log in; CLOSETAI_API_TOKENS
(comma-separated) lets scripts send `Authorization: Bearer <token>`. Then every route except /login,
/logout, /static/... and /api/v1/health needs a logged-in session or a token: pages and media redirect to
/login?next=..., the API (and anything that is not a GET) answers 401. The session is Flask's signed
cookie (HttpOnly, SameSite=Lax, Secure unless CLOSETAI_SECURE_COOKIES=0); it carries a tag derived from
the secret key and the password, so changing either logs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.security import check_password_hash

from closetai.web.context import error_response

bp = Blueprint("auth", __name__)

# Reachable without credentials: the login itself, the stylesheet, and the container's HEALTHCHECK.
OPEN_ENDPOINTS = frozenset({"static", "pages.favicon", "auth.login", "auth.logout", "api.health"})
MIN_SECRET_CHARS = 16
_HASH_METHODS = ("scrypt", "pbkdf2")
_WWW_AUTHENTICATE = 'Bearer realm="ClosetAI"'


@dataclass(frozen=True)
class Access:
    """The configured secrets. `enabled` is False when none is set (the open single-user default)."""

    password: str | None = None
    password_hash: str | None = None
    tokens: tuple[bytes, ...] = ()
    session_tag: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.password or self.password_hash or self.tokens)

    @property
    def has_password(self) -> bool:
        return bool(self.password or self.password_hash)

    def check_password(self, candidate: str) -> bool:
        if self.password_hash:
            return check_password_hash(self.password_hash, candidate)
        if self.password:
            return hmac.compare_digest(candidate.encode(), self.password.encode())
        return False

    def check_token(self, candidate: str) -> bool:
        given = candidate.encode()
        matches = [hmac.compare_digest(given, token) for token in self.tokens]  # all of them: no early exit
        return any(matches)


def _fail(message: str) -> SystemExit:
    return SystemExit(f"closetai: {message}")


def access_from_config(config: Mapping[str, Any]) -> Access:
    """The app's Access from PASSWORD, PASSWORD_HASH, API_TOKENS and SECRET_KEY.

    Refuses (SystemExit, one line) a configuration that would turn access control on insecurely: the
    'dev' secret key (anyone could sign a session cookie), short tokens, a malformed hash.
    """
    password = config.get("PASSWORD") or None
    password_hash = config.get("PASSWORD_HASH") or None
    raw_tokens = config.get("API_TOKENS") or ()
    if isinstance(raw_tokens, str):
        raw_tokens = raw_tokens.split(",")
    tokens = tuple(t.strip() for t in raw_tokens if t and t.strip())
    if password and password_hash:
        raise _fail("set CLOSETAI_PASSWORD or CLOSETAI_PASSWORD_HASH, not both")
    if password_hash and not _looks_like_werkzeug_hash(password_hash):
        raise _fail("CLOSETAI_PASSWORD_HASH is not a werkzeug password hash (scrypt:... or pbkdf2:...); "
                    "make one with: python -c \"import getpass; from werkzeug.security import "
                    "generate_password_hash as h; print(h(getpass.getpass()))\"")
    short = [i for i, t in enumerate(tokens, 1) if len(t) < MIN_SECRET_CHARS]
    if short:
        raise _fail(f"CLOSETAI_API_TOKENS: token {short[0]} is shorter than {MIN_SECRET_CHARS} characters; "
                    "make one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
    access = Access(password=password, password_hash=password_hash, tokens=tuple(t.encode() for t in tokens))
    if not access.enabled:
        return access
    secret_key = config.get("SECRET_KEY") or ""
    if not isinstance(secret_key, str | bytes) or secret_key in ("dev", b"dev") or len(secret_key) < MIN_SECRET_CHARS:
        raise _fail(f"access control is on, so CLOSETAI_SECRET_KEY must be set to a random string of at least "
                    f"{MIN_SECRET_CHARS} characters (not the 'dev' default); make one with: "
                    "python -c \"import secrets; print(secrets.token_hex(32))\"")
    key = secret_key.encode() if isinstance(secret_key, str) else secret_key
    tag = hmac.new(key, b"closetai-login\0" + (password_hash or password or "").encode(), hashlib.sha256)
    return Access(password=password, password_hash=password_hash, tokens=access.tokens,
                  session_tag=tag.hexdigest()[:32])


def _looks_like_werkzeug_hash(value: str) -> bool:
    return value.count("$") == 2 and value.split(":", 1)[0] in _HASH_METHODS


class LoginThrottle:
    """Failed logins per client address: after `max_failures` inside `window_s` the address is refused
    (429) until the oldest of those failures is `window_s` old. In memory, per process.

    Behind a reverse proxy every client shares the proxy's address, so a guesser locks the team out for
    the window: a nuisance, not a breach; the proxy should throttle too.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float:
        """Seconds until `address` may try again; 0 when it may now."""
        with self._lock:
            times = self._recent(address)
            if len(times) < self.max_failures:
                return 0.0
            return max(0.0, times[0] + self.window_s - self.clock())

    def failed(self, address: str) -> None:
        with self._lock:
            self._recent(address).append(self.clock())
            if len(self._failures) > 1024:  # drop addresses that have gone quiet
                for stale in [a for a, t in self._failures.items() if not t or t[-1] < self.clock() - self.window_s]:
                    del self._failures[stale]

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        times = self._failures.setdefault(address, deque())
        while times and times[0] <= self.clock() - self.window_s:
            times.popleft()
        return times


def access() -> Access:
    return current_app.extensions["closetai.access"]


def throttle() -> LoginThrottle:
    return current_app.extensions["closetai.login_throttle"]


def logged_in() -> bool:
    tag = access().session_tag
    return bool(tag) and hmac.compare_digest(str(session.get("auth", "")), tag)


def safe_next(target: str | None) -> str:
    """Where to go after the login: only a path on this site ('/...'), never another host."""
    default = url_for("pages.index")
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def _here() -> str:
    query = request.query_string.decode("latin-1")
    return request.script_root + request.path + (f"?{query}" if query else "")


def _unauthorized(message: str, invalid_token: bool = False):
    response, status = error_response(message, 401)
    response = current_app.make_response((response, status))
    response.headers["WWW-Authenticate"] = _WWW_AUTHENTICATE + (', error="invalid_token"' if invalid_token else "")
    response.headers["Cache-Control"] = "no-store"
    return response


def _require_credentials():
    """before_request: let the request through only with a valid token or a logged-in session."""
    rules = access()
    if not rules.enabled or request.endpoint in OPEN_ENDPOINTS:
        return None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip() and rules.check_token(token.strip()):
            g.closetai_auth = "token"
            return None
        return _unauthorized("invalid credentials: send Authorization: Bearer <one of CLOSETAI_API_TOKENS>",
                             invalid_token=True)
    if logged_in():
        g.closetai_auth = "session"
        return None
    if request.path.startswith("/api/") or request.method not in ("GET", "HEAD"):
        return _unauthorized("login required: log in at /login, or send Authorization: Bearer <token>")
    return redirect(url_for("auth.login", next=_here()))


def _login_page(target: str, error: str | None = None, status: int = 200, headers: dict | None = None):
    return render_template("login.html", next=target, error=error, has_password=access().has_password), \
        status, headers or {}


@bp.route("/login", methods=["GET", "POST"])
def login():
    target = safe_next(request.values.get("next"))
    if not access().enabled:
        return redirect(target)
    if request.method == "GET":
        return redirect(target) if logged_in() else _login_page(target)
    address = request.remote_addr or "unknown"
    wait = throttle().retry_after(address)
    if wait:
        return _login_page(target, f"too many failed logins: try again in {math.ceil(wait / 60)} min", 429,
                           {"Retry-After": str(math.ceil(wait))})
    if not access().has_password:
        return _login_page(target, "this server has no password set: use the API with a bearer token", 403)
    if not access().check_password(request.form.get("password", "")):
        throttle().failed(address)
        current_app.logger.warning("failed login from %s", address)
        return _login_page(target, "wrong password", 401, {"WWW-Authenticate": _WWW_AUTHENTICATE})
    throttle().succeeded(address)
    session.clear()  # nothing from before the login survives it
    session.permanent = True  # expires PERMANENT_SESSION_LIFETIME after the last request
    session["auth"] = access().session_tag
    return redirect(target, code=303)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("auth.login"), code=303)


def init_app(app: Flask) -> None:
    """Register the login pages, the guard (after the cross-site guard) and the session cookie settings."""
    rules = app.extensions.get("closetai.access") or access_from_config(app.config)
    app.extensions["closetai.access"] = rules
    app.extensions["closetai.login_throttle"] = LoginThrottle(app.config.get("LOGIN_MAX_FAILURES", 5),
                                                              app.config.get("LOGIN_WINDOW_S", 300.0))
    secure = app.config.get("SECURE_COOKIES")
    app.config["SESSION_COOKIE_SECURE"] = rules.enabled if secure is None else bool(secure)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=float(app.config.get("SESSION_HOURS", 12)))
    app.register_blueprint(bp)
    app.before_request(_require_credentials)

    @app.after_request
    def _private_media(response):
        # Media is sent with `Cache-Control: public`; behind a login no shared cache may keep a copy.
        if rules.enabled and response.cache_control.public:
            response.cache_control.public = False
            response.cache_control.private = True
        return response

    @app.context_processor
    def _access_context():
        return {"access_on": rules.enabled, "logged_in": rules.enabled and logged_in(),
                "signed_in": not rules.enabled or bool(g.get("closetai_auth"))}

    if rules.enabled:
        how = [w for w, on in (("password login", rules.has_password),
                               (f"{len(rules.tokens)} API token(s)", rules.tokens)) if on]
        app.logger.info("access control on: %s", ", ".join(how))
