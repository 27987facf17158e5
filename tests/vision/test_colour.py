"""Dominant colour naming on images whose colours are known."""

from __future__ import annotations

import numpy as np
import pytest

from closetai.vision.colour import PALETTE, dominant_colour, name_colour, palette_hex


def solid(rgb, h=40, w=30):
    return np.full((h, w, 3), rgb, np.uint8)


@pytest.mark.parametrize("rgb, name", [
    ((26, 26, 26), "black"),
    ((250, 250, 248), "white"),
    ((30, 42, 75), "navy"),
    ((195, 35, 45), "red"),
    ((75, 110, 155), "denim"),
    ((215, 198, 165), "beige"),
    ((108, 26, 42), "burgundy"),
    ((46, 139, 79), "green"),
    ((140, 140, 145), "grey"),
])
def test_solid_colours_are_named(rgb, name):
    out = dominant_colour(solid(rgb), np.ones((40, 30), bool))
    assert out["name"] == name
    assert out["share"] == pytest.approx(1.0, abs=0.01)  # k-means may split off a couple of identical points
    assert np.abs(np.array(out["rgb"]) - np.array(rgb)).max() <= 2  # the centre is the colour itself
    assert out["hex"] == "#{:02x}{:02x}{:02x}".format(*out["rgb"])
    assert name_colour(rgb) == name


def test_only_masked_pixels_count():
    img = solid((250, 250, 248))
    img[:, 15:] = (30, 42, 75)
    mask = np.zeros((40, 30), bool)
    mask[:, 20:] = True
    assert dominant_colour(img, mask)["name"] == "navy"
    assert dominant_colour(img, ~mask)["name"] == "white"


def test_majority_cluster_wins_with_its_share():
    img = solid((195, 35, 45), h=100, w=100)
    img[70:] = (30, 42, 75)  # 30 % navy
    out = dominant_colour(img, np.ones((100, 100), bool))
    assert out["name"] == "red"
    assert out["share"] == pytest.approx(0.7, abs=0.02)


def test_noise_does_not_change_the_name():
    rng = np.random.default_rng(1)
    img = np.clip(solid((30, 42, 75), 80, 80).astype(int) + rng.normal(0, 6, (80, 80, 3)), 0, 255).astype(np.uint8)
    assert dominant_colour(img, np.ones((80, 80), bool))["name"] == "navy"


def test_empty_mask_is_unknown():
    out = dominant_colour(solid((10, 10, 10)), np.zeros((40, 30), bool))
    assert out["name"] == "unknown" and out["share"] == 0.0


def test_palette_names_round_trip():
    for name, hex_ in PALETTE.items():
        rgb = tuple(int(hex_[i:i + 2], 16) for i in (1, 3, 5))
        assert name_colour(rgb) == name
        assert palette_hex(name) == hex_
    assert palette_hex("no such colour") == "#808080"


def test_one_pixel_mask_gets_a_colour():
    # A Mask R-CNN mask of a single pixel happened on a real CCP photo and crashed k-means naming.
    import numpy as np

    from closetai.vision.colour import dominant_colour

    img = np.zeros((4, 4, 3), np.uint8)
    img[1, 2] = (200, 30, 40)
    mask = np.zeros((4, 4), bool)
    mask[1, 2] = True
    out = dominant_colour(img, mask)
    assert out["name"] == "red" and out["share"] == 1.0 and out["rgb"] == [200, 30, 40]
