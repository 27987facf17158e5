"""Dominant colour of a garment: k-means over the mask's pixels in CIE Lab, named from a small palette.

OpenCV does the colour maths (sRGB -> Lab, k-means); the palette is ours because garment colours need
fashion names ("navy", "beige", "burgundy"), not CSS's 140.
"""

from __future__ import annotations

import cv2
import numpy as np

PALETTE: dict[str, str] = {
    "black": "#1a1a1a", "charcoal": "#3c3f44", "grey": "#8a8d91", "light grey": "#c8c9cb", "white": "#f4f4f2",
    "beige": "#d8c7a6", "cream": "#efe6cf", "brown": "#6b4a2f", "tan": "#b08a5e", "camel": "#c19a6b",
    "red": "#c0262d", "burgundy": "#6d1a2a", "pink": "#e8a3b8", "hot pink": "#e0407a", "orange": "#e8772e",
    "mustard": "#c9a227", "yellow": "#f2d64b", "olive": "#6b6b2e", "khaki": "#a59c6a", "green": "#2e8b4f",
    "dark green": "#1f4a32", "teal": "#1f7a7a", "light blue": "#9cc3e4", "denim": "#4a6f9c", "blue": "#2a5cb8",
    "navy": "#1d2a4a", "purple": "#6a3d8f", "lavender": "#b9a6d6",
}
_NAMES = list(PALETTE)


def _hex_to_rgb(h: str) -> tuple[int, int, int]:
    return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)


def _to_lab(rgb_pixels: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 sRGB -> (N, 3) float32 Lab (L 0-100, a/b about -127..127)."""
    px = (rgb_pixels.reshape(-1, 1, 3).astype(np.float32) / 255.0)
    return cv2.cvtColor(px, cv2.COLOR_RGB2Lab).reshape(-1, 3)


_PALETTE_LAB = _to_lab(np.array([_hex_to_rgb(h) for h in PALETTE.values()], dtype=np.uint8))


def name_colour(rgb: tuple[int, int, int] | np.ndarray) -> str:
    """Nearest palette name for one sRGB colour (Euclidean distance in Lab, i.e. CIE76)."""
    lab = _to_lab(np.asarray(rgb, dtype=np.uint8).reshape(1, 3))[0]
    return _NAMES[int(np.argmin(((_PALETTE_LAB - lab) ** 2).sum(axis=1)))]


def dominant_colour(image: np.ndarray, mask: np.ndarray, k: int = 3, max_pixels: int = 4000,
                    seed: int = 0) -> dict:
    """Dominant colour of image[mask] -> {"name", "hex", "rgb": [r, g, b], "share"}.

    Pixels are subsampled (max_pixels) so cost stays flat for large garments; the largest k-means
    cluster in Lab wins, and its centre is named.
    """
    pixels = image[mask.astype(bool)]
    if len(pixels) == 0:
        return {"name": "unknown", "hex": "#808080", "rgb": [128, 128, 128], "share": 0.0}
    if len(pixels) > max_pixels:
        pixels = pixels[np.random.default_rng(seed).choice(len(pixels), max_pixels, replace=False)]
    lab = _to_lab(pixels)
    k = min(k, len(lab))
    if len(lab) == 1:
        # cv2.kmeans returns a 1x1 centre for a single sample; a 1-pixel mask crashed bulk ingest on CCP.
        labels, centres = np.zeros((1, 1), np.int32), lab.copy()
    else:
        cv2.setRNGSeed(seed)
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
        _, labels, centres = cv2.kmeans(lab, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    counts = np.bincount(labels.reshape(-1), minlength=k)
    best = int(np.argmax(counts))
    centre_rgb = np.clip(cv2.cvtColor(centres[best].reshape(1, 1, 3).astype(np.float32), cv2.COLOR_Lab2RGB)
                         .reshape(3) * 255, 0, 255).round().astype(np.uint8)
    name = _NAMES[int(np.argmin(((_PALETTE_LAB - centres[best]) ** 2).sum(axis=1)))]
    return {"name": name, "hex": "#{:02x}{:02x}{:02x}".format(*centre_rgb), "rgb": centre_rgb.tolist(),
            "share": round(float(counts[best] / counts.sum()), 3)}


def palette_hex(name: str) -> str:
    return PALETTE.get(name, "#808080")
