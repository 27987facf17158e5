"""The robustness benchmark's conditions (issue 16): a labelled split rendered, deterministically, into
the framings real users bring, with the ground truth following every transform (closetai.training.data.transforms).

Each condition renders one image per photo of the split (`render(name, index)`), so every condition has
as many images as the clean split and its AP compares with the clean figure. Photos that join a composite
(several people, a background) are drawn from the same split with a generator seeded by the condition and
the index: the same images on every run and machine. A CCP person's silhouette is every non-null label
(skin and hair included): the reader must give the `person` instances (CCPDataset(person=True)); the
benchmark scores garments and reports the person class apart.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from closetai.training.data import transforms as T
from closetai.training.data.transforms import Sample


@dataclass(frozen=True)
class Condition:
    name: str
    group: str  # "framing" (the target conditions) or "quality" (reported as a ratio to clean)
    about: str
    render: Callable[[ConditionSet, int, np.random.Generator], Sample]


class ConditionSet:
    """Renders a reader's photos under the conditions. person_label: the class id of `person` in the
    reader (its silhouettes are what composites cut out)."""

    def __init__(self, reader, person_label: int):
        self.reader, self.person_label = reader, person_label
        self._sample = lru_cache(maxsize=16)(self._load)
        self._background = lru_cache(maxsize=8)(self._load_background)

    def __len__(self) -> int:
        return len(self.reader)

    def _load(self, index: int) -> Sample:
        return Sample.from_reader(*self.reader[index])

    def sample(self, index: int) -> Sample:
        return self._sample(index).copy()

    def silhouette(self, s: Sample) -> np.ndarray:
        return s.mask_of(self.person_label)

    def _load_background(self, index: int) -> np.ndarray:
        s = self._sample(index)
        return T.remove_region(s.rgb, self.silhouette(s))

    def background(self, index: int) -> np.ndarray:
        """Photo `index` with its person painted over: a street with nobody in it."""
        return self._background(index)

    def others(self, index: int, n: int, rng: np.random.Generator) -> list[int]:
        """n other photo indices for a composite with photo `index`."""
        pool = [i for i in range(len(self)) if i != index]
        return [int(i) for i in rng.choice(pool, size=min(n, len(pool)), replace=False)]

    def render(self, name: str, index: int) -> Sample:
        rng = np.random.default_rng([zlib.crc32(name.encode()), index])
        return CONDITIONS[name].render(self, index, rng)


# ---- renderers ------------------------------------------------------------------------------------------

def _clean(cs: ConditionSet, i: int, rng: np.random.Generator) -> Sample:
    return cs.sample(i)


def _side_by_side(n_range: tuple[int, int], scale_range: tuple[float, float], columns: int | None = None):
    def render(cs: ConditionSet, i: int, rng: np.random.Generator) -> Sample:
        n = int(rng.integers(n_range[0], n_range[1] + 1))
        idx = [i, *cs.others(i, n - 1, rng)]
        rng.shuffle(idx)
        people = [T.scale(cs.sample(j), rng.uniform(*scale_range)) for j in idx]
        return T.tile(people, columns or n)
    return render


def _shared_background(n_range: tuple[int, int], scale_range: tuple[float, float], overlap: float):
    """n people cut out by their silhouettes and stood on one background, left to right, each overlapping
    the previous by up to `overlap` of its width (later ones in front)."""
    def render(cs: ConditionSet, i: int, rng: np.random.Generator) -> Sample:
        n = int(rng.integers(n_range[0], n_range[1] + 1))
        picked = cs.others(i, n, rng)
        bg_index, others = picked[0], picked[1:]
        idx = [i, *others]
        rng.shuffle(idx)
        people = [T.scale(cs.sample(j), rng.uniform(*scale_range)) for j in idx]
        step = [int(p.width * (1 - rng.uniform(0, overlap))) for p in people]
        width = sum(step[:-1]) + people[-1].width
        height = max(p.height for p in people)
        bg = cs.background(bg_index)
        f = max(width / bg.shape[1], height / bg.shape[0])
        canvas = T.scale(Sample(bg, np.zeros((0, *bg.shape[:2]), bool), np.zeros(0, np.int64), np.zeros(0)), f)
        canvas = T.window(canvas, (canvas.width - width) // 2, canvas.height - height, width, height)
        x = 0
        for p, dx in zip(people, step, strict=True):
            canvas = T.paste(canvas, p, cs.silhouette(p), x, height - p.height, feather=1)
            x += dx
        canvas.image_id, canvas.file_name = cs.sample(i).image_id, cs.sample(i).file_name
        return canvas
    return render


def _small_person(cs: ConditionSet, i: int, rng: np.random.Generator) -> Sample:
    """The person at 1/3 of the frame's height on another photo's (emptied) background."""
    s = cs.sample(i)
    bg_index = cs.others(i, 1, rng)[0]
    bg = cs.background(bg_index)
    canvas = Sample(bg, np.zeros((0, *bg.shape[:2]), bool), np.zeros(0, np.int64), np.zeros(0), s.image_id, s.file_name)
    person = T.scale(s, canvas.height / 3 / s.height)
    x = int(rng.integers(0, max(1, canvas.width - person.width)))
    y = int(rng.integers(canvas.height // 2, max(canvas.height // 2 + 1, canvas.height - person.height)))
    return T.paste(canvas, person, cs.silhouette(person), x, y, feather=1)


def _rotation(quarter_turns: int):
    return lambda cs, i, rng: T.rotate90(cs.sample(i), quarter_turns)


def _tilt(degrees: float):
    return lambda cs, i, rng: T.rotate(cs.sample(i), degrees, expand=True)


def _close_up(top: float, bottom: float, width: float | None = None):
    """Rows [top, bottom) of the photo in a window of the photo's shape (or `width` of its width), centred
    on the person, enlarged back to the photo's height: a phone filming closer."""
    def render(cs: ConditionSet, i: int, rng: np.random.Generator) -> Sample:
        s = cs.sample(i)
        frac_w = width if width is not None else bottom - top
        cols = np.flatnonzero(cs.silhouette(s)[int(top * s.height):int(bottom * s.height)].any(0))
        centre = (cols[0] + cols[-1]) / 2 / s.width if len(cols) else 0.5
        left = float(np.clip(centre - frac_w / 2, 0, 1 - frac_w))
        part = T.crop_fraction(s, top, bottom, left, left + frac_w)
        return T.scale(part, s.height / part.height)
    return render


