"""Every page in a real browser (Debian chromium via Playwright) at phone size (390x844) and desktop size,
with real data: CCP photos uploaded through the API and a clip analysed by the job runner, all with the
shipped model, served by waitress on loopback."""

from __future__ import annotations

import base64
import io
import time

import pytest

from tests.helpers import CCP, browser_test_with_photos, served

PHOTOS = [CCP / "photos" / n for n in ("0003.jpg", "0005.jpg", "0010.jpg")]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

pytestmark = browser_test_with_photos(PHOTOS)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Three photos and one clip analysed by the shipped model; yields (base_url, app, ids)."""
    from app import create_app
    from closetai.vision.predict import Predictor
    from tests.media_helpers import ccp_photo_clip

    app = create_app({"PREDICTOR": Predictor(device="cpu", threads=2),
                      "INSTANCE_PATH": tmp_path_factory.mktemp("instance")})
    client = app.test_client()
    photo_ids = []
    for photo in PHOTOS:
        with photo.open("rb") as f:
            r = client.post("/api/v1/analyses", data={"file": (f, photo.name), "source": "CCP street"})
        assert r.status_code == 201, r.get_json()
        photo_ids.append(r.get_json()["id"])
    clip = ccp_photo_clip(tmp_path_factory.mktemp("clip") / "street walk.mp4")
    with clip.open("rb") as f:
        r = client.post("/api/v1/videos", data={"file": (f, clip.name)})
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["job_id"]
    deadline = time.monotonic() + 300
    while client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, "the clip was not analysed in 5 minutes"
        time.sleep(1)
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "done"
    with served(app) as base:
        yield base, app, {"photos": photo_ids, "job": job_id}
    app.extensions["closetai.jobs.runner"].stop()


def pages_of(ids) -> list[str]:
    return ["/", "/videos", f"/videos/{ids['job']}", "/history", f"/analyses/{ids['photos'][0]}", "/search",
            "/report", "/report/outfits"]


def overflow(page) -> dict:
    return page.evaluate("""() => ({scroll: document.documentElement.scrollWidth, view: window.innerWidth,
        wide: Array.from(document.querySelectorAll('body *')).filter(e => {
            const r = e.getBoundingClientRect(); return r.right > window.innerWidth + 1 && r.width > 0
                && !e.closest('.scroll-x'); }).slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id)})""")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_no_page_is_wider_than_the_window(site, browser, viewport):
    base, _app, ids = site
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    for path in pages_of(ids):
        page.goto(base + path)
        page.wait_for_load_state("load")
        if path.startswith("/analyses/"):
            page.wait_for_selector("body[data-ready='1']")
        # the report's number tables are open or closed depending on their length: open them all
        page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
        got = overflow(page)
        assert got["scroll"] <= got["view"], (path, got)
    context.close()


def test_phone_video_page_fits(site, browser):
    base, _app, ids = site
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(base + f"/videos/{ids['job']}")
    page.wait_for_function("() => document.getElementById('annotated').readyState >= 1", timeout=30_000)
    video = page.locator("video#annotated").bounding_box()
    assert video["x"] >= 0 and video["x"] + video["width"] <= PHONE["width"]
    # the track table may scroll sideways, inside its own box
    for selector in (".video-result .scroll-x", ".downloads"):
        box = page.locator(selector).first.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], selector
    context.close()


def screen_font_sizes(page, selector: str) -> list[float]:
    """On-screen font size (CSS px) of every SVG text under selector: its font size times the scale the
    SVG is drawn at."""
    return page.evaluate("""(sel) => Array.from(document.querySelectorAll(sel + ' svg text')).map(t => {
        const m = t.getScreenCTM(); return parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b); })""",
                         selector)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_chart_text_is_readable(site, browser, viewport):
    base, _app, ids = site
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(base + "/report")
    sizes = screen_font_sizes(page, "figure.chart")
    assert sizes and min(sizes) >= 9, sorted(sizes)[:5]
    page.goto(base + f"/videos/{ids['job']}")
    sizes = screen_font_sizes(page, "#timeline")
    assert sizes and min(sizes) >= 9, sorted(sizes)[:5]
    context.close()


def test_box_labels_do_not_overlap_on_a_phone(site, browser):
    base, _app, ids = site
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    for analysis_id in ids["photos"]:
        page.goto(base + f"/analyses/{analysis_id}")
        page.wait_for_selector("body[data-ready='1']")
        page.locator("#min-score").evaluate("el => { el.value = el.min; el.dispatchEvent(new Event('input')); }")
        boxes = page.evaluate("() => JSON.parse(document.getElementById('overlay').dataset.labels || 'null')")
        shown = int(page.inner_text("#shown-count"))
        assert boxes is not None and (1 if shown else 0) <= len(boxes) <= shown
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
                assert apart, (analysis_id, a, b)
    context.close()


def test_no_request_of_any_page_fails(site, browser):
    """Every page and what it loads (the favicon included, which chromium asks for) answers below 400."""
    base, _app, ids = site
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    failed = []
    page.on("response", lambda r: failed.append((r.status, r.url)) if r.status >= 400 else None)
    for path in pages_of(ids):
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
    assert page.evaluate("() => document.querySelector('link[rel=icon]').href").endswith("/static/favicon.svg")
    assert failed == []
    context.close()


def test_slider_past_every_score_says_so_and_the_png_follows(site, browser):
    base, _app, ids = site
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(base + f"/analyses/{ids['photos'][0]}")
    page.wait_for_selector("body[data-ready='1']")
    message = page.locator("#none-shown")
    assert not message.is_visible()
    page.locator("#min-score").evaluate("el => { el.value = el.max; el.dispatchEvent(new Event('input')); }")
    assert page.inner_text("#shown-count") == "0"
    assert message.is_visible() and "No garment reaches confidence 1.00" in message.inner_text()
    page.uncheck("#show-masks")
    href = page.get_attribute("#annotated-link", "href")
    assert href.endswith(f"/analyses/{ids['photos'][0]}/annotated.png?min_score=1.00&masks=0&boxes=1")
    assert page.request.get(base + href).status == 200
    page.locator("#min-score").evaluate("el => { el.value = el.min; el.dispatchEvent(new Event('input')); }")
    assert not message.is_visible()
    context.close()


IN_VIEW = """(id) => { const r = document.getElementById(id).getBoundingClientRect();
    return r.top >= 0 && r.top < window.innerHeight - 40; }"""


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_similar_panel_scrolls_into_view_when_opened(site, browser, viewport):
    base, _app, ids = site
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(base + f"/analyses/{ids['photos'][1]}")
    page.wait_for_selector("body[data-ready='1']")
    button = page.locator("#items .item .similar-button").first
    button.wait_for(state="visible", timeout=10_000)
    button.click()
    page.wait_for_selector("body[data-similar-ready='1']", timeout=10_000)
    page.wait_for_function(IN_VIEW, arg="similar", timeout=5_000)
    context.close()


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_link_to_an_item_scrolls_to_it_and_marks_it(site, browser, viewport):
    """A similar item's link is /analyses/<id>#item-N: the page lands on that garment (also after its
    Similar buttons appear and push the rows down) and marks it."""
    base, _app, ids = site
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.mouse.move(0, 0)
    analysis_id = ids["photos"][1]
    last = page.context.request.get(base + f"/api/v1/analyses/{analysis_id}").json()["detections"]
    target = f"item-{len(last) - 1}"
    page.goto(base + f"/analyses/{analysis_id}#{target}")
    page.wait_for_selector("body[data-ready='1']")
    page.locator("#items .item .similar-button").first.wait_for(state="visible", timeout=10_000)
    page.wait_for_function(IN_VIEW, arg=target, timeout=5_000)
    colour = "(id) => getComputedStyle(document.getElementById(id)).backgroundColor"
    assert page.evaluate(colour, target) != page.evaluate(colour, "item-0")
    # a link to another garment of the same photo moves the mark and the view
    page.evaluate("() => { window.location.hash = '#item-0'; }")
    page.wait_for_function(IN_VIEW, arg="item-0", timeout=5_000)
    assert page.evaluate(colour, "item-0") != page.evaluate(colour, target)
    context.close()


DROP = """([b64, name, type]) => {
    const bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, { type: type }));
    return dt; }"""


def heic_of(photo) -> bytes:
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif not installed: HEIC is optional")
    from PIL import Image

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    Image.open(photo).save(buf, format="HEIF", quality=85)
    return buf.getvalue()


def test_search_takes_a_dropped_photo_and_shows_it_with_its_garments(site, browser):
    """The dashed box takes a drop; the page shows the photo it searched with and a crop per garment; a
    HEIC (which chromium cannot show itself) works the same (issue 20.13)."""
    base, _app, _ids = site
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(base + "/search")
    page.wait_for_load_state("load")
    assert "image/heic" in page.get_attribute("#search-file", "accept")
    for n, (data, name, mime) in enumerate([(PHOTOS[0].read_bytes(), "drop.jpg", "image/jpeg"),
                                            (heic_of(PHOTOS[1]), "iphone.heic", "image/heic")], 1):
        transfer = page.evaluate_handle(DROP, [base64.b64encode(data).decode(), name, mime])
        page.dispatch_event("#search-dropzone", "drop", {"dataTransfer": transfer})
        page.wait_for_selector(f"body[data-search-ready='{n}']", timeout=60_000)
        loaded = "img => img.complete && img.naturalWidth > 0"
        assert page.locator("#search-photo").evaluate(loaded), name
        crops = page.locator("#search-garments li img.crop")
        assert crops.count() == page.locator("#search-garments li").count() >= 1
        assert all(crops.nth(i).evaluate(loaded) for i in range(crops.count())), name
        assert page.locator("#search-garments li.chosen").count() == 1
        assert page.locator("#similar-grid a").count() >= 1
    # choosing another garment marks it and shows its matches
    if page.locator("#search-garments li").count() > 1:
        page.locator("#search-garments li").nth(1).click()
        assert "chosen" in page.locator("#search-garments li").nth(1).get_attribute("class")
    context.close()


def test_delete_a_video_from_its_page(site, browser):
    """Last in this file: it deletes the module's clip."""
    base, app, ids = site
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(base + f"/videos/{ids['job']}")
    dialogs = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click("#delete")
    assert dialogs and "Delete this clip" in dialogs[0]
    assert page.request.get(base + f"/videos/{ids['job']}").status == 200  # dismissed: kept
    page.once("dialog", lambda d: d.accept())
    page.click("#delete")
    page.wait_for_url(base + "/videos", timeout=10_000)
    assert page.request.get(base + f"/videos/{ids['job']}").status == 404
    assert page.locator("tr.job").count() == 0
    assert app.extensions["closetai.storage.store"].count_analyses("video") == 0
    context.close()
