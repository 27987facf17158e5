"""Clips for the video tests, generated with PyAV, and deterministic stand-ins for the model on them."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from closetai.vision.detections import Detections
from tests.helpers import CCP

CCP_PHOTO = CCP / "photos" / "0010.jpg"  # Apache-2.0: panned into clips (and screenshots) by the video tests
NAMES = ("top", "sweater", "outerwear", "vest", "dress", "skirt", "trousers", "jeans", "shorts", "footwear",
         "bag", "hat", "sunglasses", "belt", "scarf")
RED = (220, 30, 30)


def write_clip(path: Path, frames, fps: int = 10, rotation: int | None = None, fmt: str | None = None,
               codec: str = "libx264", faststart: bool = True) -> Path:
    """Encode RGB frames; `rotation` stores a display matrix (degrees counter-clockwise, FFmpeg's
    convention: a phone's "rotate 90" tag is -90)."""
    frames = list(frames)
    options = {"movflags": "+faststart"} if faststart and (fmt or path.suffix[1:]) in ("mp4", "mov") else {}
    with av.open(str(path), "w", format=fmt, options=options) as c:
        s = c.add_stream(codec, rate=fps)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuv420p"
        if rotation is not None:
            s.set_display_rotation(rotation)
        for rgb in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def panned_frames(n: int = 20, h: int = 96, w: int = 128, step: int = 3):
    """A grey street with a red 'garment' moving right `step` px per frame over a textured background."""
    rng = np.random.default_rng(0)
    background = rng.integers(60, 160, size=(h, w + n * step, 3), dtype=np.uint8)
    for i in range(n):
        frame = background[:, i * step:i * step + w].copy()
        frame[30:70, 20 + i * step:50 + i * step] = RED
        yield frame


class RedPredictor:
    """A deterministic stand-in for the model: the red blob is a 'top'. Lets the engine's decode,
    tracking, progress and output be tested exactly; the real model has its own tests
    (test_video.py, test_web_video.py)."""

    min_score = 0.5
    class_names = NAMES
    info = {"name": "red-finder", "taxonomy": "closetai-ccp-15", "device": "cpu"}

    def __init__(self):
        self.calls = 0

    def predict_batch(self, frames, min_score=None, **kwargs):
        self.calls += 1
        out = []
        for rgb in frames:
            red = ((rgb[..., 0] > 170) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)).astype(np.uint8)
            n, labels, stats, _ = cv2.connectedComponentsWithStats(red)
            blobs = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 20]
            if not blobs:
                out.append(Detections.empty(NAMES, *rgb.shape[:2]))
                continue
            boxes = [[stats[i, 0], stats[i, 1], stats[i, 0] + stats[i, 2], stats[i, 1] + stats[i, 3]] for i in blobs]
            out.append(Detections(boxes, [0.9] * len(blobs), [1] * len(blobs), NAMES,
                                  masks=np.stack([labels == i for i in blobs])))
        return out


def write_clip_with_sound(path: Path, frames, fps: int, audio: str = "aac", fmt: str | None = None,
                          garbage: bool = False, rate: int = 16000) -> Path:
    """Video plus a 440 Hz tone (or, with `garbage`, random bytes declared as `audio`) as long as it."""
    frames = list(frames)
    seconds = len(frames) / fps
    options = {"movflags": "+faststart"} if (fmt or path.suffix[1:]) in ("mp4", "mov") else {}
    with av.open(str(path), "w", format=fmt, options=options) as c:
        v = c.add_stream("libx264", rate=fps)
        v.height, v.width = frames[0].shape[:2]
        v.pix_fmt = "yuv420p"
        a = c.add_stream(audio, rate=rate, layout="mono")
        for rgb in frames:
            for p in v.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(p)
        n = int(seconds * rate)
        if garbage:
            rng = np.random.default_rng(1)
            for i in range(0, n, 1024):
                packet = av.Packet(rng.integers(0, 255, 300, dtype=np.uint8).tobytes())
                packet.stream, packet.time_base = a, Fraction(1, rate)
                packet.pts = packet.dts = i
                c.mux(packet)
        else:
            tone = 0.2 * np.sin(np.arange(n) * 2 * np.pi * 440 / rate)
            sample_fmt = a.codec_context.format.name
            samples = (tone * 32767).astype(np.int16) if sample_fmt.startswith("s16") else tone.astype(np.float32)
            for i in range(0, n, 1024):
                f = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[None, i:i + 1024]), format=sample_fmt,
                                               layout="mono")
                f.sample_rate, f.pts = rate, i
                for p in a.encode(f):
                    c.mux(p)
            for p in a.encode():
                c.mux(p)
        for p in v.encode():
            c.mux(p)
    return path


def two_shots(path: Path) -> Path:
    """A 4 s clip at 5 fps: a red garment at the same place in two shots with different backgrounds."""
    first = list(panned_frames(10, step=0))
    second = []
    for f in first:
        g = np.full_like(f, (30, 120, 200))
        g[30:70, 20:50] = RED
        second.append(g)
    return write_clip(path, first + second, fps=5)


class LookingRedPredictor(RedPredictor):
    """RedPredictor with an appearance vector per garment: the blob's mean colour (as the similar-items
    vector would say "the same red garment")."""

    def predict_batch(self, frames, min_score=None, **kwargs):
        out = super().predict_batch(frames, min_score)
        for rgb, d in zip(frames, out, strict=True):
            if len(d):
                d.embeddings = np.stack([rgb[m].mean(axis=0) / np.linalg.norm(rgb[m].mean(axis=0))
                                         for m in d.masks]).astype(np.float32)
        return out


class AppRedPredictor(RedPredictor):
    """RedPredictor as an app's PREDICTOR: its info lists the classes (/api/v1/health reads them)."""

    info = {**RedPredictor.info, "classes": list(RedPredictor.class_names)}


def ccp_photo_clip(out: Path) -> Path:
    """CCP_PHOTO panned into a 3 s clip at 5 fps (the browser tests' clip: its frames may be committed as
    screenshots, the street clips in ../shared may not)."""
    from closetai.media.imageio import load_rgb

    photo, _ = load_rgb(CCP_PHOTO)
    h, w = (photo.shape[0] - 40) // 2 * 2, (photo.shape[1] - 40) // 2 * 2
    return write_clip(out, [np.ascontiguousarray(photo[i * 2:i * 2 + h, i * 2:i * 2 + w]) for i in range(15)], fps=5)
