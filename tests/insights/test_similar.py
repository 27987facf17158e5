"""Similar items: embeddings (closetai.vision.embed via Predictor), their table, the index (closetai.insights.similar),
the API (closetai.web.similar) over a real SQLite file, `closetai reindex`, and the evaluation's DF2 part."""

from __future__ import annotations

import io
import json
import sys
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from closetai.insights.similar import ExactIndex, SimilarItems
from closetai.storage.store import NewAnalysis, NewDetection, NewTrack, NotFound, Store, from_blob, to_blob
from closetai.vision.detections import Detections
from closetai.vision.embed import EMBEDDING_NAME
from tests.helpers import REPO, EmbeddingFakePredictor, FakePredictor, needs_model

sys.path.insert(0, str(REPO / "bench"))
import eval_similar  # noqa: E402  (the evaluation script's metrics and DF2 reader)


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


# -- embeddings ------------------------------------------------------------------------------------------
def test_embeddings_are_unit_vectors_one_per_detection(tiny_model):
    from closetai.vision.predict import Predictor

    p = Predictor(tiny_model, device="cpu", min_score=0.0)
    rgb = np.random.default_rng(0).integers(0, 255, (150, 110, 3), np.uint8)
    dets = p(rgb)
    assert dets.embeddings is not None and dets.embeddings.shape[0] == len(dets)
    assert "embed" in p.timings and p.info["embedding"] == f"tiny/{EMBEDDING_NAME}"
    boxes = np.array([[10, 10, 60, 90], [0, 0, 110, 150]], dtype=np.float32)
    masks = np.zeros((2, 150, 110), bool)
    masks[0, 20:80, 15:50] = True
    masks[1] = True
    v = p.embed_regions(rgb, boxes, masks)
    assert v.shape == (2, dets.embeddings.shape[1] if len(dets) else v.shape[1]) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert p.embed_regions(rgb, np.zeros((0, 4))).shape == (0, v.shape[1])
    # a detection's own vector is the one embed_regions makes for its box and mask
    if len(dets):
        again = p.embed_regions(rgb, dets.xyxy[:1], dets.masks[:1])
        assert float(again[0] @ dets.embeddings[0]) > 0.95
    assert dets[[0]].embeddings.shape[0] == min(1, len(dets)) if len(dets) else True


def test_whitening_learns_to_ignore_what_differs_between_views_of_one_garment():
    """Synthetic appearance parts: 40 garments x 3 views. A strong nuisance (what an augmented copy
    changes) swamps the garment's identity in raw cosine; the fitted whitening ranks views of the same
    garment first, on garments it was not fitted on."""
    from closetai.vision.embed import fit_whitening, l2_normalise

    rng = np.random.default_rng(0)

    def views(n_garments: int, first: int):
        identity = rng.normal(size=(n_garments, 48)) * 0.3
        nuisance_axes = np.eye(48)[:4] * 3.0  # the same 4 directions for every garment
        x, keys = [], []
        for g in range(n_garments):
            for _ in range(3):
                x.append(identity[g] + rng.normal(size=4) @ nuisance_axes + rng.normal(size=48) * 0.05)
                keys.append(first + g)
        return l2_normalise(np.array(x)), keys

    fit_x, fit_keys = views(40, 0)
    test_x, test_keys = views(40, 100)
    mean, projection = fit_whitening(fit_x, fit_keys, [k % 2 for k in fit_keys], dim=24, alpha=0.0)
    assert projection.shape == (24, 48) and mean.shape == (48,)
    raw = eval_similar.map_at_k(test_x, test_keys)
    white = eval_similar.map_at_k(l2_normalise((test_x - mean) @ projection.T), test_keys)
    assert raw < 0.6 and white > 0.9, (raw, white)
    with pytest.raises(ValueError, match="two views"):
        fit_whitening(fit_x[:3], [1, 2, 3], [0, 0, 0])


