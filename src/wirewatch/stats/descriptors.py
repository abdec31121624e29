"""Per-particle descriptors from instance masks, vectorised across particles.

Coordinates: pixel (row r, column c) covers [c, c+1) x [r, r+1); ``bbox_x1``/``bbox_y1`` are
exclusive edges (as COCO boxes and ``Detections.boxes``) and centroids are in the same frame,
so a single pixel at (0, 0) has its centroid at (0.5, 0.5).

Orientation convention (``orientation_deg``): degrees in [0, 180), counter-clockwise from the
image's +x axis *as seen on screen*, i.e. with image y pointing down. A wire drawn from the
bottom-left to the top-right of the screen is 45 deg; one from top-left to bottom-right is 135.
It is the principal axis of the mask's second moments (for a rectangle: its long side), which is
steadier on rasterised masks than the rotated rectangle's edge direction.

Length and width are the long and short sides of the minimum-area rotated rectangle around the
mask's pixel centres (OpenCV ``minAreaRect``) plus one pixel, so an axis-aligned L x W block of
pixels measures exactly L x W. The aspect ratio is length / width (the paper's long/short side).
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from wirewatch.errors import InputError

log = logging.getLogger(__name__)

# Column order of the per-particle table (docs/CONTRACTS.md "Statistic names"), plus ``mask_index``:
# the row's index in the input masks (empty masks are skipped, so rows and masks can differ).
PARTICLE_COLUMNS: tuple[str, ...] = (
    "mask_index", "area_px", "area_nm2", "length_px", "width_px", "length_nm", "width_nm",
    "aspect_ratio", "orientation_deg", "centroid_x", "centroid_y", "bbox_x0", "bbox_y0", "bbox_x1",
    "bbox_y1", "od_mean", "od_integrated", "overlap_fraction", "touches_border",
)

# Pixel sizes outside this range are almost surely in the wrong unit (metres, micrometres, Angstrom).
PIXEL_SIZE_RANGE_NM = (0.01, 100_000.0)


def check_pixel_size(pixel_size_nm: float | None) -> float | None:
    """Validate a pixel size given in nanometres per pixel; None means unknown."""
    if pixel_size_nm is None:
        return None
    try:
        value = float(pixel_size_nm)
    except (TypeError, ValueError):
        raise InputError(f"pixel size must be a number of nanometres per pixel, got {pixel_size_nm!r}") from None
    lo, hi = PIXEL_SIZE_RANGE_NM
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"pixel size must be a positive, finite number of nanometres per pixel, got {value!r}")
    if not lo <= value <= hi:
        raise InputError(f"pixel size {value:g} nm per pixel is outside the plausible range [{lo:g}, {hi:g}] nm: "
                         "is it in another unit? give it in nanometres (e.g. 10 for 10 nm per pixel)")
    return value


def as_mask_stack(masks: np.ndarray) -> np.ndarray:
    """Check and return an (N, H, W) bool mask stack (0/1 integer stacks are accepted)."""
    arr = np.asarray(masks)
    if arr.ndim != 3:
        raise InputError(f"masks must be an (N, H, W) array of instance masks, got shape {arr.shape}")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"masks must be bool (or 0/1 integers), got dtype {arr.dtype}")
        arr = arr != 0
    return arr


# The daemon measures many frames a second: say it at most every WARN_INTERVAL_S, with the totals.
WARN_INTERVAL_S = 10.0
_empty_warning = {"last": -math.inf, "pending": 0}


def _warn_empty(skipped: int, total: int) -> None:
    import time

    _empty_warning["pending"] += skipped
    now = time.monotonic()
    if now - _empty_warning["last"] >= WARN_INTERVAL_S:
        log.warning("skipped %d empty (zero-pixel) mask(s) of %d in this frame (%d since the last warning)",
                    skipped, total, _empty_warning["pending"])
        _empty_warning["last"] = now
        _empty_warning["pending"] = 0
    else:
        log.debug("skipped %d empty (zero-pixel) mask(s) of %d", skipped, total)


def _row_occupancy(masks: np.ndarray) -> np.ndarray:
    """(N, H) bool: which rows of each mask hold a pixel. One pass over the stack (OpenCV's SIMD row sums)."""
    n, h, w = masks.shape
    if n * h == 0 or w == 0:
        return np.zeros((n, h), bool)
    rows = np.ascontiguousarray(masks).reshape(n * h, w).view(np.uint8)
    sums = cv2.reduce(rows, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
    return np.asarray(sums.reshape(n, h) > 0)


@dataclass(frozen=True)
class ParticleTable:
    """Descriptor columns (``PARTICLE_COLUMNS``, one entry per non-empty mask) and frame facts."""

    columns: dict[str, np.ndarray]
    frame_shape: tuple[int, int]
    covered_px: int  # pixels inside at least one mask
    empty_masks_skipped: int

    def __len__(self) -> int:
        return len(self.columns["area_px"])


def particle_descriptors(masks: np.ndarray, image: np.ndarray | None = None,
                         pixel_size_nm: float | None = None) -> ParticleTable:
    """Descriptor columns (``PARTICLE_COLUMNS``) for every non-empty mask; empty masks are skipped.

    ``masks`` (N, H, W) bool; ``image`` (H, W) optional, any real dtype (optical density or grey
    levels: ``od_mean`` / ``od_integrated`` are the mean / sum of its values under the mask, NaN
    without an image); ``pixel_size_nm`` adds the ``*_nm`` columns (NaN without it).
    """
    masks = as_mask_stack(masks)
    pixel_size_nm = check_pixel_size(pixel_size_nm)
    n, h, w = masks.shape
    if image is not None:
        image = np.asarray(image)
        if image.shape != (h, w):
            raise InputError(f"image shape {image.shape} does not match the masks' frame shape {(h, w)}")

    rows = _row_occupancy(masks)
    nonempty = rows.any(axis=1)
    skipped = int(n - nonempty.sum())
    if skipped:
        _warn_empty(skipped, n)
    keep = np.flatnonzero(nonempty)
    k = len(keep)
    y0 = rows[keep].argmax(axis=1)
    y1 = h - rows[keep, ::-1].argmax(axis=1)

    x0_list: list[int] = []
    x1_list: list[int] = []
    ys_crop: list[np.ndarray] = []
    xs_crop: list[np.ndarray] = []
    # One short loop over each particle's row band / box crop (C calls inside), never the full frame.
    for i, top, bottom in zip(keep.tolist(), y0.tolist(), y1.tolist(), strict=True):
        band = masks[i, top:bottom]
        cols = np.flatnonzero(band.any(axis=0))
        left, right = int(cols[0]), int(cols[-1]) + 1
        ys, xs = np.nonzero(band[:, left:right])
        x0_list.append(left)
        x1_list.append(right)
        ys_crop.append(ys)
        xs_crop.append(xs)
    x0 = np.array(x0_list, np.int64)
    x1 = np.array(x1_list, np.int64)

    counts = np.fromiter((len(a) for a in xs_crop), np.int64, count=k)
    owner = np.repeat(np.arange(k), counts)
    # Pixel lists of all particles in their crops' coordinates, grouped by particle, row-major.
    ys = np.concatenate(ys_crop) if k else np.zeros(0, np.int64)
    xs = np.concatenate(xs_crop) if k else np.zeros(0, np.int64)
    area = counts.astype(np.float64)
    length, width = _rotated_rectangle_sides(xs, ys, owner, counts, h)  # translation invariant

    starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if k else np.zeros(0, np.int64)

    def per_particle_sum(values: np.ndarray) -> np.ndarray:
        # Pixels are grouped by particle and no group is empty, so reduceat sums each group
        # (an order of magnitude faster than a weighted bincount).
        if k == 0:
            return np.zeros(0)
        return np.add.reduceat(values, starts).astype(np.float64)

    # Integer sums are exact and skip a float conversion of every pixel (crop coordinates < 2**16).
    xf = xs.astype(np.int64, copy=False)
    yf = ys.astype(np.int64, copy=False)
    mean_x = per_particle_sum(xf) / area  # in crop coordinates until the offsets are added below
    mean_y = per_particle_sum(yf) / area
    # Central second moments from raw ones (crop coordinates < 2**16: no cancellation trouble in float64).
    mu20 = per_particle_sum(xf * xf) - area * mean_x * mean_x
    mu02 = per_particle_sum(yf * yf) - area * mean_y * mean_y
    mu11 = per_particle_sum(xf * yf) - area * mean_x * mean_y
    mean_x += x0
    mean_y += y0
    # Image y points down: flip its sign (mu11 -> -mu11) so angles are counter-clockwise on screen.
    orientation = np.degrees(0.5 * np.arctan2(-2.0 * mu11, mu20 - mu02)) % 180.0
    orientation = np.where(orientation >= 180.0, 0.0, orientation)  # rounding guard for -tiny % 180

    flat = ys * w + xs + np.repeat(y0 * w + x0, counts)  # frame pixel index
    cover = np.zeros(h * w, np.uint16)  # masks covering each pixel (add.at on uint16 beats bincount here)
    np.add.at(cover, flat, np.uint16(1))
    overlap_px = per_particle_sum((cover[flat] > 1).astype(np.float64))

    if image is not None:
        od_integrated = per_particle_sum(image.ravel()[flat].astype(np.float64))
        od_mean = od_integrated / area
    else:
        od_integrated = np.full(k, np.nan)
        od_mean = np.full(k, np.nan)

    scale = pixel_size_nm if pixel_size_nm is not None else math.nan
    columns: dict[str, np.ndarray] = {
        "mask_index": keep.astype(np.int64),
        "area_px": counts,
        "area_nm2": area * scale * scale,
        "length_px": length,
        "width_px": width,
        "length_nm": length * scale,
        "width_nm": width * scale,
        "aspect_ratio": length / width,
        "orientation_deg": orientation,
        "centroid_x": mean_x + 0.5,
        "centroid_y": mean_y + 0.5,
        "bbox_x0": x0,
        "bbox_y0": y0.astype(np.int64),
        "bbox_x1": x1,
        "bbox_y1": y1.astype(np.int64),
        "od_mean": od_mean,
        "od_integrated": od_integrated,
        "overlap_fraction": overlap_px / area if k else np.zeros(0),
        "touches_border": (x0 == 0) | (y0 == 0) | (x1 == w) | (y1 == h),
    }
    return ParticleTable(columns=columns, frame_shape=(h, w), covered_px=int(np.count_nonzero(cover)),
                         empty_masks_skipped=skipped)



def _rotated_rectangle_sides(xs: np.ndarray, ys: np.ndarray, owner: np.ndarray, counts: np.ndarray,
                             frame_height: int) -> tuple[np.ndarray, np.ndarray]:
    """Long and short side (+1 px) of each particle's minimum-area rectangle around its pixel centres.

    The convex hull (hence the rectangle) only depends on the first and last pixel of every row,
    so OpenCV gets those (found vectorised from the row-major pixel lists), not every pixel.
    """
    k = len(counts)
    length = np.empty(k)
    width = np.empty(k)
    if k == 0:
        return length, width
    row_key = owner * frame_height + ys
    change = np.flatnonzero(np.diff(row_key)) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [len(xs)])) - 1
    ends_owner = owner[starts]
    pts = np.empty((2 * len(starts), 2), np.float32)
    pts[0::2, 0] = xs[starts]
    pts[0::2, 1] = ys[starts]
    pts[1::2, 0] = xs[ends]
    pts[1::2, 1] = ys[ends]
    bounds = (np.searchsorted(ends_owner, np.arange(k + 1)) * 2).tolist()
    sides = np.array([cv2.minAreaRect(pts[lo:hi])[1] for lo, hi in itertools.pairwise(bounds)],
                     np.float64).reshape(k, 2)
    length[:] = sides.max(axis=1) + 1.0
    width[:] = sides.min(axis=1) + 1.0
    return length, width
