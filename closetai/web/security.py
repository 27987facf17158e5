"""Request guards every route passes: the Host allow-list (DNS rebinding), the same-origin check on
state-changing requests (CSRF), and the security headers on every response."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request

from closetai.web.context import error_response

# Pages only load our own scripts (no inline ones); inline style attributes and the <style> inside
# matplotlib's SVGs need 'unsafe-inline' for styles. Uploaded media is never HTML, and nosniff stops a
# browser from guessing otherwise.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


_STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def allowed_hosts(raw: str | None) -> tuple[str, ...]:
    """CLOSETAI_ALLOWED_HOSTS ("closet.example.com,.internal", "*" for any) -> lower-case names; a name
    starting with a dot also allows its subdomains. Empty or None: the loopback names."""
    names = tuple(n.strip().lower() for n in (raw or "").split(",") if n.strip())
    return names or LOOPBACK_HOSTS


def host_allowed(host_header: str, allowed: tuple[str, ...]) -> bool:
    """Is the Host header (name[:port], [v6][:port]) one of the allowed names?

    Written here rather than Flask's TRUSTED_HOSTS because werkzeug's check refuses a bracketed IPv6
    host ("[::1]:5000", what a browser sends for http://[::1]:5000) and is case-sensitive.
    """
    if "*" in allowed:
        return True
    try:
        name = urlsplit("//" + host_header).hostname  # lower-cased, brackets and port removed
    except ValueError:  # "[::1" and other malformed hosts
        return False
    if not name:
        return False
    return any(name == ref or (ref.startswith(".") and (name.endswith(ref) or name == ref[1:]))
               for ref in allowed)


def register_security(app: Flask) -> None:
    hosts = allowed_hosts(app.config.get("ALLOWED_HOSTS"))

    @app.before_request
    def _known_host_only():
        """DNS rebinding guard: a page on attacker.example whose name an attacker points at 127.0.0.1 makes
        the browser send `Host: attacker.example`; answering it would let that page read every photo and
        delete analyses, and the Origin check below would compare with that same host. So only the
        configured names are answered (loopback by default), whatever the method."""
        host = request.headers.get("Host", "")
        if not host_allowed(host, hosts):
            shown = host[:100]
            return error_response(f"unknown host {shown!r}: this server answers only to {', '.join(hosts)} "
                                  "(set CLOSETAI_ALLOWED_HOSTS to add the name people use)", 400)
        return None

    @app.before_request
    def _same_origin_only():
        """Cross-site request forgery guard for state-changing requests.

        Browsers send Origin (and Sec-Fetch-Site) on every POST/DELETE; a page on another site posting a
        form or a fetch to this server is refused. Clients that send neither (curl, scripts) are not
        browsers acting for a visitor and pass. This is OWASP's standard-header check, chosen over
        per-form tokens so the JSON API stays usable from scripts without a session.
        """
        if request.method not in _STATE_CHANGING:
            return None
        site = request.headers.get("Sec-Fetch-Site")
        origin = request.headers.get("Origin")
        if site in ("cross-site", "same-site"):
            return error_response("cross-site request refused: submit the form from this site", 403)
        if origin and origin != "null" and origin.rstrip("/") != request.host_url.rstrip("/"):
            return error_response("cross-site request refused: submit the form from this site", 403)
        if origin == "null":
            return error_response("cross-site request refused: submit the form from this site", 403)
        return None

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