def test_a_whitening_file_is_used_only_with_the_model_it_was_fitted_on(tiny_model, tmp_path):
    import shutil

    from closetai import sha256_file
    from closetai.vision.embed import WHITENED_NAME, Whitening, whitening_path
    from closetai.vision.predict import Predictor

    model = tmp_path / "tiny.pt"
    shutil.copy(tiny_model, model)
    plain = Predictor(model, device="cpu", min_score=0.0)
    rgb = np.random.default_rng(0).integers(0, 255, (150, 110, 3), np.uint8)
    boxes = np.array([[10, 10, 60, 90], [0, 0, 110, 150]], dtype=np.float32)
    appearance, classes, colours = plain.embed_regions(rgb, boxes, parts=True)
    rng = np.random.default_rng(1)
    w = Whitening(rng.normal(size=appearance.shape[1]).astype(np.float32),
                  rng.normal(size=(8, appearance.shape[1])).astype(np.float32), 1.4, 0.4, sha256_file(model), {"x": 1})
    w.save(whitening_path(model))
    assert whitening_path(model).name == "tiny.embed.npz"
    white = Predictor(model, device="cpu", min_score=0.0)
    assert white.embedding_model == f"tiny/{WHITENED_NAME}" and white.whitening.info == {"x": 1}
    v = white.embed_regions(rgb, boxes)
    assert v.shape == (2, 8 + classes.shape[1] + colours.shape[1])
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    expected = np.hstack([w.apply(appearance), 1.4 * classes, 0.4 * colours])
    assert np.allclose(v, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)
    dets = white(rgb)
    if len(dets):
        assert dets.embeddings.shape[1] == v.shape[1]
    # fitted on another model file: ignored, the plain vectors and their name
    Whitening(w.mean, w.projection, 1.4, 0.4, "0" * 64, {}).save(whitening_path(model))
    other = Predictor(model, device="cpu", min_score=0.0)
    assert other.whitening is None and other.embedding_model == f"tiny/{EMBEDDING_NAME}"
    assert np.allclose(other.embed_regions(rgb, boxes), plain.embed_regions(rgb, boxes), atol=1e-6)


