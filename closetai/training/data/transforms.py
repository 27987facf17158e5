"""Operations on one detection sample with its ground truth following: the training augmentation
(closetai.training.data.augment) and the robustness benchmark (closetai.training.data.conditions) are both made of them.

A `Sample` holds an RGB uint8 (H, W, 3) image and its instances: masks (N, H, W) bool, 1-based labels,
and `full_area`, each instance's area when whole at the sample's current scale. Geometric operations move
masks with the pixels and boxes are always recomputed from the masks, so the two cannot drift apart.
Operations that cut instances (crops, occlusion by a pasted person, the canvas edge after a tilt) drop
those left with under MIN_VISIBLE of their area or under MIN_PIXELS pixels, the rule of the benchmark
(issue 16) and of Simple Copy-Paste's occlusion handling (Ghiasi et al., CVPR 2021).
Written on numpy/OpenCV because torchvision's v2 transforms do not paste one sample into another nor
track how much of an instance a cut leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from closetai.training.data import make_target, masks_to_boxes

MIN_VISIBLE = 0.4
MIN_PIXELS = 100


@dataclass
class Sample:
    rgb: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    full_area: np.ndarray
    image_id: int = 0
    file_name: str = ""
    extra: dict = field(default_factory=dict)
    # (N,) which person of the picture each instance belongs to (a photo's garments and its silhouette share
    # one number; composites number their photos apart): the ground truth of garments-to-people.
    group: np.ndarray | None = None

    @classmethod
    def from_reader(cls, rgb: np.ndarray, target: dict) -> Sample:
        masks = np.asarray(target["masks"], dtype=bool).reshape(-1, *rgb.shape[:2])
        return cls(np.ascontiguousarray(rgb), masks, np.asarray(target["labels"], np.int64),
                   masks.sum((1, 2), dtype=np.int64).astype(np.float64), target.get("image_id", 0),
                   target.get("file_name", ""), group=np.zeros(len(masks), np.int64))

    def to_target(self) -> dict:
        h, w = self.rgb.shape[:2]
        return make_target(list(self.masks.astype(np.uint8)), list(self.labels), h, w, self.image_id, self.file_name)

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]

    @property
    def boxes(self) -> np.ndarray:
        return masks_to_boxes(self.masks)

    def areas(self) -> np.ndarray:
        return self.masks.sum((1, 2), dtype=np.int64).astype(np.float64)

    def copy(self) -> Sample:
        return Sample(self.rgb.copy(), self.masks.copy(), self.labels.copy(), self.full_area.copy(),
                      self.image_id, self.file_name, dict(self.extra), None if self.group is None else self.group.copy())

    def mask_of(self, label: int) -> np.ndarray:
        """Union of the instances with this label (e.g. the person silhouette)."""
        sel = self.masks[self.labels == label]
        return sel.any(0) if len(sel) else np.zeros(self.rgb.shape[:2], bool)


def keep(s: Sample, index: np.ndarray) -> Sample:
    return Sample(s.rgb, s.masks[index], s.labels[index], s.full_area[index], s.image_id, s.file_name, s.extra,
                  None if s.group is None else s.group[index])


def drop_cut(s: Sample, min_visible: float = MIN_VISIBLE, min_pixels: int = MIN_PIXELS) -> Sample:
    """Drop instances left with under min_visible of their whole area, or under min_pixels pixels."""
    area = s.areas()
    ok = (area >= min_pixels) & (area >= min_visible * s.full_area)
    return keep(s, np.flatnonzero(ok)) if not ok.all() else s


# ---- geometry -----------------------------------------------------------------------------------------

def _warp_masks(masks: np.ndarray, size: tuple[int, int], warp: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply an OpenCV warp to (N, H, W) bool masks, four at a time as the channels of one image (what
    cv2 takes), thresholding the interpolated coverage at 0.5: no nearest-neighbour aliasing."""
    w, h = size
    out = np.zeros((len(masks), h, w), bool)
    for start in range(0, len(masks), 4):
        chunk = np.ascontiguousarray(masks[start:start + 4].transpose(1, 2, 0), dtype=np.uint8) * 255
        out[start:start + 4] = warp(chunk).reshape(h, w, -1).transpose(2, 0, 1) >= 128
    return out


