"""The web app end to end through Flask's test client, with the shipped model loaded once per session."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from closetai.storage.store import detections as detections_table
from closetai.vision.colour import PALETTE, name_colour
from closetai.vision.detections import decode_mask
from tests.helpers import CCP
from tests.web_helpers import RED, encode, jpeg_of_person, media_files, person, upload

CCP_PHOTO = CCP / "photos" / "0003.jpg"


@pytest.fixture(scope="session")
def predictor():
    from closetai.vision.predict import Predictor

    return Predictor(device="cpu")


def row_counts(app) -> tuple[int, int]:
    store = app.extensions["closetai.storage.store"]
    with store.engine.connect() as conn:
        n_det = conn.execute(select(func.count()).select_from(detections_table)).scalar_one()
    return store.count_analyses(), n_det


# ------------------------------------------------------------------------------------------------
def test_health(client, predictor):
    body = client.get("/api/v1/health").get_json()
    assert body["model"] == "closetai-ccp15" and body["taxonomy"] == "closetai-ccp-15"
    assert body["device"] == "cpu" and body["classes"] == list(predictor.class_names)
    assert body["analyses"] == 0


def test_generated_photo_end_to_end(app, client, predictor):
    rgb = person()
    res = upload(client, encode(Image.fromarray(rgb), "PNG"), "figure.png", source="studio test")
    assert res.status_code == 201, res.get_json()
    body = res.get_json()
    assert res.headers["Location"] == f"/api/v1/analyses/{body['id']}"
    # the `closetai detect` schema ...
    assert body["image"] == "figure.png" and (body["width"], body["height"]) == (320, 480)
    assert body["model"] == {"name": "closetai-ccp15", "taxonomy": "closetai-ccp-15"}
    assert body["source"] == "studio test" and body["kind"] == "photo" and len(body["sha256"]) == 64
    assert body["detections"], "the shipped model should find the figure's trousers or shoes"
    for d in body["detections"]:
        assert set(d) >= {"label", "score", "box", "mask", "id", "colour", "area_share", "crop"}
        assert d["label"] in predictor.class_names and predictor.min_score <= d["score"] <= 1
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 480
        assert d["mask"]["size"] == [480, 320] and isinstance(d["mask"]["counts"], str)
        mask = decode_mask(d["mask"])
        assert d["area_share"] == pytest.approx(mask.mean(), abs=1e-4)
        # ... plus colours: the name must be the one of the paint under most of the mask
        colours, counts = np.unique(rgb[mask].reshape(-1, 3), axis=0, return_counts=True)
        painted = tuple(int(v) for v in colours[counts.argmax()])
        assert d["colour"]["name"] == name_colour(painted), (d["label"], painted)
        assert d["colour"]["name"] in PALETTE and re.fullmatch(r"#[0-9a-f]{6}", d["colour"]["hex"])
    scores = [d["score"] for d in body["detections"]]
    assert scores == sorted(scores, reverse=True)

    # the same JSON on GET, in the list, and as a download
    assert client.get(body["urls"]["self"]).get_json() == body
    listing = client.get("/api/v1/analyses").get_json()
    assert listing["total"] == 1 and listing["analyses"][0]["id"] == body["id"]
    assert listing["analyses"][0]["detections"] == len(body["detections"])
    dl = client.get(body["urls"]["json"])
    assert "attachment" in dl.headers["Content-Disposition"] and dl.get_json() == body

    # media: the photo at full size, a thumbnail, a crop per detection, the annotated PNG
    with Image.open(io.BytesIO(client.get(body["urls"]["photo"]).data)) as im:
        assert im.format == "JPEG" and im.size == (320, 480)
        assert np.abs(np.asarray(im, dtype=int)[180, 160] - RED).max() < 12
    with Image.open(io.BytesIO(client.get(body["urls"]["thumb"]).data)) as im:
        assert max(im.size) <= 320
    for d in body["detections"]:
        with Image.open(io.BytesIO(client.get(d["crop"]).data)) as im:
            assert im.format == "JPEG" and max(im.size) <= 160
    ann = client.get(body["urls"]["annotated"])
    assert ann.status_code == 200 and ann.mimetype == "image/png"
    with Image.open(io.BytesIO(ann.data)) as im:
        assert im.size == (320, 480)
        assert np.abs(np.asarray(im.convert("RGB"), int) - rgb).max() > 50  # something was drawn

    # the HTML pages
    page = client.get(body["urls"]["page"]).get_data(as_text=True)
    for d in body["detections"]:
        assert d["colour"]["name"] in page and d["crop"] in page
    assert body["urls"]["annotated"] in page and body["urls"]["json"] in page
    history = client.get("/history").get_data(as_text=True)
    assert body["urls"]["page"] in history and body["urls"]["thumb"] in history

    # delete: rows and files go, the id answers 404 afterwards
    assert media_files(app)
    assert client.delete(body["urls"]["self"]).status_code == 204
    assert row_counts(app) == (0, 0) and media_files(app) == []
    gone = client.get(body["urls"]["self"])
    assert gone.status_code == 404 and gone.get_json() == {"error": f"analysis {body['id']} not found"}
    assert client.get(body["urls"]["photo"]).status_code == 404
    assert client.delete(body["urls"]["self"]).status_code == 404


@pytest.mark.shared
@pytest.mark.skipif(not CCP_PHOTO.is_file(), reason="../shared/data/ccp not present")
def test_real_ccp_photo(client):
    body = upload(client, CCP_PHOTO.read_bytes(), CCP_PHOTO.name).get_json()
    assert (body["width"], body["height"]) == Image.open(CCP_PHOTO).size
    assert len(body["detections"]) >= 2 and body["detections"][0]["score"] > 0.5
    assert all(d["colour"]["name"] in PALETTE for d in body["detections"])


def test_form_upload_without_javascript_redirects(client):
    res = upload(client, encode(Image.fromarray(person(240, 160)), "JPEG"), "f.jpg", url="/upload")
    assert res.status_code == 303 and re.fullmatch(r"/analyses/\d+", res.headers["Location"])
    assert client.get(res.headers["Location"]).status_code == 200


# ------------------------------------------------------------------------------------------------
# Bad input: the right status, a message a person can act on, no row and no file left, server still up.

def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb needs no more to be refused)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


BAD_INPUTS = {
    "not an image": (lambda: b"%PDF-1.7 this is not a photo\n" * 20, "report.jpg", {}, 400,
                     "not an image (unrecognised content): report.jpg"),
    "zero bytes": (lambda: b"", "empty.jpg", {}, 400, "empty file (0 bytes): empty.jpg"),
    "truncated": (lambda: jpeg_of_person()[:3000], "cut.jpg", {}, 400, "truncated or corrupt image: cut.jpg"),
    "over the pixel limit": (lambda: encode(Image.new("L", (1200, 1000)), "PNG"), "big.png",
                             {"MAX_PIXELS": 1_000_000}, 413,
                             "image too large: 1200x1000 pixels (limit 1,000,000): big.png"),
    "decompression bomb": (lambda: png_header_only(60000, 60000), "bomb.png", {}, 413,
                           "image too large: over 178,956,970 pixels (limit 40,000,000; decompression bomb guard): bomb.png"),
    "over the upload limit": (lambda: np.random.default_rng(0).bytes(150_000), "huge.jpg", {"MAX_UPLOAD_MB": 0.1},
                              413, "upload too large: the limit is 0.1 MB per file"),
    "unsupported format": (lambda: encode(Image.new("RGB", (50, 50), "red"), "GIF"), "anim.gif", {}, 400,
                           "unsupported image format GIF: anim.gif"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input(make_app, case):
    make_data, name, config, status, message = BAD_INPUTS[case]
    app = make_app(**config)
    client = app.test_client()
    data = make_data()
    res = upload(client, data, name)
    assert res.status_code == status and res.get_json() == {"error": message}
    # the HTML path shows the same message on a friendly page
    page = upload(client, data, name, url="/upload")
    assert page.status_code == status and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert message in html and "Upload a photo" in html
    assert row_counts(app) == (0, 0) and media_files(app) == []
    # the server is still up and still works
    assert client.get("/api/v1/health").status_code == 200


def test_upload_limit_message_names_the_limit(make_app):
    client = make_app(MAX_UPLOAD_MB=2).test_client()
    res = upload(client, b"\xff" * 2_100_000, "x.jpg")
    assert res.status_code == 413 and res.get_json() == {"error": "upload too large: the limit is 2 MB per file"}


def test_missing_file_field(client, app):
    res = client.post("/api/v1/analyses", data={"source": "x"}, content_type="multipart/form-data")
    assert res.status_code == 400
    assert res.get_json() == {"error": "no file uploaded: send the photo as multipart/form-data field 'file'"}
    assert row_counts(app) == (0, 0)


def test_store_failure_leaves_nothing(app, client, monkeypatch):
    import closetai.storage.analyses as analyses_module  # add_analysis (its os.replace) lives there

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(analyses_module.os, "replace", disk_full)
    res = upload(client, jpeg_of_person(), "ok.jpg")
    assert res.status_code == 503 and res.get_json() == {"error": "cannot store media files (No space left on device)"}
    assert row_counts(app) == (0, 0) and media_files(app) == []


# ------------------------------------------------------------------------------------------------
# Awkward but valid images are converted, not rejected.

def sixteen_bit_png() -> bytes:
    arr = np.full((240, 160), 32768, np.uint16)  # mid grey at 16 bits
    return encode(Image.fromarray(arr), "PNG")


def cmyk_jpeg() -> bytes:
    return encode(Image.fromarray(person(240, 160)).convert("CMYK"), "JPEG", quality=95)


def rgba_png() -> bytes:
    rgba = Image.new("RGBA", (160, 240), (0, 0, 0, 0))  # fully transparent: shows as white
    rgba.paste(Image.fromarray(person(120, 80)).convert("RGBA"), (40, 60))
    return encode(rgba, "PNG")


def grey_jpeg() -> bytes:
    return encode(Image.fromarray(person(240, 160)).convert("L"), "JPEG")


def exif_rotated_jpeg() -> bytes:
    # Stored landscape (240 wide, 160 high), EXIF orientation 6: shown upright as 160 x 240.
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(person(240, 160), k=1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8769] = {0x9003: "2024:05:17 09:41:00"}
    return encode(stored, "JPEG", exif=exif, quality=95)


@pytest.mark.parametrize("make, name, pixel, expected", [
    (sixteen_bit_png, "deep.png", (10, 10), (128, 128, 128)),
    (cmyk_jpeg, "print.jpg", (180, 80), RED),
    (rgba_png, "cutout.png", (5, 5), (255, 255, 255)),
    (grey_jpeg, "grey.jpg", (5, 5), None),
    (exif_rotated_jpeg, "phone.jpg", (180, 80), RED),
])
def test_awkward_images_are_converted(client, make, name, pixel, expected):
    res = upload(client, make(), name)
    assert res.status_code == 201, res.get_json()
    body = res.get_json()
    assert (body["width"], body["height"]) == (160, 240)  # upright, even for the EXIF-rotated one
    with Image.open(io.BytesIO(client.get(body["urls"]["photo"]).data)) as im:
        assert im.mode == "RGB" and im.size == (160, 240)
        rgb = np.asarray(im, dtype=int)
    y, x = pixel
    if expected is None:  # grey in, grey out: the three channels agree
        assert np.abs(rgb[..., 0] - rgb[..., 2]).max() <= 3
    else:
        assert np.abs(rgb[y, x] - expected).max() <= 16, (name, rgb[y, x])
    if name == "phone.jpg":
        assert body["captured_at"] == "2024-05-17T09:41:00" and body["captured_from"] == "exif"


def test_file_names_are_never_paths(app, client, tmp_path):
    res = upload(client, jpeg_of_person(), "../../../etc/<script>alert(1)</script>.jpg")
    assert res.status_code == 201
    body = res.get_json()
    assert body["image"] == "script>.jpg"  # last path component only, for display
    assert all(re.fullmatch(r"photos/\d{4}/\d\d/\d\d/[0-9a-f]{32}/(photo|thumb)\.jpg|"
                            r"photos/\d{4}/\d\d/\d\d/[0-9a-f]{32}/crops/d\d+\.jpg", f) for f in media_files(app))
    instance = Path(app.instance_path)
    assert {p.name for p in instance.iterdir()} <= {"closetai.sqlite", "closetai.sqlite-shm",
                                                     "closetai.sqlite-wal", "media"}
    res = upload(client, jpeg_of_person(), "<img src=x onerror=alert(1)>.jpg", store_again="1")  # same bytes
    page = client.get(res.get_json()["urls"]["page"]).get_data(as_text=True)
    assert "<img src=x onerror" not in page and "&lt;img src=x onerror=alert(1)&gt;.jpg" in page
    data_script = re.search(r'<script id="analysis-data" type="application/json">(.*?)</script>', page, re.S).group(1)
    assert "<" not in data_script  # the embedded JSON cannot close its <script> element


# ------------------------------------------------------------------------------------------------
def test_list_pagination_and_validation(client):
    ids = [upload(client, jpeg_of_person(), f"p{i}.jpg", store_again="1").get_json()["id"] for i in range(3)]
    page = client.get("/api/v1/analyses?limit=2&offset=1").get_json()
    assert page["total"] == 3 and (page["limit"], page["offset"]) == (2, 1)
    assert [a["id"] for a in page["analyses"]] == [ids[1], ids[0]]
    assert page["analyses"][0]["urls"]["page"] == f"/analyses/{ids[1]}"
    for query, message in [
        ("limit=abc", "limit must be an integer, got 'abc'"),
        ("limit=0", "limit must be between 1 and 100, got 0"),
        ("limit=101", "limit must be between 1 and 100, got 101"),
        ("offset=-1", "offset must be >= 0, got -1"),
        ("kind=audio", "kind must be 'photo' or 'video', got 'audio'"),
    ]:
        res = client.get(f"/api/v1/analyses?{query}")
        assert res.status_code == 400 and res.get_json() == {"error": message}, query


def test_not_found_and_method_errors(client):
    res = client.get("/api/v1/analyses/12345")
    assert res.status_code == 404 and res.get_json() == {"error": "analysis 12345 not found"}
    page = client.get("/analyses/12345")
    assert page.status_code == 404 and "analysis 12345 not found" in page.get_data(as_text=True)
    assert client.put("/api/v1/analyses").get_json() == {"error": "method not allowed"}
    assert client.get("/media/12345/photo.jpg").status_code == 404
    assert client.get("/history?page=0").status_code == 404
    assert client.get("/media/1/../../closetai.sqlite").status_code == 404


def test_init_db_command(app):
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0 and "initialised the database" in result.output


def test_page_weight_is_small(client):
    total = 0
    for path in ["/", "/static/style.css", "/static/upload.js", "/static/result.js"]:
        res = client.get(path)
        assert res.status_code == 200
        total += len(res.data)
    assert total < 100_000


def test_heic_upload_when_pillow_heif_is_installed(client):
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif not installed: HEIC is optional")
    pillow_heif.register_heif_opener()
    res = upload(client, encode(Image.fromarray(person(240, 160)), "HEIF", quality=90), "iphone.heic")
    assert res.status_code == 201, res.get_json()
    assert (res.get_json()["width"], res.get_json()["height"]) == (160, 240)
    assert "image/heic" in client.get("/").get_data(as_text=True)


def test_model_failure_is_a_clean_500(app, client, predictor, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("simulated: not enough memory")

    monkeypatch.setattr(predictor, "predict_batch", out_of_memory)
    res = upload(client, jpeg_of_person(), "ok.jpg")
    assert res.status_code == 500
    assert res.get_json() == {"error": "internal error: the analysis failed; the details are in the server log"}
    assert row_counts(app) == (0, 0) and media_files(app) == []
    monkeypatch.undo()
    assert upload(client, jpeg_of_person(), "ok.jpg").status_code == 201  # and the next upload works


def test_large_photos_are_analysed_downscaled(make_app):
    app = make_app(ANALYSIS_MAX_SIDE=400)
    client = app.test_client()
    body = upload(client, encode(Image.fromarray(person(960, 640)), "JPEG"), "phone.jpg").get_json()
    assert (body["width"], body["height"]) == (267, 400)
    assert all(d["mask"]["size"] == [400, 267] and d["box"][3] <= 400 for d in body["detections"])
    with Image.open(io.BytesIO(client.get(body["urls"]["photo"]).data)) as im:
        assert im.size == (267, 400)
