"""Training augmentation that removes CCP's priors (issue 16): one upright, centred, full-length person per
photo, each class once.

`StrongAugment(reader, person_label)(index, rng)` -> Sample. A share of the samples stays close to the
photo (flip, mild scale, colour), so the clean framing keeps being learned; the others go through:
- composition, one of: Simple Copy-Paste (Ghiasi et al., CVPR 2021) of 1-3 whole people (their
  silhouettes, at random scales) onto the photo, or of 1-3 single garments of other photos; a mosaic of
  2-4 photos side by side or in a grid; or nothing;
- large-scale jitter (scale 0.3-2.0 of a fixed canvas, random crop; what is left uncovered is another
  photo's street with its person painted out, not grey), so half-body close-ups and small people are common;
- quarter turns (90/180/270) and tilts up to 20 degrees;
- colour jitter, blur (Gaussian or motion), sensor noise, low light, JPEG.
Masks and boxes follow every step (closetai.training.data.transforms); instances cut below 40 % of their area or
under 100 px are dropped, as in the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from closetai.training.data import transforms as T
from closetai.training.data.transforms import Sample


@dataclass(frozen=True)
class AugmentConfig:
    canvas: tuple[int, int] = (512, 512)  # (width, height) of the strong samples
    p_plain: float = 0.3  # close to the photo: flip, scale 0.8-1.25, colour
    p_copy_paste_people: float = 0.3
    p_copy_paste_garments: float = 0.15
    p_mosaic: float = 0.2
    lsj: tuple[float, float] = (0.3, 2.0)  # the photo's longer side as a multiple of the canvas's
    p_quarter_turn: float = 0.25
    p_tilt: float = 0.25
    max_tilt_deg: float = 20.0
    p_blur: float = 0.15
    p_noise: float = 0.15
    p_low_light: float = 0.1
    p_jpeg: float = 0.2


class StrongAugment:
    """reader: (rgb, target) by index, with `person` instances (label person_label) wherever the photo's
    silhouette is known; donors for pastes and mosaics are drawn from the same reader."""

    def __init__(self, reader, person_label: int, config: AugmentConfig | None = None, cache_backgrounds: int = 64):
        self.reader, self.person_label = reader, person_label
        self.cfg = config or AugmentConfig()
        self._background = lru_cache(maxsize=cache_backgrounds)(self._make_background)

    def __len__(self) -> int:
        return len(self.reader)

    def sample(self, index: int) -> Sample:
        return Sample.from_reader(*self.reader[index])

    def silhouette(self, s: Sample) -> np.ndarray | None:
        sil = s.mask_of(self.person_label)
        return sil if sil.any() else None

    def _make_background(self, index: int) -> np.ndarray:
        s = self.sample(index)
        sil = self.silhouette(s)
        region = sil if sil is not None else s.masks.any(0)
        return T.remove_region(s.rgb, region)

    def __call__(self, index: int, rng: np.random.Generator) -> Sample:
        c = self.cfg
        s = self.sample(index)
        if rng.random() < c.p_plain:
            if rng.random() < 0.5:
                s = T.hflip(s)
            s = T.scale(s, rng.uniform(0.8, 1.25))
            return self._photometric(s, rng, strong=False)
        if rng.random() < 0.5:
            s = T.hflip(s)
        r = rng.random()
        if r < c.p_copy_paste_people:
            s = self._paste_people(s, index, rng)
        elif r < c.p_copy_paste_people + c.p_copy_paste_garments:
            s = self._paste_garments(s, index, rng)
        elif r < c.p_copy_paste_people + c.p_copy_paste_garments + c.p_mosaic:
            s = self._mosaic(s, index, rng)
        s = self._large_scale_jitter(s, index, rng)
        if rng.random() < c.p_quarter_turn:
            s = T.rotate90(s, int(rng.choice([1, 3, 2], p=[0.4, 0.4, 0.2])))
        if rng.random() < c.p_tilt:
            s = T.rotate(s, rng.uniform(-c.max_tilt_deg, c.max_tilt_deg), expand=False,
                         fill=tuple(int(v) for v in s.rgb.reshape(-1, 3).mean(0)))
        return self._photometric(s, rng, strong=True)

    # ---- steps -------------------------------------------------------------------------------------------

    def _donors(self, index: int, n: int, rng: np.random.Generator) -> list[int]:
        pool = len(self.reader)
        picks = []
        while len(picks) < min(n, pool - 1):
            j = int(rng.integers(0, pool))
            if j != index and j not in picks:
                picks.append(j)
        return picks

    def _paste_people(self, s: Sample, index: int, rng: np.random.Generator) -> Sample:
        """Whole people from other photos, each at 0.3-1.0 of this photo's height, anywhere along the
        bottom half (people stand on the ground); later ones in front."""
        for j in self._donors(index, int(rng.integers(1, 4)), rng):
            donor = self.sample(j)
            sil = self.silhouette(donor)
            if sil is None:
                continue
            f = rng.uniform(0.3, 1.0) * s.height / donor.height
            donor = T.scale(donor, f)
            sil = self.silhouette(donor)
            if sil is None:
                continue
            x = int(rng.integers(-donor.width // 3, max(1, s.width - 2 * donor.width // 3)))
            y = int(rng.integers(max(0, s.height // 2 - donor.height), max(1, s.height - donor.height // 2)))
            s = T.paste(s, donor, sil, x, y, feather=1)
        return s

    def _paste_garments(self, s: Sample, index: int, rng: np.random.Generator) -> Sample:
        """Single garments of other photos, at 0.5-1.5 of their size, anywhere on this photo."""
        for j in self._donors(index, int(rng.integers(1, 4)), rng):
            donor = self.sample(j)
            garments = np.flatnonzero(donor.labels != self.person_label)
            if not len(garments):
                continue
            g = int(rng.choice(garments))
            piece = T.keep(donor, np.array([g]))
            ys, xs = np.nonzero(piece.masks[0])
            piece = T.window(piece, int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                             int(ys.max() - ys.min() + 1))
            if not len(piece.labels):
                continue
            piece = T.scale(piece, rng.uniform(0.5, 1.5))
            if not len(piece.labels):
                continue
            x = int(rng.integers(-piece.width // 3, max(1, s.width - 2 * piece.width // 3)))
            y = int(rng.integers(-piece.height // 3, max(1, s.height - 2 * piece.height // 3)))
            s = T.paste(s, piece, piece.masks[0], x, y, feather=1)
        return s

    def _mosaic(self, s: Sample, index: int, rng: np.random.Generator) -> Sample:
        n = int(rng.integers(2, 5))
        parts = [s] + [self.sample(j) for j in self._donors(index, n - 1, rng)]
        parts = [T.scale(p, rng.uniform(0.5, 1.0)) for p in parts]
        rng.shuffle(parts)
        columns = len(parts) if len(parts) < 4 or rng.random() < 0.3 else 2
        return T.tile(parts, columns)

    def _large_scale_jitter(self, s: Sample, index: int, rng: np.random.Generator) -> Sample:
        """Resize so the sample's longer side is lsj x the canvas's longer side, then take a random canvas-
        sized window; where the window reaches past the sample, another photo's empty street shows."""
        cw, ch = self.cfg.canvas
        f = rng.uniform(*self.cfg.lsj) * max(cw, ch) / max(s.width, s.height)
        s = T.scale(s, f)
        x0 = int(rng.integers(min(0, s.width - cw), max(0, s.width - cw) + 1))
        y0 = int(rng.integers(min(0, s.height - ch), max(0, s.height - ch) + 1))
        if s.width < cw or s.height < ch:
            bg = self._background(self._donors(index, 1, rng)[0] if len(self.reader) > 1 else index)
            bg = _fit(bg, cw, ch, rng)
            # Fully inside the canvas: the people alone stand on the new street (not their photo's
            # rectangle); a sample cut by the canvas edge keeps its own pixels up to that edge.
            region = None
            if s.width <= cw and s.height <= ch and len(s.masks):
                region = s.masks.any(0)
            return _over_background(s, bg, -x0, -y0, region)
        return T.window(s, x0, y0, cw, ch)

    def _photometric(self, s: Sample, rng: np.random.Generator, strong: bool) -> Sample:
        c = self.cfg
        s = T.colour_jitter(s, rng.uniform(0.75, 1.25), rng.uniform(0.75, 1.25), rng.uniform(0.7, 1.3),
                            rng.uniform(-8, 8) if strong else 0.0)
        if not strong:
            return s
        if rng.random() < c.p_blur:
            s = (T.motion_blur(s, int(rng.integers(5, 21)), rng.uniform(0, 180)) if rng.random() < 0.5
                 else T.gaussian_blur(s, rng.uniform(0.8, 2.5)))
        if rng.random() < c.p_low_light:
            s = T.low_light(s, rng.uniform(0.25, 0.6), rng.uniform(1.1, 1.6), rng.uniform(2, 6), rng)
        if rng.random() < c.p_noise:
            s = T.gaussian_noise(s, rng.uniform(3, 12), rng)
        if rng.random() < c.p_jpeg:
            s = T.jpeg(s, int(rng.integers(10, 60)))
        return s


def _fit(bg: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A random width x height window of the background, scaled up first if it is too small."""
    import cv2

    h, w = bg.shape[:2]
    f = max(width / w, height / h, 1.0) * rng.uniform(1.0, 1.5)
    bg = cv2.resize(bg, (int(np.ceil(w * f)), int(np.ceil(h * f))), interpolation=cv2.INTER_LINEAR)
    x = int(rng.integers(0, bg.shape[1] - width + 1))
    y = int(rng.integers(0, bg.shape[0] - height + 1))
    return bg[y:y + height, x:x + width]


def _over_background(s: Sample, bg: np.ndarray, x: int, y: int, region: np.ndarray | None = None) -> Sample:
    """The sample (or its `region`) placed at (x, y) on a background image of the canvas size."""
    h, w = bg.shape[:2]
    canvas = Sample(bg.copy(), np.zeros((0, h, w), bool), np.zeros(0, np.int64), np.zeros(0), s.image_id, s.file_name)
    whole = region is None
    region = np.ones((s.height, s.width), bool) if whole else region
    return T.paste(canvas, s, region, x, y, feather=0 if whole else 1)
