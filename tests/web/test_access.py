"""Access control (closetai.web.auth, issue 6): off by default; with a configured secret every route but
/login, /logout, /static and /api/v1/health refuses a request without a session or a bearer token."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image
from werkzeug.security import generate_password_hash

from app import create_app
from closetai.web.auth import OPEN_ENDPOINTS
from tests.helpers import EmbeddingFakePredictor, needs_chromium, served
from tests.media_helpers import panned_frames, write_clip

PASSWORD = "correct horse battery staple"
TOKEN = "tok-" + "a1b2c3d4" * 4
OTHER_TOKEN = "tok-" + "z9y8x7w6" * 4
SECRET_KEY = "test-secret-" + "k" * 32
LOCKED = {"PASSWORD": PASSWORD, "API_TOKENS": f"{TOKEN}, {OTHER_TOKEN}", "SECRET_KEY": SECRET_KEY}
BEARER = {"Authorization": f"Bearer {TOKEN}"}
MEDIA_ENDPOINTS = {"pages.photo", "pages.thumb", "pages.crop", "pages.annotated", "pages.download_json",
                   "video.annotated", "video.track_crop", "video.timeline_chart"}


@pytest.fixture
def predictor():
    return EmbeddingFakePredictor()


def png(w: int = 96, h: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def upload_photo(client, headers=None):
    return client.post("/api/v1/analyses", data={"file": (io.BytesIO(png()), "look.png")}, headers=headers or {})


def is_login_redirect(response) -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def login(client, password: str = PASSWORD, next_url: str | None = None, **kw):
    data = {"password": password} | ({"next": next_url} if next_url is not None else {})
    return client.post("/login", data=data, **kw)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A locked app holding one photo analysis and one finished video job, made through the API with
    the token; returns (app, URL arguments that name them)."""
    tmp = tmp_path_factory.mktemp("access")
    app = create_app({"PREDICTOR": EmbeddingFakePredictor(), "INSTANCE_PATH": tmp / "instance", "TESTING": True,
                      "JOB_PROGRESS_INTERVAL_S": 0.0, **LOCKED})
    c = app.test_client()
    photo = upload_photo(c, BEARER)
    assert photo.status_code == 201, photo.get_json()
    clip = write_clip(tmp / "clip.mp4", panned_frames(10), fps=5).read_bytes()
    job = c.post("/api/v1/videos", data={"file": (io.BytesIO(clip), "clip.mp4")}, headers=BEARER)
    assert job.status_code == 202, job.get_json()
    job_id = job.get_json()["job_id"]
    deadline = time.monotonic() + 60
    while (status := c.get(f"/api/v1/jobs/{job_id}", headers=BEARER).get_json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status["status"] == "done", status
    video = c.get(f"/api/v1/videos/{job_id}", headers=BEARER).get_json()
    crop = photo.get_json()["detections"][0]["crop"]  # /media/<id>/crops/<idx>.jpg
    items = c.get(f"/api/v1/analyses/{photo.get_json()['id']}/items", headers=BEARER).get_json()
    args = {"item_id": items["detections"]["0"], "analysis_id": photo.get_json()["id"], "idx": int(crop.rsplit("/", 1)[1].removesuffix(".jpg")),
            "job_id": job_id, "track_no": video["tracks"][0]["track_id"], "name": "popular", "fmt": "svg",
            "filename": "style.css"}
    yield app, args, video["analysis_id"]
    app.extensions["closetai.jobs.runner"].stop(timeout=30)


def guarded_requests(app, args: dict, video_analysis_id: int):
    """(endpoint, method, url) for every route and method of the app except the open ones."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in OPEN_ENDPOINTS:
            continue
        values = {k: args[k] for k in rule.arguments}
        if rule.endpoint == "video.by_analysis":
            values["analysis_id"] = video_analysis_id
        url = app.url_map.bind("localhost").build(rule.endpoint, values)
        out += [(rule.endpoint, m, url) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return out


def test_the_open_routes_are_only_login_static_and_health(stored):
    app, _, _ = stored
    # the favicon only redirects to /static/favicon.svg (browsers ask for it on the login page too)
    assert OPEN_ENDPOINTS == {"static", "pages.favicon", "auth.login", "auth.logout", "api.health"}
    c = app.test_client()
    assert c.get("/api/v1/health").status_code == 200  # the container's HEALTHCHECK
    assert c.get("/static/style.css").status_code == 200
    assert c.get("/favicon.ico").headers["Location"].endswith("/static/favicon.svg")
    assert c.get("/login").status_code == 200
    assert c.post("/logout").status_code == 303


def test_every_route_refuses_a_request_without_credentials(stored):
    app, args, video_aid = stored
    requests = guarded_requests(app, args, video_aid)
    assert MEDIA_ENDPOINTS <= {e for e, _, _ in requests}
    assert {e.split(".")[0] for e, _, _ in requests} == {"pages", "api", "report", "video", "video_api", "similar",
                                                        "similar_api"}
    for endpoint, method, url in requests:
        r = app.test_client().open(url, method=method)
        if url.startswith("/api/") or method != "GET":
            assert r.status_code == 401, (endpoint, method, url, r.status_code)
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            if url.startswith("/api/"):
                assert "login required" in r.get_json()["error"]
        else:  # pages and media send a browser to the login page
            assert is_login_redirect(r), (endpoint, method, url, r.status_code)
        assert b"look.png" not in r.data and b"clip.mp4" not in r.data


def test_every_route_refuses_a_wrong_or_malformed_token(stored):
    app, args, video_aid = stored
    for header in (f"Bearer {TOKEN[:-1]}x", f"Bearer {TOKEN}extra", "Bearer ", f"Basic {TOKEN}", TOKEN):
        for endpoint, method, url in guarded_requests(app, args, video_aid):
            r = app.test_client().open(url, method=method, headers={"Authorization": header})
            assert r.status_code == 401, (header, endpoint, method, url, r.status_code)
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_the_refused_urls_are_real_ones(stored):
    """The same URLs answer with the token, so the refusals above are not 404s in disguise."""
    app, args, video_aid = stored
    c = app.test_client()
    for endpoint, method, url in guarded_requests(app, args, video_aid):
        if method != "GET":
            continue
        r = c.get(url, headers=BEARER)
        assert r.status_code in (200, 302), (endpoint, url, r.status_code)
        assert not r.headers.get("Location", "").startswith("/login")
        if endpoint in MEDIA_ENDPOINTS:  # no shared cache may keep what needs a login
            assert "public" not in r.headers.get("Cache-Control", ""), (endpoint, r.headers["Cache-Control"])


def test_media_urls_guessed_by_id_are_refused(stored):
    app, args, _ = stored
    aid, job = args["analysis_id"], args["job_id"]
    c = app.test_client()
    for url in (f"/media/{aid}/photo.jpg", f"/media/{aid}/thumb.jpg", f"/media/{aid}/crops/0.jpg",
                f"/analyses/{aid}/annotated.png", f"/analyses/{aid}.json", f"/videos/{job}/annotated.mp4",
                f"/videos/{job}/tracks/1.jpg", "/media/999/photo.jpg", "/videos/999/annotated.mp4"):
        assert is_login_redirect(c.get(url)), url
        assert c.get(url, headers={"Authorization": f"Bearer {OTHER_TOKEN[:-1]}"}).status_code == 401, url
    assert c.get(f"/api/v1/videos/{job}").status_code == 401
    assert c.get(f"/media/{aid}/photo.jpg", headers=BEARER).mimetype == "image/jpeg"


def test_the_api_works_with_either_token_and_nothing_changes_without_one(make_app):
    app = make_app(**LOCKED)
    c = app.test_client()
    created = upload_photo(c, BEARER)
    assert created.status_code == 201
    aid = created.get_json()["id"]
    other = {"Authorization": f"bearer {OTHER_TOKEN}"}  # the scheme is case-insensitive
    assert c.get(f"/api/v1/analyses/{aid}", headers=other).get_json()["id"] == aid
    assert c.get("/api/v1/analyses", headers=BEARER).get_json()["total"] == 1
    assert c.get(created.get_json()["urls"]["photo"], headers=BEARER).status_code == 200
    assert upload_photo(c).status_code == 401
    assert c.delete(f"/api/v1/analyses/{aid}").status_code == 401
    assert c.delete(f"/api/v1/analyses/{aid}", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.get("/api/v1/analyses", headers=BEARER).get_json()["total"] == 1  # nothing added or removed
    assert c.delete(f"/api/v1/analyses/{aid}", headers=BEARER).status_code == 204


def test_login_opens_the_pages_and_the_api_logout_closes_them(make_app):
    app = make_app(**LOCKED)
    c = app.test_client()
    first = c.get("/history")
    assert is_login_redirect(first) and first.headers["Location"] == "/login?next=/history"
    page = c.get(first.headers["Location"])
    assert page.status_code == 200 and b'name="password"' in page.data and b'value="/history"' in page.data
    assert b"Log out" not in page.data

    wrong = login(c, "correct horse battery stapler", "/history")
    assert wrong.status_code == 401 and b"wrong password" in wrong.data
    assert "Set-Cookie" not in wrong.headers
    assert is_login_redirect(c.get("/history"))

    with c.session_transaction() as s:
        s["planted"] = "before the login"
    ok = login(c, next_url="/history")
    assert ok.status_code == 303 and ok.headers["Location"] == "/history"
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    with c.session_transaction() as s:
        assert "planted" not in s  # the session is started afresh at the login
    history = c.get("/history")
    assert history.status_code == 200 and b"Log out" in history.data and b">History</a>" in history.data
    assert c.get("/login").headers["Location"] == "/"  # already logged in

    # the pages' scripts call the API with the cookie; the cross-site guard still applies
    same_site = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    created = upload_photo(c, same_site)
    assert created.status_code == 201
    assert c.get(created.get_json()["urls"]["thumb"]).status_code == 200
    assert upload_photo(c, {"Origin": "http://evil.example"}).status_code == 403
    assert c.post("/logout", headers={"Origin": "http://evil.example"}).status_code == 403

    out = c.post("/logout", headers=same_site)
    assert out.status_code == 303 and out.headers["Location"] == "/login"
    assert is_login_redirect(c.get("/history"))
    assert c.get("/api/v1/analyses").status_code == 401


def test_a_password_hash_from_the_environment_works(make_app, monkeypatch):
    monkeypatch.setenv("CLOSETAI_PASSWORD_HASH", generate_password_hash(PASSWORD))
    monkeypatch.setenv("CLOSETAI_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("CLOSETAI_API_TOKENS", TOKEN)
    monkeypatch.setenv("CLOSETAI_SECURE_COOKIES", "off")  # a plain-http LAN deployment
    app = make_app()
    c = app.test_client()
    assert is_login_redirect(c.get("/"))
    assert login(c, app.config["PASSWORD_HASH"]).status_code == 401  # the hash is not the password
    ok = login(c)
    assert ok.status_code == 303 and "Secure" not in ok.headers["Set-Cookie"]
    assert c.get("/").status_code == 200
    assert app.test_client().get("/api/v1/analyses", headers=BEARER).status_code == 200


def test_a_new_password_or_secret_key_ends_old_sessions(make_app):
    old = make_app(**LOCKED)
    c = old.test_client()
    login(c)
    cookie = c.get_cookie("session").value
    for change in ({"PASSWORD": PASSWORD + "!"}, {"SECRET_KEY": SECRET_KEY + "2"}):
        new = make_app(**(LOCKED | change)).test_client()
        new.set_cookie("session", cookie)
        assert is_login_redirect(new.get("/")), change
    same = make_app(**LOCKED).test_client()
    same.set_cookie("session", cookie)
    assert same.get("/").status_code == 200


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example",
                                    "javascript:alert(1)", "http:/evil.example", "evil.example",
                                    "/\t/evil.example", "\\\\evil.example"])
def test_login_never_redirects_off_site(make_app, target):
    app = make_app(**LOCKED)
    c = app.test_client()
    r = login(c, next_url=target)
    assert r.status_code == 303 and r.headers["Location"] == "/"
    assert c.get("/login", query_string={"next": target}).headers["Location"] == "/"


def test_login_returns_to_the_page_asked_for_with_its_query(make_app):
    c = make_app(**LOCKED).test_client()
    first = c.get("/report?kind=photo&period=week")
    assert is_login_redirect(first)
    target = c.get(first.headers["Location"])
    assert b'value="/report?kind=photo&amp;period=week"' in target.data
    r = login(c, next_url="/report?kind=photo&period=week")
    assert r.headers["Location"] == "/report?kind=photo&period=week"


def test_repeated_wrong_passwords_lock_the_address_out_for_a_while(make_app):
    app = make_app(**LOCKED, LOGIN_MAX_FAILURES=3, LOGIN_WINDOW_S=300.0)
    now = [1000.0]
    app.extensions["closetai.login_throttle"].clock = lambda: now[0]
    c = app.test_client()
    for _ in range(3):
        assert login(c, "guess").status_code == 401
    locked = login(c)
    assert locked.status_code == 429 and b"too many failed logins" in locked.data
    assert int(locked.headers["Retry-After"]) == 300
    other = app.test_client()  # another address is not affected
    assert login(other, environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 303
    now[0] += 301
    assert login(c).status_code == 303


def test_tokens_only_closes_the_pages(make_app):
    c = make_app(API_TOKENS=TOKEN, SECRET_KEY=SECRET_KEY).test_client()
    assert is_login_redirect(c.get("/"))
    assert b"no password set" in c.get("/login").data
    assert login(c, "").status_code == 403
    assert c.get("/", headers=BEARER).status_code == 200


@pytest.mark.parametrize("config, message", [
    ({"PASSWORD": PASSWORD}, "CLOSETAI_SECRET_KEY must be set"),
    ({"API_TOKENS": TOKEN, "SECRET_KEY": "dev"}, "CLOSETAI_SECRET_KEY must be set"),
    ({"PASSWORD": PASSWORD, "SECRET_KEY": "short"}, "at least 16 characters"),
    ({"API_TOKENS": "short-token", "SECRET_KEY": SECRET_KEY}, "token 1 is shorter than 16"),
    ({"PASSWORD": PASSWORD, "PASSWORD_HASH": generate_password_hash(PASSWORD), "SECRET_KEY": SECRET_KEY},
     "not both"),
    ({"PASSWORD_HASH": "plain-text-password", "SECRET_KEY": SECRET_KEY}, "not a werkzeug password hash"),
])
def test_an_insecure_configuration_refuses_to_start(make_app, config, message):
    with pytest.raises(SystemExit) as stop:
        make_app(**config)
    text = str(stop.value.code)
    assert message in text and text.startswith("closetai: ") and "\n" not in text
    assert PASSWORD not in text


def test_a_bad_flag_in_the_environment_refuses_to_start(make_app, monkeypatch):
    monkeypatch.setenv("CLOSETAI_SECURE_COOKIES", "maybe")
    with pytest.raises(SystemExit, match="CLOSETAI_SECURE_COOKIES='maybe' is not a valid boolean"):
        make_app()


def test_access_is_open_by_default(make_app):
    app = make_app()
    c = app.test_client()
    created = upload_photo(c)
    assert created.status_code == 201
    urls = created.get_json()["urls"]
    for url in ("/", "/history", "/report", "/videos", urls["page"], urls["photo"], urls["json"], "/api/v1/analyses"):
        r = c.get(url)
        assert r.status_code == 200, url
        assert b"Log out" not in r.data
    # private and revalidated even when open: a deleted photo must not show from the cache (issue 20.15)
    assert c.get(urls["photo"]).headers["Cache-Control"] == "private, no-cache"
    assert c.get("/login?next=/history").headers["Location"] == "/history"
    assert "Set-Cookie" not in c.get("/").headers
    assert app.config["SESSION_COOKIE_SECURE"] is False
    assert c.delete(f"/api/v1/analyses/{created.get_json()['id']}").status_code == 204


@pytest.mark.browser
@needs_chromium
def test_a_browser_logs_in_uploads_a_photo_and_logs_out(make_app, browser, tmp_path):
    app = make_app(**LOCKED)
    photo = tmp_path / "street.png"
    photo.write_bytes(png(300, 400))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        with served(app) as base:
            page.goto(base + "/")
            assert page.url == base + "/login?next=/"
            page.fill("#password", "not it")
            page.click("button[type=submit]")
            assert page.locator("#login-error").inner_text() == "wrong password"
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(base + "/")
            cookie = next(c for c in context.cookies() if c["name"] == "session")
            assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Lax"  # kept on http://127.0.0.1

            page.set_input_files("#file", str(photo))  # the page's script posts to the API with the cookie
            page.wait_for_url(base + "/analyses/*", timeout=30_000)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            assert page.locator("#items .item").count() == 1
            result = page.url

            page.click("nav button:has-text('Log out')")
            page.wait_for_url(base + "/login")
            page.goto(result)
            assert page.url.startswith(base + "/login?next=/analyses/")
            photo_url = base + f"/media/{result.rsplit('/', 1)[1]}/photo.jpg"
            assert page.request.get(photo_url, max_redirects=0).status == 302
    finally:
        context.close()
