"""closetai.training.data.transforms, conditions and augment: masks and boxes stay aligned with the pixels under
every operation, cut instances follow the 40 % / 100 px rule, and the benchmark renders deterministically."""

from __future__ import annotations

import numpy as np
import pytest

from closetai.training.data import masks_to_boxes
from closetai.training.data import transforms as T
from closetai.training.data.augment import StrongAugment
from closetai.training.data.conditions import CONDITIONS, FRAMING, QUALITY, ConditionSet
from closetai.training.data.transforms import Sample
from tests.training_helpers import PERSON, PaintedReader, painted_sample


def assert_aligned(s: Sample, min_agree: float = 0.8) -> None:
    """Every garment mask lies on pixels of its own colour, and every box is its mask's extent."""
    assert s.masks.shape == (len(s.labels), s.height, s.width) and s.rgb.dtype == np.uint8
    np.testing.assert_array_equal(s.boxes, masks_to_boxes(s.masks))
    for m, label in zip(s.masks, s.labels, strict=True):
        assert m.sum() >= T.MIN_PIXELS
        if label == PERSON:
            continue
        channel = 0 if label == 1 else 2
        px = s.rgb[m].astype(int)
        own = (px[:, channel] > px[:, 1] + 60).mean()  # red (top) or blue (trousers) over green
        assert own >= min_agree, (label, own)


GEOMETRY = {
    "hflip": T.hflip,
    "rotate90": lambda s: T.rotate90(s, 1),
    "rotate180": lambda s: T.rotate90(s, 2),
    "rotate270": lambda s: T.rotate90(s, 3),
    "tilt+20": lambda s: T.rotate(s, 20),
    "tilt-17-same-canvas": lambda s: T.rotate(s, -17, expand=False),
    "shrink": lambda s: T.scale(s, 0.55),
    "enlarge": lambda s: T.scale(s, 1.7),
    "crop-top": lambda s: T.crop_fraction(s, 0.0, 0.55),
    "window-past-edges": lambda s: T.window(s, -20, -10, s.width + 40, s.height + 20),
}


@pytest.mark.parametrize("op", list(GEOMETRY), ids=list(GEOMETRY))
def test_geometric_operations_keep_masks_and_boxes_on_their_pixels(op):
    for seed in range(3):
        out = GEOMETRY[op](painted_sample(seed))
        assert len(out.labels) >= 1
        assert_aligned(out)


def test_rotations_compose_back_to_the_original():
    s = painted_sample(1)
    back = T.rotate90(T.rotate90(s, 1), 3)
    np.testing.assert_array_equal(back.rgb, s.rgb)
    np.testing.assert_array_equal(back.masks, s.masks)


def test_a_crop_drops_instances_left_with_under_40_percent():
    s = painted_sample(0)
    top_rows = T.crop_fraction(s, 0.0, 0.5)  # the trousers start at 0.5: none of them is left
    assert 2 not in top_rows.labels and 1 in top_rows.labels
    # a cut through the top: keeps 1/3 of it -> dropped; 2/3 -> kept
    third = T.crop_fraction(s, 0.0, 0.3)
    assert 1 not in third.labels
    two_thirds = T.crop_fraction(s, 0.0, 0.4)
    assert 1 in two_thirds.labels
    # scaling does not count as cutting
    assert list(T.scale(s, 0.5).labels) == list(s.labels)


def test_paste_cuts_what_it_covers_and_brings_the_donors_instances():
    base, donor = painted_sample(0), painted_sample(3)
    sil = donor.mask_of(PERSON)
    for dx in (0, 30, 60):
        out = T.paste(base, donor, sil, dx, 0)
        assert_aligned(out)
        covered = np.zeros((base.height, base.width), bool)
        covered[:, dx:] = sil[:, :base.width - dx]
        # every instance is the donor's (inside what was pasted) or the base's (outside it): base
        # garments lost the covered pixels, donor garments came clipped to the silhouette
        inside = [(m & covered).sum() == m.sum() for m in out.masks]
        outside = [(m & covered).sum() == 0 for m in out.masks]
        assert all(i or o for i, o in zip(inside, outside, strict=True)), dx
        if dx == 0:
            assert sum(inside) == len(donor.labels)  # fully on the canvas: all of the donor's instances
    # exactly on top: the base person keeps under 40 % of itself and is dropped with its garments
    assert (T.paste(base, donor, sil, 0, 0).labels == PERSON).sum() == 1