def test_colour_histograms_bin_every_hsv_value_as_the_definition_and_ignore_pixels_outside_the_mask():
    from closetai.vision.embed import HSV_BINS, colour_histogram, colour_histograms

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (180, 256, 3), dtype=np.uint8)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.int64)
    nh, ns, nv = HSV_BINS  # the definition: cell = (h*nh//180 * ns + s*ns//256) * nv + v*nv//256
    cells = (np.minimum(hsv[..., 0] * nh // 180, nh - 1) * ns + hsv[..., 1] * ns // 256) * nv + hsv[..., 2] * nv // 256
    masks = np.zeros((4, 180, 256), dtype=bool)
    masks[0] = True
    masks[1, 20:90, 30:200] = rng.random((70, 170)) > 0.5
    masks[2, 170:, :3] = True  # a corner
    # masks[3] empty
    got = colour_histograms(rgb, masks)
    for mask, row in zip(masks[:3], got[:3], strict=True):
        counts = np.bincount(cells[mask], minlength=int(np.prod(HSV_BINS)))
        want = np.sqrt(counts / counts.sum())
        np.testing.assert_allclose(row, want / np.linalg.norm(want), rtol=1e-5, atol=1e-7)
    assert not got[3].any()
    np.testing.assert_array_equal(colour_histogram(rgb, masks[1]), got[1])
    # pixels outside the mask do not count: repaint them and nothing changes
    repainted = rgb.copy()
    repainted[~masks[1]] = 255 - repainted[~masks[1]]
    np.testing.assert_array_equal(colour_histograms(repainted, masks[1:2])[0], got[1])


def test_detections_validate_and_slice_embeddings():
    d = Detections([[0, 0, 1, 1], [1, 1, 2, 2]], [0.9, 0.8], [1, 1], ("top",), embeddings=np.eye(2))
    assert d[np.array([False, True])].embeddings.tolist() == [[0.0, 1.0]]
    assert "embeddings" not in d.to_json()[0]
    with pytest.raises(ValueError, match="embeddings"):
        Detections([[0, 0, 1, 1]], [0.9], [1], ("top",), embeddings=np.zeros((2, 4)))


@needs_model
def test_flipped_copy_is_nearer_than_another_garment():
    from closetai.vision.predict import Predictor

    p = Predictor(device="cpu")
    h, w = 400, 300
    rng = np.random.default_rng(1)
    base = rng.integers(150, 200, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    mask[80:300, 60:240] = True
    striped = base.copy()
    striped[80:300, 60:240] = (170, 30, 40)
    striped[80:300:20, 60:240] = (240, 240, 240)  # a red top with white stripes
    other = base.copy()
    other[80:300, 60:240] = (30, 60, 130)  # a plain navy one
    box = np.array([[60, 80, 240, 300]], np.float32)
    a = p.embed_regions(striped, box, mask[None])[0]
    flipped = p.embed_regions(np.ascontiguousarray(striped[:, ::-1]), np.array([[60, 80, 240, 300]], np.float32),
                              mask[None, :, ::-1].copy())[0]
    b = p.embed_regions(other, box, mask[None])[0]
    assert float(a @ flipped) > float(a @ b)
    assert float(a @ flipped) > 0.95


# -- store -----------------------------------------------------------------------------------------------
def _photo(store: Store, labels: list[str], vectors: list, name: str = "p.jpg") -> int:
    return store.add_analysis(
        NewAnalysis(kind="photo", filename=name, sha256=name * 4, width=10, height=10, files={"photo": b"x"},
                    captured_at=datetime(2026, 10, 1), embedding_model="m/v1"),
        [NewDetection(label=lb, score=0.9, box=(0, 0, 5, 5), crop_jpeg=b"crop", embedding=v)
         for lb, v in zip(labels, vectors, strict=True)])


def test_embeddings_round_trip_through_the_store(store):
    v1, v2, v3 = unit([1, 0, 0, 0]), unit([0.9, 0.1, 0, 0]), unit([0, 0, 1, 0])
    a = _photo(store, ["top", "jeans"], [v1, v2])
    vid = store.add_analysis(
        NewAnalysis(kind="video", filename="c.mp4", sha256="v" * 64, width=10, height=10, embedding_model="m/v1"),
        [NewDetection(label="top", score=s, box=(0, 0, 5, 5), frame_index=k, time_s=k / 5, track_no=1)
         for k, s in enumerate((0.6, 0.95, 0.7))],
        [NewTrack(track_no=1, label="top", first_s=0, last_s=0.4, frames_seen=3, best_score=0.95, embedding=v3)])
    loaded = store.load_embeddings(model="m/v1")
    assert loaded["labels"] == ["top", "jeans", "top"] and loaded["vectors"].shape == (3, 4)
    assert np.allclose(loaded["vectors"], [v1, v2, v3], atol=1e-3)
    assert store.embedding_state("m/v1") == (3, int(loaded["ids"][-1]))
    items = store.get_items([int(i) for i in loaded["ids"]][::-1])
    assert [it["kind"] for it in items] == ["video", "photo", "photo"]
    assert items[0]["track_no"] == 1 and items[0]["time_s"] == pytest.approx(0.2)  # its best view's moment
    assert items[2]["idx"] == 0 and items[2]["analysis_id"] == a
    assert store.items_of_analysis(a)["detections"] == {0: int(loaded["ids"][0]), 1: int(loaded["ids"][1])}
    assert np.allclose(from_blob(to_blob(v2), 4), v2, atol=1e-3)
    store.delete_analysis(vid)
    assert store.embedding_state("m/v1")[0] == 2
    with pytest.raises(NotFound):
        store.get_item(int(loaded["ids"][2]))


def test_index_ranks_filters_and_follows_the_table(store):
    a = _photo(store, ["top", "top", "jeans"], [unit([1, 0, 0]), unit([0, 1, 0]), unit([0, 0, 1])], "a.jpg")
    b = _photo(store, ["top", "jeans"], [unit([1, 0.1, 0]), unit([0.2, 0, 1])], "b.jpg")
    index = SimilarItems(store, "m/v1")
    ids = {it: i for it, i in zip(("a0", "a1", "a2", "b0", "b1"), store.load_embeddings()["ids"].tolist(),
                                  strict=True)}
    hits = index.search(unit([1, 0, 0]), k=3)
    assert [h.item_id for h in hits] == [ids["a0"], ids["b0"], ids["b1"]]
    assert hits[0].score == pytest.approx(1.0, abs=1e-3) and hits[0].score >= hits[1].score >= hits[2].score
    assert [h.item_id for h in index.search(unit([1, 0, 0]), k=5, label="jeans")] == [ids["b1"], ids["a2"]]
    item, similar = index.similar_to(ids["a0"], k=5, same_class=True)
    assert item["label"] == "top" and [h.item_id for h in similar] == [ids["b0"]]  # its own photo left out
    _, any_class = index.similar_to(ids["a0"], k=5, same_class=False)
    assert [h.item_id for h in any_class] == [ids["b0"], ids["b1"]]
    c = _photo(store, ["top"], [unit([1, 0, 0.01])], "c.jpg")  # new rows are picked up
    assert index.search(unit([1, 0, 0]), k=1, exclude_analysis=a)[0].item_id == store.items_of_analysis(c)["detections"][0]
    store.delete_analysis(b)  # and deleted ones dropped
    assert ids["b0"] not in [h.item_id for h in index.search(unit([1, 0, 0]), k=10)]
    with pytest.raises(NotFound):
        index.similar_to(ids["b0"])


def test_exact_index_on_random_vectors_matches_a_full_sort():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(500, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    rows, scores = ExactIndex(v).search(v[7], 10)
    assert rows.tolist() == np.argsort(-(v @ v[7]))[:10].tolist() and rows[0] == 7


# -- API over a real SQLite file --------------------------------------------------------------------------
def jpeg(colour, size=(80, 60)) -> bytes:
    img = np.full((size[0], size[1], 3), 128, np.uint8)
    img[size[0] // 4: size[0] // 2, size[1] // 4: size[1] // 2] = colour
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture
def predictor():
    return EmbeddingFakePredictor()


def upload(client, colour, name):
    r = client.post("/api/v1/analyses", data={"file": (io.BytesIO(jpeg(colour)), name)})
    assert r.status_code == 201, r.json
    return r.json["id"]


def test_similar_items_api(client):
    red = upload(client, (200, 20, 20), "red.jpg")
    upload(client, (190, 30, 25), "red2.jpg")
    upload(client, (20, 20, 200), "blue.jpg")
    items = client.get(f"/api/v1/analyses/{red}/items").json
    item_id = items["detections"]["0"]
    r = client.get(f"/api/v1/items/{item_id}/similar?k=5&same_class=1")
    assert r.status_code == 200
    body = r.json
    assert body["item"]["item_id"] == item_id and body["index"] == "exact" and body["garments"] == 3
    names = [x["image"] for x in body["results"]]
    assert names == ["red2.jpg", "blue.jpg"]  # its own photo left out, best first
    first = body["results"][0]
    assert first["similarity"] > body["results"][1]["similarity"] and first["url"].startswith("/analyses/")
    assert client.get(first["crop"]).status_code == 200
    assert client.get(f"/api/v1/items/{item_id}/similar?k=1").json["results"][0]["image"] == "red2.jpg"
    for bad in ("k=0", "k=101", "k=abc", "same_class=2"):
        r = client.get(f"/api/v1/items/{item_id}/similar?{bad}")
        assert r.status_code == 400 and "error" in r.json, bad
    assert client.get("/api/v1/items/999999/similar").status_code == 404
    assert client.get("/api/v1/analyses/999999/items").status_code == 404
    assert client.get("/items/999999/crop.jpg").status_code == 404


def test_search_by_upload_api(client):
    upload(client, (200, 20, 20), "red.jpg")
    upload(client, (20, 20, 200), "blue.jpg")
    r = client.post("/api/v1/search", data={"file": (io.BytesIO(jpeg((20, 30, 190))), "q.jpg"), "k": "2"})
    assert r.status_code == 200, r.json
    (query,) = r.json["queries"]
    assert query["label"] == "top" and [x["image"] for x in query["results"]] == ["blue.jpg", "red.jpg"]
    r = client.post("/api/v1/search", data={"file": (io.BytesIO(jpeg((20, 30, 190))), "q.jpg"), "index": "0"})
    assert r.status_code == 200 and r.json["queries"][0]["index"] == 0
    r = client.post("/api/v1/search", data={"file": (io.BytesIO(jpeg((200, 30, 20))), "q.jpg"),
                                            "box": "15,20,30,40", "same_class": "0"})
    assert r.status_code == 200 and r.json["queries"][0]["results"][0]["image"] == "red.jpg"
    assert client.get("/search").status_code == 200
    bad = [({"index": "5"}, "out of range"), ({"index": "-1"}, "index"), ({"box": "1,2,3"}, "four numbers"),
           ({"box": "0,0,0,0", "same_class": "0"}, "empty"), ({"box": "1,1,50,70", "index": "0"}, "either"),
           ({"k": "1000"}, "k must")]
    for fields, message in bad:
        r = client.post("/api/v1/search", data={"file": (io.BytesIO(jpeg((1, 2, 3))), "q.jpg"), **fields})
        assert r.status_code == 400 and message in r.json["error"], (fields, r.json)
    assert client.post("/api/v1/search", data={}).status_code == 400
    r = client.post("/api/v1/search", data={"file": (io.BytesIO(b"not an image"), "q.jpg")})
    assert r.status_code in (400, 415, 422)


def test_search_previews_show_the_photo_and_its_garments(client):
    """previews=1: the photo (long side <= 640) and each garment's crop as JPEG data URLs, for /search to
    show what it searched with; without it the answer is as before (issue 20.13)."""
    import base64

    upload(client, (200, 20, 20), "red.jpg")
    big = jpeg((20, 30, 190), size=(900, 700))
    r = client.post("/api/v1/search", data={"file": (io.BytesIO(big), "q.jpg"), "previews": "1"})
    assert r.status_code == 200, r.json

    def decode(url):
        assert url.startswith("data:image/jpeg;base64,")
        return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))

    w, h = decode(r.json["preview"]).size
    assert h == 640 and abs(w - r.json["width"] * 640 / r.json["height"]) <= 1
    (query,) = r.json["queries"]
    crop = np.asarray(decode(query["crop"]).convert("RGB")).astype(int)
    assert max(crop.shape[:2]) <= 160 and np.abs(crop[crop.shape[0] // 2, crop.shape[1] // 2] - (20, 30, 190)).max() < 30
    plain = client.post("/api/v1/search", data={"file": (io.BytesIO(big), "q.jpg")}).json
    assert "preview" not in plain and "crop" not in plain["queries"][0]
    r = client.post("/api/v1/search", data={"file": (io.BytesIO(big), "q.jpg"), "previews": "yes"})
    assert r.status_code == 400 and "previews must be 0 or 1" in r.json["error"]


def test_search_takes_heic_like_the_photo_upload(client):
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif not installed: HEIC is optional")
    pillow_heif.register_heif_opener()
    img = np.full((120, 90, 3), 128, np.uint8)
    img[30:60, 20:45] = (20, 30, 190)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="HEIF", quality=90)
    r = client.post("/api/v1/search", data={"file": (io.BytesIO(buf.getvalue()), "iphone.heic"), "previews": "1"})
    assert r.status_code == 200, r.json
    assert (r.json["width"], r.json["height"]) == (90, 120) and r.json["preview"].startswith("data:image/jpeg")
    page = client.get("/search").get_data(as_text=True)
    assert "image/heic" in page and ".heic" in page and "HEIC" in page


# -- closetai reindex ---------------------------------------------------------------------------------------
def test_reindex_cli_embeds_stored_garments_once(tmp_path, tiny_model, capsys):
    from app import create_app
    from closetai.cli import main

    instance = tmp_path / "inst"
    app = create_app({"TESTING": True, "PREDICTOR": FakePredictor(), "INSTANCE_PATH": instance})
    c = app.test_client()
    for colour, name in (((200, 20, 20), "a.jpg"), ((20, 20, 200), "b.jpg")):
        assert c.post("/api/v1/analyses", data={"file": (io.BytesIO(jpeg(colour)), name)}).status_code == 201
    store = app.extensions["closetai.storage.store"]
    assert store.load_embeddings()["ids"].size == 0  # FakePredictor makes no vectors
    args = ["reindex", "--model", str(tiny_model), "--device", "cpu", "--instance", str(instance)]
    assert main(args) == 0
    assert "reindex: 2 garments embedded in 2 analyses (tiny/" in capsys.readouterr().out
    loaded = store.load_embeddings(model=f"tiny/{EMBEDDING_NAME}")
    assert len(loaded["ids"]) == 2 and np.allclose(np.linalg.norm(loaded["vectors"], axis=1), 1, atol=1e-2)
    assert main(args) == 0 and "reindex: 0 garments" in capsys.readouterr().out  # nothing stale is left
    assert main(args + ["--all"]) == 0
    assert "reindex: 2 garments" in capsys.readouterr().out
    assert store.load_embeddings()["ids"].tolist() == loaded["ids"].tolist()  # rewritten in place: ids stay
    assert main(["reindex", "--model", str(tmp_path / "missing.pt"), "--instance", str(instance)]) == 2


# -- evaluation: metrics and DeepFashion2 consumer-to-shop on a DF2-format fixture ---------------------------
def test_retrieval_metrics():
    v = np.array([unit([1, 0]), unit([0.99, 0.1]), unit([0, 1]), unit([0.1, 0.99])])
    assert eval_similar.map_at_k(v, ["a", "a", "b", "b"]) == pytest.approx(1.0)
    assert eval_similar.map_at_k(v, ["a", "b", "a", "b"]) < 0.6
    p, n = eval_similar.precision_at_k(v, ["x", "x", "y", "y"], k=1)
    assert p == 1.0 and n == 4


def write_df2(root: Path, n_pairs: int = 4) -> Path:
    """A DeepFashion2-format folder: per pair a consumer and a shop photo of one garment (same colour)."""
    (root / "image").mkdir(parents=True)
    (root / "annos").mkdir()
    rng = np.random.default_rng(0)
    colours = [(200, 30, 30), (30, 180, 40), (30, 40, 200), (230, 220, 40), (150, 40, 160)]
    k = 0
    for pair in range(1, n_pairs + 1):
        for source in ("user", "shop"):
            k += 1
            img = rng.integers(100, 140, (120, 90, 3), dtype=np.uint8)
            x1, y1 = int(rng.integers(5, 30)), int(rng.integers(5, 40))
            x2, y2 = x1 + 45, y1 + 60
            img[y1:y2, x1:x2] = colours[pair % len(colours)]
            cv2.imwrite(str(root / "image" / f"{k:06d}.jpg"), img[..., ::-1])
            poly = [x1, y1, x2, y1, x2, y2, x1, y2]
            ann = {"source": source, "pair_id": pair,
                   "item1": {"category_id": 1, "style": 1, "bounding_box": [x1, y1, x2, y2], "segmentation": [poly]},
                   "item2": {"category_id": 8, "style": 0, "bounding_box": [0, 0, 10, 10],  # style 0: not a pair item
                             "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}}
            (root / "annos" / f"{k:06d}.json").write_text(json.dumps(ann))
    return root


def test_df2_consumer_to_shop_on_a_fixture(tmp_path):
    from closetai.training.data.deepfashion2 import DeepFashion2Dataset

    root = write_df2(tmp_path / "df2")
    _, target = DeepFashion2Dataset(root)[0]
    assert target["items"][0] == {"pair_id": 1, "style": 1, "source": "user"}
    out = eval_similar.evaluate_df2({"colour": eval_similar.colour_embedder}, root)
    assert out["items"] == 8 and out["shop_items"] == 4
    assert out["colour"]["queries"] == 4 and out["colour"]["top1"] == 1.0 and out["colour"]["top20"] == 1.0


def test_video_tracks_are_items_linked_to_their_moment(client, tmp_path):
    from tests.media_helpers import panned_frames, write_clip
    from tests.web_helpers import upload_clip, wait_done

    photo = upload(client, (200, 20, 20), "red.jpg")
    clip = write_clip(tmp_path / "pan.mp4", panned_frames(20, h=96, w=128), fps=10)
    job_id = upload_clip(client, clip.read_bytes(), "pan.mp4").get_json()["job_id"]
    final, _ = wait_done(client, job_id)
    assert final["status"] == "done", final
    analysis_id = client.get(f"/api/v1/videos/{job_id}").get_json()["analysis_id"]
    track_item = client.get(f"/api/v1/analyses/{analysis_id}/items").json["tracks"]["1"]
    body = client.get(f"/api/v1/items/{track_item}/similar").json
    assert body["item"]["kind"] == "video" and body["item"]["track_no"] == 1
    assert [r["analysis_id"] for r in body["results"]] == [photo]
    photo_item = client.get(f"/api/v1/analyses/{photo}/items").json["detections"]["0"]
    (clip_hit,) = client.get(f"/api/v1/items/{photo_item}/similar").json["results"]
    assert clip_hit["kind"] == "video" and clip_hit["url"].startswith(f"/videos/by-analysis/{analysis_id}#t=")
    assert client.get(clip_hit["crop"]).status_code == 200
    page = client.get(f"/videos/{job_id}").get_data(as_text=True)
    assert 'id="similar"' in page and "similar.js" in page


def test_hnsw_index_agrees_with_the_exact_scan():
    pytest.importorskip("hnswlib", reason="hnswlib (optional) is not installed")
    from closetai.insights.similar import HnswIndex

    rng = np.random.default_rng(0)
    v = rng.normal(size=(2000, 32)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    exact, approx = ExactIndex(v), HnswIndex(v)
    recall = []
    for q in range(0, 2000, 100):
        want = set(exact.search(v[q], 10)[0].tolist())
        rows, scores = approx.search(v[q], 10)
        recall.append(len(want & set(rows.tolist())) / 10)
        assert np.all(np.diff(scores) <= 1e-6)
    assert np.mean(recall) > 0.9
    allowed = np.zeros(2000, bool)
    allowed[:5] = True  # a rare class: falls back to the exact scan
    assert sorted(approx.search(v[0], 10, allowed)[0].tolist()) == [0, 1, 2, 3, 4]


def test_index_switches_to_hnsw_when_large_and_grows_it(store):
    pytest.importorskip("hnswlib", reason="hnswlib (optional) is not installed")
    rng = np.random.default_rng(0)
    for i in range(3):
        _photo(store, ["top"] * 4, [unit(x) for x in rng.normal(size=(4, 8))], f"{i}.jpg")
    index = SimilarItems(store, "m/v1", hnsw_min_items=8)
    index.refresh()
    assert index.index.name == "hnsw" and len(index) == 12
    graph = index.index
    c = _photo(store, ["top"], [unit(np.ones(8))], "new.jpg")
    hit = index.search(unit(np.ones(8)), k=1)[0]
    assert index.index is graph and len(graph.exact.vectors) == 13  # grown in place, not rebuilt
    assert hit.item_id == store.items_of_analysis(c)["detections"][0]


# -- the displayed match (issue 20.11) ---------------------------------------------------------------------
def _vectors(appearance, classes, colours, class_weight=1.4):
    from closetai.vision.embed import combine, l2_normalise

    return combine(l2_normalise(appearance), l2_normalise(classes), l2_normalise(colours), class_weight, 0.4)


def test_look_parts_leave_the_class_part_out():
    from closetai.vision.embed import look_parts

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 16))
    colour = rng.random(128)
    coat, dress = np.eye(15)[0] + 0.05, np.eye(15)[3] + 0.05
    one_look_two_classes = _vectors(np.stack([a, a]), np.stack([coat, dress]), np.stack([colour, colour]))
    whole = float(one_look_two_classes[0] @ one_look_two_classes[1])
    looks = look_parts(one_look_two_classes)
    assert looks.shape == (2, 16 + 128) and float(looks[0] @ looks[1]) == pytest.approx(1.0, abs=1e-5)
    assert whole < 0.5
    two_looks_one_class = _vectors(np.stack([a, b]), np.stack([coat, coat]), np.stack([colour, rng.random(128)]))
    looks = look_parts(two_looks_one_class)
    # the class part alone makes two unrelated coats look 0.6+ alike; their looks do not
    assert float(two_looks_one_class[0] @ two_looks_one_class[1]) > 0.6 > float(looks[0] @ looks[1]) + 0.2
    with pytest.raises(ValueError, match="no room"):
        look_parts(np.ones((1, 100)))


def _garments(rng, n, dim=12):
    return rng.normal(size=dim) + rng.normal(size=(n, dim))


def test_match_scale_spreads_other_garments_and_puts_the_same_one_on_top(tmp_path):
    from closetai.insights.similar import MatchScale
    from closetai.vision.embed import l2_normalise

    rng = np.random.default_rng(0)
    meta = {"num_classes": 15, "colour_weight": 0.4, "model_sha256": "x", "embedding": "m/v1"}
    coats, shoes, rare = _garments(rng, 60), _garments(rng, 60) * 0.3 + 3.0, _garments(rng, 6)
    looks = l2_normalise(np.vstack([coats, shoes, rare]))
    labels = ["coat"] * 60 + ["footwear"] * 60 + ["scarf"] * 6
    scale = MatchScale.fit(looks, labels, list(range(126)), [f"p{i // 2}" for i in range(126)], **meta)
    assert set(scale.quantiles) == {"coat", "footwear"}  # 15 scarf pairs are too few: the scarf uses all classes'
    # fresh garments of the class spread over the scale
    new_coats = l2_normalise(coats.mean(0) + rng.normal(size=(40, 12)))
    sims = (new_coats @ new_coats.T)[np.triu_indices(40, 1)]
    shown = scale.percent("coat", sims)
    assert np.percentile(shown, 10) < 25 and 30 < np.median(shown) < 70 and np.percentile(shown, 90) > 75
    # the same coat seen again (a little noise) is near the top
    again = l2_normalise(coats + 0.15 * rng.normal(size=coats.shape))
    assert np.median(scale.percent("coat", np.einsum("ij,ij->i", again, l2_normalise(coats)))) > 95
    # footwear all look alike: the same look cosine means less for a shoe than for a coat
    assert scale.percent("footwear", [0.5])[0] < scale.percent("coat", [0.5])[0]
    assert scale.percent("scarf", [0.5])[0] == scale.percent(None, [0.5])[0]
    back = MatchScale.from_json(json.loads(json.dumps(scale.to_json())))
    assert back.percent("coat", [0.3])[0] == pytest.approx(scale.percent("coat", [0.3])[0], abs=0.1)


def test_a_match_scale_is_used_only_with_the_model_and_embedding_it_was_fitted_on(tiny_model, tmp_path):
    import shutil

    from closetai import sha256_file
    from closetai.insights.similar import MatchScale, match_scale_path

    model = tmp_path / "tiny.pt"
    shutil.copy(tiny_model, model)
    assert MatchScale.for_model(model, "tiny/v1") is None  # none shipped
    scale = MatchScale({}, np.linspace(-1, 1, 101), 15, 0.4, sha256_file(model), "tiny/v1")
    match_scale_path(model).write_text(json.dumps(scale.to_json()))
    assert match_scale_path(model).name == "tiny.match.json"
    assert MatchScale.for_model(model, "tiny/v1").percent(None, [0.0])[0] == pytest.approx(50)
    assert MatchScale.for_model(model, "tiny/v2") is None  # other vectors
    match_scale_path(model).write_text(json.dumps({**scale.to_json(), "model_sha256": "0" * 64}))
    assert MatchScale.for_model(model, "tiny/v1") is None  # another model file


def test_with_a_scale_matches_come_in_the_order_of_the_number_shown(store):
    from closetai.insights.similar import MatchScale

    rng = np.random.default_rng(3)
    look, other_look = rng.normal(size=(2, 16))
    colour, other_colour = rng.random(128), rng.random(128)
    probs, other_probs = np.eye(15)[2] + 0.02, np.eye(15)[7] + 0.3
    query = _vectors(look[None], probs[None], colour[None])[0]
    same_probs = _vectors(other_look[None], probs[None], other_colour[None])[0]  # another garment, same class scores
    same_look = _vectors(look[None] + 0.1, other_probs[None], colour[None])[0]  # the same garment, other class scores
    _photo(store, ["top"], [query], "q.jpg")
    _photo(store, ["top", "top"], [same_probs, same_look], "r.jpg")
    ids = store.load_embeddings()["ids"].tolist()
    plain = SimilarItems(store, "m/v1")
    _, hits = plain.similar_to(ids[0])
    assert [h.item_id for h in hits] == [ids[1], ids[2]] and hits[0].match is None  # whole vectors: class wins
    scale = MatchScale({}, np.linspace(-1, 1, 101), 15, 0.4, "x", "m/v1")
    _, hits = SimilarItems(store, "m/v1", scale=scale).similar_to(ids[0])
    assert [h.item_id for h in hits] == [ids[2], ids[1]]
    assert hits[0].match > 95 > hits[1].match and hits[0].look > hits[1].look
    assert hits[0].score < hits[1].score  # the whole-vector cosine is still reported as it is


class LookFakePredictor(EmbeddingFakePredictor):
    """Vectors with the app's layout (appearance, 15 class scores, a 128-bin colour histogram), from a model
    file of its own so that a match scale can be shipped next to it."""

    info = {**FakePredictor.info, "embedding": "fake/v2"}
    embedding_model = "fake/v2"

    def __init__(self, model_path):
        super().__init__()
        self.model_path = model_path

    def embed_regions(self, rgb, boxes, masks=None):
        from closetai.vision.embed import colour_histogram

        out = []
        for b in np.asarray(boxes, dtype=int).reshape(-1, 4):
            mask = np.zeros(rgb.shape[:2], bool)
            mask[b[1]:b[3], b[0]:b[2]] = True
            region = rgb[mask].astype(np.float32)
            out.append(_vectors(np.r_[region.mean(0) - 128, 1.0][None], (np.eye(15)[0] + 0.1)[None],
                                colour_histogram(rgb, mask)[None])[0])
        return np.array(out, dtype=np.float32)


def test_similar_api_shows_the_match_and_what_it_means(tmp_path):
    from app import create_app
    from closetai import sha256_file
    from closetai.insights.similar import MatchScale, match_scale_path

    model = tmp_path / "fake.pt"
    model.write_bytes(b"weights")
    match_scale_path(model).write_text(json.dumps(
        MatchScale({}, np.linspace(-1, 1, 101), 15, 0.4, sha256_file(model), "fake/v2").to_json()))
    app = create_app({"TESTING": True, "PREDICTOR": LookFakePredictor(model), "INSTANCE_PATH": tmp_path / "inst"})
    client = app.test_client()
    red = upload(client, (200, 20, 20), "red.jpg")
    upload(client, (20, 20, 200), "blue.jpg")
    upload(client, (195, 25, 22), "red2.jpg")
    item_id = client.get(f"/api/v1/analyses/{red}/items").json["detections"]["0"]
    body = client.get(f"/api/v1/items/{item_id}/similar?k=5").json
    assert [x["image"] for x in body["results"]] == ["red2.jpg", "blue.jpg"]
    near, far = body["results"]
    assert near["match"] > 90 and far["match"] < near["match"] - 20 and "different garments" in body["match_meaning"]
    assert 0 <= far["match"] <= 100 and "similarity" in near and "look" in near
    search = client.post("/api/v1/search", data={"file": (io.BytesIO(jpeg((200, 20, 20))), "q.jpg")}).json
    assert "match_meaning" in search and search["queries"][0]["results"][0]["match"] > 90
