"""Read image files into the segmenter convention: 2-D float32 scaled to 0..1.

PNG / JPEG / BMP go through Pillow, TIFF through tifffile (float optical-density TIFFs too).
Integer images are divided by their dtype's maximum (8-bit PNG -> value / 255, as the synthetic
datasets); colour images are converted to luminance; float images already inside [0, 1] are kept,
others are min-max scaled to [0, 1] (with a log line saying so); NaN / inf become 0.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wirewatch.errors import InputError

log = logging.getLogger(__name__)

TIFF_SUFFIXES = {".tif", ".tiff"}
PILLOW_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
IMAGE_SUFFIXES = TIFF_SUFFIXES | PILLOW_SUFFIXES


def read_raw(path: str | Path) -> np.ndarray:
    """Pixel array as stored (2-D grey or 3-D colour); InputError naming the file when unreadable."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"image not found: {p}")
    suffix = p.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(f"unsupported image type {suffix or '(no suffix)'!r} for {p}; "
                         f"supported: {', '.join(sorted(IMAGE_SUFFIXES))}")
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            pixels = np.asarray(tifffile.imread(p))
        else:
            from PIL import Image

            with Image.open(p) as opened:
                opened.load()
                img: Image.Image = opened
                if img.mode in ("P", "PA", "RGBA", "CMYK", "YCbCr", "HSV", "LAB"):
                    img = img.convert("RGB")
                elif img.mode in ("LA", "1"):
                    img = img.convert("L")
                pixels = np.asarray(img)
    except InputError:
        raise
    except Exception as exc:  # Pillow/tifffile raise many types for corrupt files
        raise InputError(f"cannot read image {p}: {type(exc).__name__}: {exc}") from None
    if pixels.size == 0:
        raise InputError(f"cannot read image {p}: no pixel data (corrupt or empty file)")
    return pixels


def to_unit_float(pixels: np.ndarray, source: str = "image") -> np.ndarray:
    """Any grey or colour pixel array -> 2-D float32 in [0, 1] (see the module docstring)."""
    arr = np.asarray(pixels)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = _luminance(arr[..., :3])
    elif arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise InputError(f"{source}: expected a 2-D grey or RGB image, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{source}: image is empty (shape {arr.shape})")
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        out = arr.astype(np.float32)
        if info.min < 0:
            out = (out - info.min) / float(info.max - info.min)
        else:
            out /= float(info.max)
        return out
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{source}: unsupported pixel type {arr.dtype}")
    out = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(out.min()), float(out.max())
    if lo >= 0.0 and hi <= 1.0:
        return out
    log.info("%s: float values span [%g, %g]; min-max scaled to [0, 1]", source, lo, hi)
    if hi <= lo:
        return np.zeros_like(out)
    return (out - lo) / (hi - lo)


def read_image(path: str | Path) -> np.ndarray:
    """Image file -> 2-D float32 in [0, 1], bright wires on dark, ready for ``Segmenter.segment``."""
    return to_unit_float(read_raw(path), source=str(path))


def _luminance(rgb: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114], np.float64)
    if np.issubdtype(rgb.dtype, np.integer):
        info = np.iinfo(rgb.dtype)
        return ((rgb.astype(np.float64) @ weights) / info.max).astype(np.float32)
    return (rgb.astype(np.float64) @ weights).astype(np.float32)