def test_tile_places_every_sample_with_its_instances():
    parts = [painted_sample(i) for i in range(4)]
    grid = T.tile(parts, 2)
    assert grid.width == 2 * 80 and grid.height == 2 * 120
    assert len(grid.labels) == sum(len(p.labels) for p in parts)
    assert_aligned(grid)


def test_photometric_operations_leave_the_ground_truth_alone():
    s = painted_sample(2)
    rng = np.random.default_rng(0)
    for out in (T.motion_blur(s, 9, 30), T.gaussian_blur(s, 1.5), T.low_light(s, 0.4, 1.4, 4, rng),
                T.jpeg(s, 15), T.gaussian_noise(s, 8, rng), T.colour_jitter(s, 1.1, 0.9, 1.2, 10)):
        assert out.rgb.shape == s.rgb.shape and out.rgb.dtype == np.uint8
        assert out.masks is s.masks and out.labels is s.labels
    assert T.low_light(s, 0.4, 1.4, 4, rng).rgb.mean() < 0.6 * s.rgb.mean()


# ---- the benchmark's conditions ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CONDITIONS))
def test_every_condition_renders_aligned_ground_truth_deterministically(name):
    cs = ConditionSet(PaintedReader(), PERSON)
    for i in range(3):
        a, b = cs.render(name, i), cs.render(name, i)
        np.testing.assert_array_equal(a.rgb, b.rgb)
        np.testing.assert_array_equal(a.masks, b.masks)
        assert_aligned(a, min_agree=0.6 if name in ("motion-blur", "jpeg", "low-light") else 0.8)
    assert set(FRAMING) | set(QUALITY) | {"clean"} == set(CONDITIONS)


def test_composite_conditions_hold_several_people():
    cs = ConditionSet(PaintedReader(), PERSON)
    for name, at_least in (("side-by-side", 2), ("grid", 4), ("group", 3), ("crowd-far", 4)):
        people = [(cs.render(name, i).labels == PERSON).sum() for i in range(4)]
        assert min(people) >= at_least - 1 and max(people) >= at_least, (name, people)
    for name in ("side-by-side", "grid", "group"):
        s = cs.render(name, 1)
        people = {int(g): m for g, m, label in zip(s.group, s.masks, s.labels, strict=True) if label == PERSON}
        assert len(people) == (s.labels == PERSON).sum()  # one person per group number
        for g, m, label in zip(s.group, s.masks, s.labels, strict=True):
            if label != PERSON and int(g) in people:  # each garment is inside its own person's silhouette
                assert (m & people[int(g)]).sum() == m.sum(), name
    small = cs.render("small-person", 0)
    person = small.masks[small.labels == PERSON][0]
    rows = np.flatnonzero(person.any(1))
    assert abs((rows[-1] - rows[0] + 1) / small.height - 1 / 3) < 0.08  # a person at 1/3 of the frame


# ---- the training augmentation ------------------------------------------------------------------------------

def test_strong_augmentation_keeps_ground_truth_aligned_and_varies_the_framing():
    aug = StrongAugment(PaintedReader(), PERSON)
    rng = np.random.default_rng(0)
    shapes, people = set(), []
    for k in range(40):
        s = aug(k % 6, rng)
        assert_aligned(s, min_agree=0.5)  # blur, noise, JPEG and low light blend colours at the edges
        shapes.add((s.height > s.width, s.height == s.width))
        people.append(int((s.labels == PERSON).sum()))
    assert max(people) >= 2  # copy-paste and mosaics put several people in one sample
    assert len(shapes) >= 2  # the plain samples keep the photo's shape, the strong ones the canvas
