"""Reading user images safely: content-checked, EXIF-rotated, any mode -> RGB uint8."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from closetai import ClosetAIError

try:  # HEIC/HEIF from phones, when the maintained plugin is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # optional
    pass

DEFAULT_MAX_PIXELS = 40_000_000
ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "HEIF", "MPO", "BMP", "TIFF"}


# The fewest bytes a complete file of each format needs per megapixel, with a wide margin. A file
# smaller than that for the size its header declares is truncated or crafted, and some decoders (libjpeg)
# fill what is missing with grey instead of failing: a 1.5 kB JPEG declaring 6000x6000 would decode to
# 36 megapixels. JPEG: Huffman coding spends at least 2 bits per 8x8 block and component (~3.9 kB/MP for
# grey); arithmetic-coded JPEG, which cameras do not write, can go below this and is refused. PNG:
# deflate stops at ~1032:1, ~970 B/MP for one byte per pixel. WebP lossless and HEIF compress a flat
# image to ~40-300 B/MP; no photo comes close.
MIN_BYTES_PER_MEGAPIXEL = {"JPEG": 1500, "MPO": 1500, "PNG": 500}
DEFAULT_MIN_BYTES_PER_MEGAPIXEL = 20
SIZE_CHECK_ABOVE_PIXELS = 1_000_000
# Long side over short side. A 1x1600 strip is no photo and the model's resize turns its short side into
# 0 pixels; panoramas stay under ~1:8 and a phone's tallest screenshot ~1:5. Photos and video frames.
MAX_ASPECT = 32  # smaller images are cheap to decode whatever their file holds


class BadImage(ClosetAIError):
    status = 400


class ImageTooLarge(ClosetAIError):
    status = 413


def _open(source: str | os.PathLike | bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    try:
        fp = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    except OSError as exc:
        raise BadImage(f"cannot read image file: {name} ({exc.strerror})") from exc
    try:
        return Image.open(fp)
    except Image.DecompressionBombError as exc:  # Pillow's own header check (> 2x its limit) fires first
        fp.close()
        raise ImageTooLarge(f"image too large: over {2 * Image.MAX_IMAGE_PIXELS:,} pixels "
                            f"(limit {max_pixels:,}; decompression bomb guard): {name}") from exc
    except ValueError as exc:
        fp.close()
        if "decompressed data too large" in str(exc).lower():  # a PNG text/ICC chunk that inflates past Pillow's cap
            raise ImageTooLarge(f"image metadata too large: a compressed chunk inflates past the limit "
                                f"(decompression bomb guard): {name}") from exc
        raise BadImage(f"not an image (unrecognised content): {name}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        fp.close()
        raise BadImage(f"not an image (unrecognised content): {name}") from exc


def load_rgb(source: str | os.PathLike | bytes, name: str | None = None,
             max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, dict]:
    """Decode an image -> (RGB uint8 HxWx3 array, info {"format", "exif_datetime"}).

    Applies EXIF orientation; converts 16-bit, CMYK, palette, RGBA (on white) and grey to RGB.
    The pixel limit is checked from the header before any pixels are decoded (decompression bombs).
    """
    name = name or (Path(source).name if not isinstance(source, bytes) else "upload")
    if isinstance(source, bytes) and not source:
        raise BadImage(f"empty file: {name}")
    img = _open(source, name, max_pixels)
    fmt = img.format  # exif_transpose returns a new image whose .format is None
    try:
        if img.format not in ALLOWED_FORMATS:
            raise BadImage(f"unsupported image format {img.format}: {name}")
        w, h = img.size
        if w * h > max_pixels:
            raise ImageTooLarge(f"image too large: {w}x{h} pixels (limit {max_pixels:,}): {name}")
        if w < 1 or h < 1:
            raise BadImage(f"image has no pixels: {name}")
        if aspect_too_far(w, h):
            raise BadImage(f"image too thin: {w}x{h} pixels, its long side more than {MAX_ASPECT} times its "
                           f"short side; send the photo as taken: {name}")
        _check_file_holds(img, w, h, _file_size(source), name)
        exif_dt = None
        try:
            exif = img.getexif()
            exif_dt = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)
        except Exception:  # broken EXIF must not reject an otherwise fine photo
            exif_dt = None
        img.load()
        img = ImageOps.exif_transpose(img)
        rgb = _to_rgb(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, Image.DecompressionBombError):
            raise ImageTooLarge(f"image too large: {name}") from exc
        raise BadImage(f"truncated or corrupt image: {name}") from exc
    finally:
        img.close()
    return rgb, {"format": fmt, "exif_datetime": exif_dt}


def aspect_too_far(w: int, h: int) -> bool:
    return max(w, h) > MAX_ASPECT * max(1, min(w, h))


def _file_size(source: str | os.PathLike | bytes) -> int:
    return len(source) if isinstance(source, bytes) else os.path.getsize(source)


def _check_file_holds(img: Image.Image, w: int, h: int, size: int, name: str) -> None:
    """Refuse, before decoding, a file too small to hold the pixels its header declares."""
    if w * h <= SIZE_CHECK_ABOVE_PIXELS:
        return
    need = int(w * h / 1e6 * MIN_BYTES_PER_MEGAPIXEL.get(img.format, DEFAULT_MIN_BYTES_PER_MEGAPIXEL))
    if size < need:
        raise BadImage(f"truncated or corrupt image: its header declares {w}x{h} pixels but the file has only "
                       f"{size:,} bytes (a complete one needs at least {need:,}): {name}")


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        grey = np.clip(arr / peak * 255.0, 0, 255).astype(np.uint8)
        return np.stack([grey] * 3, axis=-1)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def save_jpeg(rgb: np.ndarray, path: str | os.PathLike, quality: int = 90) -> None:
    Image.fromarray(rgb).save(path, format="JPEG", quality=quality)
