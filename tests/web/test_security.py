"""Security headers on every response and the cross-site request forgery guard (issue 6)."""

import io

import pytest

from tests.helpers import flat_png


@pytest.fixture
def client(app):
    """(test client, app): these tests read the app too."""
    return app.test_client(), app


@pytest.mark.parametrize("path", ["/", "/history", "/report", "/videos", "/api/v1/health", "/nope"])
def test_every_response_carries_nosniff_and_csp(client, path):
    c, _ = client
    r = c.get(path)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "null"},
])
def test_cross_site_uploads_and_deletes_are_refused(client, headers):
    c, app = client
    ok = c.post("/api/v1/analyses", data={"file": (io.BytesIO(flat_png()), "a.png")})
    assert ok.status_code == 201
    aid = ok.get_json()["id"]
    r = c.post("/api/v1/analyses", data={"file": (io.BytesIO(flat_png()), "b.png")}, headers=headers)
    assert r.status_code == 403 and "cross-site request refused" in r.get_json()["error"]
    r = c.post("/upload", data={"file": (io.BytesIO(flat_png()), "b.png")}, headers={**headers, "Accept": "text/html"})
    assert r.status_code == 403 and b"cross-site request refused" in r.data
    r = c.delete(f"/api/v1/analyses/{aid}", headers=headers)
    assert r.status_code == 403
    assert c.get(f"/api/v1/analyses/{aid}").status_code == 200  # still there
    listing = c.get("/api/v1/analyses").get_json()
    assert len(listing["analyses"] if isinstance(listing, dict) else listing) == 1  # nothing added


def test_same_origin_and_script_clients_pass(client):
    c, _ = client
    r = c.post("/api/v1/analyses", data={"file": (io.BytesIO(flat_png()), "a.png")},
               headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert r.status_code == 201
    aid = r.get_json()["id"]
    assert c.delete(f"/api/v1/analyses/{aid}").status_code == 204  # curl-like: no Origin header


def test_uploaded_media_is_never_served_as_html(client):
    c, _ = client
    r = c.post("/api/v1/analyses", data={"file": (io.BytesIO(flat_png()), "x.html")})
    assert r.status_code == 201
    body = r.get_json()
    photo = c.get(body["urls"]["photo"])
    assert photo.status_code == 200 and photo.mimetype.startswith("image/")
    assert photo.headers["X-Content-Type-Options"] == "nosniff"
