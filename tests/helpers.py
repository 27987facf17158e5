"""Shared test helpers: paths, synthetic images and a tiny model (no fixtures with side effects)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from closetai.vision.detections import Detections

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CCP = SHARED / "data" / "ccp"
SHIPPED_MODEL = REPO / "models" / "closetai-ccp15.pt"

needs_shared = pytest.mark.skipif(not CCP.is_dir(), reason="../shared (CCP data) is absent on this machine")
needs_model = pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="shipped model models/closetai-ccp15.pt missing")


def synthetic_scene(seed: int = 0, size: tuple[int, int] = (160, 128)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A noisy background with 1-3 coloured rectangles/ellipses -> (rgb, masks (N,H,W) uint8, labels)."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = size
    rgb = rng.integers(90, 140, (h, w, 3), dtype=np.uint8)
    masks, labels = [], []
    for k in range(int(rng.integers(1, 4))):
        m = np.zeros((h, w), np.uint8)
        x1, y1 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        x2, y2 = x1 + int(rng.integers(w // 5, w // 2)), y1 + int(rng.integers(h // 5, h // 2))
        if k % 2:
            cv2.ellipse(m, ((x1 + x2) // 2, (y1 + y2) // 2), ((x2 - x1) // 2, (y2 - y1) // 2), 0, 0, 360, 1, -1)
        else:
            m[y1:y2, x1:x2] = 1
        label = 1 + k % 2
        rgb[m.astype(bool)] = (220, 40, 40) if label == 1 else (40, 40, 220)
        masks.append(m)
        labels.append(label)
    return rgb, np.stack(masks), np.array(labels)


class SyntheticReader:
    """A training reader over synthetic_scene images (model and training tests)."""

    classes = ("red", "blue")

    def __init__(self, n=8, offset=0):
        self.items = [synthetic_scene(seed + offset) for seed in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from closetai.training.data import make_target

        rgb, masks, labels = self.items[i]
        return rgb, make_target(list(masks), list(labels), *rgb.shape[:2], i + 1, f"{i}.png")


def tiny_model_config() -> dict:
    return {"min_size": 128, "max_size": 192, "train_min_size": [128], "fpn_channels": 32,
            "box_head_dim": 64, "mask_head_channels": 32, "rpn_post_nms_test": 50, "rpn_pre_nms_test": 100}


def tiny_model_file(path: Path, classes, config: dict | None = None, **metadata) -> Path:
    """Save a tiny Mask R-CNN with random weights (torch seed 0) to `path`, as save_model writes a model file:
    tiny_model_config() updated by `config`; metadata name "tiny", taxonomy "test", the classes and score
    threshold 0, each of which `metadata` may override or add to."""
    import torch

    from closetai.vision.model import build_model, save_model

    torch.manual_seed(0)
    cfg = {**tiny_model_config(), **(config or {})}
    save_model(build_model(len(classes) + 1, cfg, pretrained_backbone=False), path, cfg,
               {"name": "tiny", "taxonomy": "test", "classes": list(classes), "score_threshold": 0.0, **metadata})
    return path


class FakePredictor:
    """Stands in for the model: these tests are about HTTP, not detection."""

    class_names = ("top", "jeans")
    min_score = 0.5
    info = {"name": "fake", "taxonomy": "test", "device": "cpu", "classes": ["top", "jeans"]}
    meta = {"config": {"min_size": 448}}
    timings: dict = {}

    def __call__(self, rgb, min_score=None):
        h, w = rgb.shape[:2]
        m = np.zeros((1, h, w), bool)
        m[0, h // 4: h // 2, w // 4: w // 2] = True
        return Detections([[w / 4, h / 4, w / 2, h / 2]], [0.9], [1], self.class_names, masks=m)

    def predict_batch(self, frames, min_score=None, **kwargs):
        return [self(f) for f in frames]


class EmbeddingFakePredictor(FakePredictor):
    """FakePredictor's one garment, with a vector made from the photo's mean colour in that region."""

    info = {**FakePredictor.info, "embedding": "fake/v1"}
    embedding_model = "fake/v1"

    def __call__(self, rgb, min_score=None):
        d = super().__call__(rgb, min_score)
        d.embeddings = self.embed_regions(rgb, d.xyxy, d.masks)
        return d

    def embed_regions(self, rgb, boxes, masks=None):
        out = []
        for b in np.asarray(boxes, dtype=int).reshape(-1, 4):
            region = rgb[b[1]:b[3], b[0]:b[2]].reshape(-1, 3).astype(np.float32)
            v = np.r_[region.mean(0), 1.0]
            out.append(v / np.linalg.norm(v))
        return np.array(out, dtype=np.float32).reshape(-1, 4)


class ColourDetector:
    """Stands in for Predictor: one detection per colour region found (red -> top, blue -> jeans)."""

    class_names = ("top", "jeans")
    min_score = 0.5
    info = {"name": "colour-detector", "taxonomy": "test", "device": "cpu", "classes": list(class_names)}

    def __init__(self, *args, **kwargs):
        self.calls = 0

    def __call__(self, rgb, min_score=None):
        self.calls += 1
        r, g, b = (rgb[..., i].astype(int) for i in range(3))
        masks, boxes, ids = [], [], []
        for class_id, mask in ((1, (r > 150) & (g < 80) & (b < 80)), (2, (b > 150) & (r < 80) & (g < 100))):
            if mask.sum() < 50:
                continue
            ys, xs = np.nonzero(mask)
            masks.append(mask)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            ids.append(class_id)
        h, w = rgb.shape[:2]
        return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(ids), 0.9, np.float32),
                          np.array(ids), self.class_names,
                          masks=np.array(masks, bool).reshape(-1, h, w))


def make_photo(path, seed: int, blue: bool = True) -> None:
    """A JPEG that ColourDetector finds a red top (and, with `blue`, blue jeans) in."""
    import cv2

    rng = np.random.default_rng(seed)
    img = rng.integers(150, 200, (240, 160, 3), dtype=np.uint8)
    img[40:120, 40:120] = (200, 30, 30)  # RGB red "top"
    if blue:
        img[120:220, 50:110] = (30, 40, 200)  # blue "jeans"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def flat_png() -> bytes:
    """A small flat grey PNG (a valid upload, no garments needed)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((64, 48, 3), 120, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def run_processes(target, arg_lists: list[tuple], timeout: float = 120) -> list[str]:
    """Run target(*args, errors) in one spawned process per args tuple, all at once; returns what they
    put on the `errors` queue (empty when every process succeeded) plus any non-zero exit."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, errors)) for args in arg_lists]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    found = []
    while not errors.empty():
        found.append(errors.get())
    return found + [f"process exited with {p.exitcode}" for p in procs if p.exitcode != 0]


CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="needs Debian chromium at /usr/bin/chromium (apt-get install chromium)")


class served:
    """Serve a Flask app with waitress on 127.0.0.1 and a free port in a background thread.

    with served(app) as base_url: ...   (a real HTTP server on loopback, as a user's browser sees it)
    """

    def __init__(self, app, threads: int = 4):
        from waitress import create_server

        self.server = create_server(app, host="127.0.0.1", port=0, threads=threads)

    def __enter__(self) -> str:
        import threading

        threading.Thread(target=self.server.run, daemon=True).start()
        return f"http://127.0.0.1:{self.server.effective_port}"

    def __exit__(self, *exc) -> None:
        self.server.close()


def write_audio_only(path: Path) -> Path:
    """A one-second AAC tone in an mp4 with no video stream (the 'audio-only upload' case)."""
    import av

    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=16000)
        tone = (0.2 * np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000)).astype(np.float32)[None]
        for i in range(0, 16000, 1024):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, i:i + 1024]), format="fltp", layout="mono")
            f.sample_rate, f.pts = 16000, i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def browser_test_with_photos(photos) -> list:
    """The marks of a chromium test that analyses CCP photos with the shipped model: it skips cleanly
    without chromium, the model or ../shared."""
    return [pytest.mark.browser, pytest.mark.slow, pytest.mark.shared, needs_chromium, needs_model,
            pytest.mark.skipif(not all(p.is_file() for p in photos),
                               reason="needs ../shared/data/ccp/photos (not present)")]
