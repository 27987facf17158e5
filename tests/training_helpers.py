"""Training fixtures written by the tests: painted person-like samples (each pixel tells its instance) and a
CCP-layout folder (.mat annotations written with scipy.io.savemat)."""

from __future__ import annotations

import numpy as np
import scipy.io
from PIL import Image

from closetai.training.data.transforms import Sample

PERSON = 3  # the readers below: 1 = "red", 2 = "blue", 3 = "person"


def painted_sample(seed: int = 0, h: int = 120, w: int = 80) -> Sample:
    """A person-like sample whose pixels carry their instance: red top, blue trousers, a skin-grey head;
    the silhouette is all three. Aligned masks are then checkable from the pixels alone."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 40, (h, w, 3), dtype=np.uint8)  # dark noisy street
    top = np.zeros((h, w), bool)
    legs = np.zeros((h, w), bool)
    head = np.zeros((h, w), bool)
    cx = w // 2 + int(rng.integers(-5, 6))
    head[int(0.05 * h):int(0.2 * h), cx - 8:cx + 8] = True
    top[int(0.2 * h):int(0.5 * h), cx - 18:cx + 18] = True
    legs[int(0.5 * h):int(0.95 * h), cx - 14:cx + 14] = True
    rgb[head] = (150, 150, 150)
    rgb[top] = (250, 10, 10)
    rgb[legs] = (10, 10, 250)
    masks = np.stack([top, legs, top | legs | head])
    return Sample(rgb, masks, np.array([1, 2, PERSON]), masks.sum((1, 2)).astype(float), seed + 1, f"{seed}.png")


class PaintedReader:
    classes = ("red", "blue", "person")

    def __init__(self, n: int = 6):
        self.samples = [painted_sample(i, h=120 + 4 * i, w=80 + 2 * i) for i in range(n)]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        s = self.samples[i]
        return s.rgb, s.to_target()


LABELS = ["null", "skin", "jeans", "boots", "shirt", "socks"]


def write_ccp(root, n=3, h=60, w=40):
    (root / "photos").mkdir(parents=True)
    (root / "annotations" / "pixel-level").mkdir(parents=True)
    scipy.io.savemat(root / "label_list.mat", {"label_list": np.array([LABELS], dtype=object)})
    for i in range(1, n + 1):
        gt = np.zeros((h, w), np.uint8)
        gt[5:25, 5:35] = 4  # shirt -> top
        gt[25:50, 8:32] = 2  # jeans
        gt[52:58, 4:14] = 3  # left boot
        gt[52:58, 26:36] = 3  # right boot: a separate component
        gt[0:3, 0:3] = 4  # 9 px of shirt elsewhere: stays part of the one "top" instance
        gt[40:42, 0:2] = 5  # socks: background
        scipy.io.savemat(root / "annotations" / "pixel-level" / f"{i:04d}.mat", {"groundtruth": gt})
        Image.fromarray(np.full((h, w, 3), 100 + i, np.uint8)).save(root / "photos" / f"{i:04d}.jpg")
    return root