def _motion_blur(cs: ConditionSet, i: int, rng: np.random.Generator) -> Sample:
    s = cs.sample(i)
    return T.motion_blur(s, int(round(s.height * rng.uniform(0.02, 0.035))), rng.uniform(0, 180))


def _low_light(cs: ConditionSet, i: int, rng: np.random.Generator) -> Sample:
    return T.low_light(cs.sample(i), gain=rng.uniform(0.25, 0.4), gamma=rng.uniform(1.3, 1.6),
                       noise_sigma=rng.uniform(3, 6), rng=rng)


def _jpeg(cs: ConditionSet, i: int, rng: np.random.Generator) -> Sample:
    return T.jpeg(cs.sample(i), 12)


_LIST = [
    Condition("clean", "clean", "the photos as they are", _clean),
    Condition("side-by-side", "framing", "2-3 photos side by side, each scaled 0.6-0.8", _side_by_side((2, 3), (0.6, 0.8))),
    Condition("grid", "framing", "4 photos in a 2x2 grid, each scaled 0.6-0.8", _side_by_side((4, 4), (0.6, 0.8), 2)),
    Condition("group", "framing", "3-5 people cut out onto one street background, scaled 0.6-0.8, overlapping "
              "by up to 30 %", _shared_background((3, 5), (0.6, 0.8), 0.3)),
    Condition("rotate-90", "framing", "turned 90 degrees (a sideways phone shot)", _rotation(1)),
    Condition("rotate-180", "framing", "upside down", _rotation(2)),
    Condition("rotate-270", "framing", "turned 270 degrees", _rotation(3)),
    Condition("tilt+20", "framing", "tilted 20 degrees counter-clockwise", _tilt(20)),
    Condition("tilt-20", "framing", "tilted 20 degrees clockwise", _tilt(-20)),
    Condition("upper-body", "framing", "top 55 % of the photo, enlarged", _close_up(0.0, 0.55)),
    Condition("lower-body", "framing", "bottom 55 % of the photo, enlarged", _close_up(0.45, 1.0)),
    Condition("head-and-shoulders", "framing", "top 30 % (hat, sunglasses, scarf), enlarged", _close_up(0.0, 0.3, 0.5)),
    Condition("crowd-far", "quality", "4-5 people on one background, scaled 0.4-0.6", _shared_background((4, 5), (0.4, 0.6), 0.2)),
    Condition("small-person", "quality", "the person at 1/3 of the frame's height on another street", _small_person),
    Condition("motion-blur", "quality", "camera shake over 2-3.5 % of the height", _motion_blur),
    Condition("low-light", "quality", "under-exposed (gain 0.25-0.4, gamma 1.3-1.6) with sensor noise", _low_light),
    Condition("jpeg", "quality", "JPEG quality 12", _jpeg),
]
CONDITIONS: dict[str, Condition] = {c.name: c for c in _LIST}
FRAMING = tuple(c.name for c in _LIST if c.group == "framing")
QUALITY = tuple(c.name for c in _LIST if c.group == "quality")