def _resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, H, W) bool -> (N, h, w) bool."""
    interp = cv2.INTER_AREA if size[0] * size[1] < masks.shape[1] * masks.shape[2] else cv2.INTER_LINEAR
    return _warp_masks(masks, size, lambda m: cv2.resize(m, size, interpolation=interp))


def resize(s: Sample, width: int, height: int) -> Sample:
    width, height = max(1, int(round(width))), max(1, int(round(height)))
    if (width, height) == (s.width, s.height):
        return s
    interp = cv2.INTER_AREA if width * height < s.width * s.height else cv2.INTER_LINEAR
    rgb = cv2.resize(s.rgb, (width, height), interpolation=interp)
    factor = (width / s.width) * (height / s.height)
    return Sample(rgb, _resize_masks(s.masks, (width, height)), s.labels, s.full_area * factor, s.image_id,
                  s.file_name, s.extra, s.group)


def scale(s: Sample, factor: float) -> Sample:
    return resize(s, s.width * factor, s.height * factor)


def window(s: Sample, x0: int, y0: int, width: int, height: int, fill: tuple[int, int, int] | np.ndarray = (114, 114, 114),
           min_visible: float = MIN_VISIBLE) -> Sample:
    """The region [x0, x0 + width) x [y0, y0 + height) of the sample, which may reach past its edges
    (padded with fill, or with the pixels of an image of the output size passed as fill): crop and pad
    in one. Instances cut below min_visible of their area are dropped."""
    width, height = int(width), int(height)
    if isinstance(fill, np.ndarray):
        rgb = np.ascontiguousarray(fill[:height, :width]).copy()
    else:
        rgb = np.empty((height, width, 3), np.uint8)
        rgb[:] = fill
    masks = np.zeros((len(s.masks), height, width), bool)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + width, s.width), min(y0 + height, s.height)
    if sx1 > sx0 and sy1 > sy0:
        rgb[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = s.rgb[sy0:sy1, sx0:sx1]
        masks[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = s.masks[:, sy0:sy1, sx0:sx1]
    return drop_cut(Sample(rgb, masks, s.labels, s.full_area, s.image_id, s.file_name, s.extra, s.group), min_visible)


def crop_fraction(s: Sample, top: float, bottom: float, left: float = 0.0, right: float = 1.0,
                  min_visible: float = MIN_VISIBLE) -> Sample:
    """Keep rows [top, bottom) and columns [left, right) as fractions of the height and width."""
    y0, y1 = int(round(top * s.height)), int(round(bottom * s.height))
    x0, x1 = int(round(left * s.width)), int(round(right * s.width))
    return window(s, x0, y0, x1 - x0, y1 - y0, min_visible=min_visible)


def hflip(s: Sample) -> Sample:
    return Sample(np.ascontiguousarray(s.rgb[:, ::-1]), np.ascontiguousarray(s.masks[:, :, ::-1]), s.labels,
                  s.full_area, s.image_id, s.file_name, s.extra, s.group)


def rotate90(s: Sample, quarter_turns: int) -> Sample:
    """Rotate counter-clockwise by quarter_turns x 90 degrees (np.rot90's sense)."""
    k = quarter_turns % 4
    if k == 0:
        return s
    return Sample(np.ascontiguousarray(np.rot90(s.rgb, k)), np.ascontiguousarray(np.rot90(s.masks, k, axes=(1, 2))),
                  s.labels, s.full_area, s.image_id, s.file_name, s.extra, s.group)


def rotate(s: Sample, degrees: float, expand: bool = True, fill: tuple[int, int, int] = (114, 114, 114),
           min_visible: float = MIN_VISIBLE) -> Sample:
    """Rotate counter-clockwise by any angle. expand: the canvas grows to hold the whole image (the
    corners are filled); otherwise it keeps its size and what leaves it is cut."""
    h, w = s.height, s.width
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    if expand:
        cos, sin = abs(m[0, 0]), abs(m[0, 1])
        nw, nh = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
        m[0, 2] += nw / 2 - w / 2
        m[1, 2] += nh / 2 - h / 2
    else:
        nw, nh = w, h
    rgb = cv2.warpAffine(s.rgb, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    masks = _warp_masks(s.masks, (nw, nh), lambda c: cv2.warpAffine(c, m, (nw, nh), flags=cv2.INTER_LINEAR,
                                                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0))
    return drop_cut(Sample(rgb, masks, s.labels, s.full_area, s.image_id, s.file_name, s.extra, s.group), min_visible)


# ---- several samples into one ---------------------------------------------------------------------------

def paste(base: Sample, donor: Sample, region: np.ndarray, x: int, y: int,
          min_visible: float = MIN_VISIBLE, feather: int = 0) -> Sample:
    """Paste donor's pixels inside `region` ((H, W) bool at the donor's size) onto base with the donor's
    top-left corner at (x, y); the donor's instances come along (clipped to the region), base instances
    lose what is covered. Those cut below min_visible of their area are dropped (on both sides).
    feather: blend the region's edge over this many pixels (a pasted person without a hard cut-out line)."""
    out_rgb = base.rgb.copy()
    H, W = base.height, base.width
    sx0, sy0 = max(0, -x), max(0, -y)
    sx1, sy1 = min(donor.width, W - x), min(donor.height, H - y)
    donor_masks = np.zeros((len(donor.masks), H, W), bool)
    covered = np.zeros((H, W), bool)
    if sx1 > sx0 and sy1 > sy0:
        reg = region[sy0:sy1, sx0:sx1]
        dst = (slice(y + sy0, y + sy1), slice(x + sx0, x + sx1))
        covered[dst] = reg
        if feather > 0:
            alpha = cv2.GaussianBlur(reg.astype(np.float32), (0, 0), feather)[..., None]
            alpha = np.where(reg[..., None], np.maximum(alpha, 0.5), alpha * 0)  # blend only inside the region
            out_rgb[dst] = (donor.rgb[sy0:sy1, sx0:sx1] * alpha + out_rgb[dst] * (1 - alpha)).astype(np.uint8)
        else:
            out_rgb[dst][reg] = donor.rgb[sy0:sy1, sx0:sx1][reg]
        donor_masks[(slice(None), *dst)] = donor.masks[:, sy0:sy1, sx0:sx1] & reg
    base_masks = base.masks & ~covered
    base_group = base.group if base.group is not None else np.zeros(len(base.labels), np.int64)
    donor_group = donor.group if donor.group is not None else np.zeros(len(donor.labels), np.int64)
    offset = int(base_group.max()) + 1 if len(base_group) else 0
    merged = Sample(out_rgb, np.concatenate([base_masks, donor_masks]), np.concatenate([base.labels, donor.labels]),
                    np.concatenate([base.full_area, donor.full_area]), base.image_id, base.file_name, base.extra,
                    np.concatenate([base_group, donor_group + offset]))
    return drop_cut(merged, min_visible)


def tile(samples: list[Sample], columns: int, fill: tuple[int, int, int] = (114, 114, 114), gap: int = 0) -> Sample:
    """Place samples in a grid, row by row, each cell as large as the largest sample in its row/column,
    each sample centred in its cell (a mosaic, or people side by side when columns == len(samples))."""
    rows = [samples[i:i + columns] for i in range(0, len(samples), columns)]
    col_w = [max(r[c].width for r in rows if c < len(r)) for c in range(columns)]
    row_h = [max(s.height for s in r) for r in rows]
    W, H = sum(col_w) + gap * (columns - 1), sum(row_h) + gap * (len(rows) - 1)
    rgb = np.empty((H, W, 3), np.uint8)
    rgb[:] = fill
    canvas = Sample(rgb, np.zeros((0, H, W), bool), np.zeros(0, np.int64), np.zeros(0), samples[0].image_id,
                    samples[0].file_name)
    y = 0
    for r, row in enumerate(rows):
        x = 0
        for c, s in enumerate(row):
            ox, oy = x + (col_w[c] - s.width) // 2, y + (row_h[r] - s.height) // 2
            canvas = paste(canvas, s, np.ones((s.height, s.width), bool), ox, oy)
            x += col_w[c] + gap
        y += row_h[r] + gap
    return canvas


def remove_region(rgb: np.ndarray, region: np.ndarray, work_side: int = 160) -> np.ndarray:
    """An image with `region` painted over from its surroundings (a background without its person):
    OpenCV's inpainting on a small copy, scaled back and blended inside the region only. Blurry inside,
    but what matters here is that no person is left there to be detected."""
    h, w = rgb.shape[:2]
    f = work_side / max(h, w)
    small = cv2.resize(rgb, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
    small_region = cv2.resize(region.astype(np.uint8), small.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    small_region = cv2.dilate(small_region, np.ones((5, 5), np.uint8))
    filled = cv2.inpaint(small, small_region, 5, cv2.INPAINT_TELEA)
    big = cv2.resize(filled, (w, h), interpolation=cv2.INTER_CUBIC)
    grown = cv2.dilate(region.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    out = rgb.copy()
    out[grown] = big[grown]
    return out


# ---- photometric (ground truth unchanged) ---------------------------------------------------------------

def with_rgb(s: Sample, rgb: np.ndarray) -> Sample:
    return Sample(rgb, s.masks, s.labels, s.full_area, s.image_id, s.file_name, s.extra, s.group)


def motion_blur(s: Sample, length: int, angle_deg: float) -> Sample:
    """A straight camera shake of `length` pixels at `angle_deg`."""
    length = max(3, int(length) | 1)
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle_deg, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    kernel /= max(kernel.sum(), 1e-6)
    return with_rgb(s, cv2.filter2D(s.rgb, -1, kernel))


def gaussian_blur(s: Sample, sigma: float) -> Sample:
    return with_rgb(s, cv2.GaussianBlur(s.rgb, (0, 0), sigma))


def low_light(s: Sample, gain: float, gamma: float, noise_sigma: float, rng: np.random.Generator) -> Sample:
    """An under-exposed photo from a phone: darker (gain, gamma > 1) with sensor noise after the gain."""
    x = (s.rgb.astype(np.float32) / 255.0) ** gamma * gain
    x += rng.normal(0, noise_sigma / 255.0, x.shape).astype(np.float32)
    return with_rgb(s, (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8))


def gaussian_noise(s: Sample, sigma: float, rng: np.random.Generator) -> Sample:
    x = s.rgb.astype(np.float32) + rng.normal(0, sigma, s.rgb.shape).astype(np.float32)
    return with_rgb(s, np.clip(x, 0, 255).astype(np.uint8))


def jpeg(s: Sample, quality: int) -> Sample:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(s.rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return with_rgb(s, cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)) if ok else s


def colour_jitter(s: Sample, brightness: float, contrast: float, saturation: float, hue_deg: float) -> Sample:
    x = s.rgb.astype(np.float32) * brightness
    mean = x.mean()
    x = (x - mean) * contrast + mean
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = (x - grey[..., None]) * saturation + grey[..., None]
    rgb = np.clip(x, 0, 255).astype(np.uint8)
    if hue_deg:
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(hue_deg / 2))) % 180).astype(np.uint8)
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return with_rgb(s, rgb)
