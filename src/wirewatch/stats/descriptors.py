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
    """(N, H) bool: which rows of each mask hold a pixel: the one full pass over the stack (OpenCV row sums).

    Every byte of the stack is read once here, at memory speed: a model's boxes may be loose or
    tight, so they cannot say where a mask ends. Everything after this reads the row bands only.
    """
    n, h, w = masks.shape
    if n * h == 0 or w == 0:
        return np.zeros((n, h), bool)
    rows = masks.reshape(n * h, w).view(np.uint8)
    sums = cv2.reduce(rows, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
    return np.asarray(sums.reshape(n, h) > 0)


def _band_pixels(masks: np.ndarray, keep: np.ndarray, y0: np.ndarray, y1: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixels of every kept mask, found in its row band only, without a per-particle loop.

    The bands (rows ``y0[j]:y1[j]`` of mask ``keep[j]``) are gathered one after another into one
    (R, W) block. Returns ``band_row`` (the block row of each pixel: sorted, so pixels come grouped
    by particle and row-major within each), ``xs`` (frame column of each pixel) and ``row_y``
    (frame row of each block row), as ``index_dtype`` integers.
    """
    n, h, w = masks.shape
    heights = y1 - y0
    band_first = np.zeros(len(keep), np.int64)
    np.cumsum(heights[:-1], out=band_first[1:])
    row_y = np.arange(int(heights.sum()), dtype=np.int64) - np.repeat(band_first - y0, heights)
    stack_rows = row_y + np.repeat(keep * h, heights)
    index_dtype = _index_dtype(h, w)
    if w % 8 == 0:
        # Scan 8 pixels at a time as uint64 words, then look inside the few non-zero words only.
        # Byte b of a word in memory is column 8 * word + b, whatever the byte order.
        words_per_row = w // 8
        block = np.take(masks.view(np.uint64).reshape(n * h, words_per_row), stack_rows, axis=0).ravel()
        hit_words = np.flatnonzero(block != 0).astype(index_dtype)  # bool scan: SIMD, unlike uint64
        word_row, word_col = np.divmod(hit_words, words_per_row)
        word_col *= 8
        hit_bytes = np.flatnonzero(np.take(block, hit_words).view(bool)).astype(index_dtype)  # bytes are 0 or 1
        word = hit_bytes >> 3
        xs = np.take(word_col, word)  # np.take: twice as fast as fancy indexing here
        xs += hit_bytes & 7
        return np.take(word_row, word), xs, row_y.astype(index_dtype)
    bands = np.take(masks.reshape(n * h, w), stack_rows, axis=0)
    band_row, xs = np.divmod(np.flatnonzero(bands).astype(index_dtype), w)
    return band_row, xs, row_y.astype(index_dtype)


def _index_dtype(h: int, w: int) -> type[np.signedinteger]:
    """int32 for pixel coordinates and indices (half the memory traffic) unless the frame needs int64."""
    return np.int32 if h * w < 2**31 and max(h, w) < 2**15 else np.int64


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

    Cost: one pass over the stack for the occupied rows, then only the particles' row bands and
    their pixel lists, all particles at once (numpy), plus one ``minAreaRect`` per particle.
    """
    masks = np.ascontiguousarray(as_mask_stack(masks))
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
    if k == 0:
        return _empty_table((h, w), skipped)
    occupied = rows[keep]
    y0 = occupied.argmax(axis=1)
    y1 = h - occupied[:, ::-1].argmax(axis=1)
    band_row, xs, row_y = _band_pixels(masks, keep, y0, y1)
    ys = np.take(row_y, band_row)
    # A particle's pixels start at its first band row, which holds a pixel: no group is empty.
    band_first = np.zeros(k, np.int64)
    np.cumsum((y1 - y0)[:-1], out=band_first[1:])
    starts = np.searchsorted(band_row, band_first)
    counts = np.diff(starts, append=len(xs))
    x0 = np.minimum.reduceat(xs, starts).astype(np.int64)
    x1 = np.maximum.reduceat(xs, starts).astype(np.int64) + 1
    area = counts.astype(np.float64)

    flat = ys * w  # frame pixel index
    flat += xs
    cover = np.zeros(h * w, np.uint16)  # masks covering each pixel (add.at on uint16 beats bincount here)
    np.add.at(cover, flat, np.uint16(1))

    # Raw sums over every particle's pixels, exact in int64 (coordinates < 2**15: products fit
    # the int32 index type, sums are taken in int64).
    sum_x = np.add.reduceat(xs, starts, dtype=np.int64)
    sum_y = np.add.reduceat(ys, starts, dtype=np.int64)
    product = xs * xs
    sum_xx = np.add.reduceat(product, starts, dtype=np.int64)
    np.multiply(ys, ys, out=product)
    sum_yy = np.add.reduceat(product, starts, dtype=np.int64)
    np.multiply(xs, ys, out=product)
    sum_xy = np.add.reduceat(product, starts, dtype=np.int64)
    overlap = np.add.reduceat(np.take(cover, flat) > 1, starts, dtype=np.int64)  # pixels also inside another mask
    # Shift the sums exactly (integers) to box coordinates x - x0, y - y0, where numbers are small
    # enough for the float moments below to have no cancellation trouble.
    sum_xx = sum_xx - 2 * x0 * sum_x + counts * x0 * x0
    sum_yy = sum_yy - 2 * y0 * sum_y + counts * y0 * y0
    sum_xy = sum_xy - y0 * sum_x - x0 * sum_y + counts * x0 * y0
    sum_x = sum_x - counts * x0
    sum_y = sum_y - counts * y0

    mean_x = sum_x / area  # in box coordinates until the offsets are added below
    mean_y = sum_y / area
    mu20 = sum_xx - area * mean_x * mean_x
    mu02 = sum_yy - area * mean_y * mean_y
    mu11 = sum_xy - area * mean_x * mean_y
    mean_x += x0
    mean_y += y0
    # Image y points down: flip its sign (mu11 -> -mu11) so angles are counter-clockwise on screen.
    orientation = np.degrees(0.5 * np.arctan2(-2.0 * mu11, mu20 - mu02)) % 180.0
    orientation = np.where(orientation >= 180.0, 0.0, orientation)  # rounding guard for -tiny % 180

    length, width = _rotated_rectangle_sides(xs, ys, band_row, starts, x0, y0)

    if image is not None:
        od_integrated = np.add.reduceat(np.take(image.ravel(), flat), starts, dtype=np.float64)
        od_mean = od_integrated / area
    else:
        od_integrated = np.full(k, np.nan)
        od_mean = np.full(k, np.nan)

    scale = pixel_size_nm if pixel_size_nm is not None else math.nan
    columns: dict[str, np.ndarray] = {
        "mask_index": keep.astype(np.int64),
        "area_px": counts.astype(np.int64),
        "area_nm2": area * scale * scale,
        "length_px": length,
        "width_px": width,
        "length_nm": length * scale,
        "width_nm": width * scale,
        "aspect_ratio": length / width,
        "orientation_deg": orientation,
        "centroid_x": mean_x + 0.5,
        "centroid_y": mean_y + 0.5,
        "bbox_x0": x0.astype(np.int64),
        "bbox_y0": y0.astype(np.int64),
        "bbox_x1": x1.astype(np.int64),
        "bbox_y1": y1.astype(np.int64),
        "od_mean": od_mean,
        "od_integrated": od_integrated,
        "overlap_fraction": overlap / area,
        "touches_border": (x0 == 0) | (y0 == 0) | (x1 == w) | (y1 == h),
    }
    return ParticleTable(columns=columns, frame_shape=(h, w), covered_px=int(np.count_nonzero(cover)),
                         empty_masks_skipped=skipped)


def _empty_table(frame_shape: tuple[int, int], skipped: int) -> ParticleTable:
    """The table of a frame without particles: every column empty, with its usual dtype."""
    int_columns = {"mask_index", "area_px", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"}
    columns = {name: np.zeros(0, bool if name == "touches_border" else np.int64 if name in int_columns
                               else np.float64) for name in PARTICLE_COLUMNS}
    return ParticleTable(columns=columns, frame_shape=frame_shape, covered_px=0, empty_masks_skipped=skipped)


def _rotated_rectangle_sides(xs: np.ndarray, ys: np.ndarray, band_row: np.ndarray, starts: np.ndarray,
                             x0: np.ndarray, y0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Long and short side (+1 px) of each particle's minimum-area rectangle around its pixel centres.

    ``xs``, ``ys``: the pixels' frame coordinates, grouped by particle and row-major within each;
    ``band_row`` numbers their rows (distinct across particles); ``starts`` each particle's first
    pixel; ``x0``, ``y0`` its box corner. The rectangle only depends on the convex hull, so OpenCV
    gets the hull candidates among each row's first and last pixel (in box coordinates), not every pixel.
    """
    k = len(starts)
    first_of_row = np.empty(len(xs), bool)
    first_of_row[0] = True
    np.not_equal(band_row[1:], band_row[:-1], out=first_of_row[1:])
    row_first = np.flatnonzero(first_of_row)
    row_last = np.empty_like(row_first)
    row_last[:-1] = row_first[1:] - 1
    row_last[-1] = len(xs) - 1
    owner = np.repeat(np.arange(k), np.diff(np.searchsorted(row_first, starts), append=len(row_first)))
    row_y = np.take(ys, row_first) - np.take(y0, owner)
    left = _hull_candidates(np.take(xs, row_first) - np.take(x0, owner), row_y, owner, side=-1)
    right = _hull_candidates(np.take(xs, row_last) - np.take(x0, owner), row_y, owner, side=1)
    # Each particle's left candidates, then its right ones, in one (M, 2) int32 array.
    left_bounds = np.searchsorted(left[2], np.arange(k + 1))
    right_bounds = np.searchsorted(right[2], np.arange(k + 1))
    bounds = left_bounds + right_bounds
    points = np.empty((int(bounds[-1]), 2), np.int32)
    for (x, y, _owner), own_bounds, other_bounds in ((left, left_bounds, right_bounds),
                                                   (right, right_bounds, left_bounds[1:])):
        at = np.arange(len(x)) + np.repeat(other_bounds[:k], np.diff(own_bounds))
        points[at, 0] = x
        points[at, 1] = y
    edges = bounds.tolist()
    sides = np.array([cv2.minAreaRect(points[lo:hi])[1] for lo, hi in itertools.pairwise(edges)],
                     np.float64).reshape(k, 2)
    return sides.max(axis=1) + 1.0, sides.min(axis=1) + 1.0


# Passes of the local convexity filter: each drops about half of a digital straight edge's points.
HULL_FILTER_PASSES = 2


def _hull_candidates(x: np.ndarray, y: np.ndarray, owner: np.ndarray, side: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop row extremes that cannot be convex-hull vertices, for all particles at once.

    ``x``, ``y``, ``owner``: one side's extreme pixel per occupied row (``side`` -1: first pixels,
    +1: last), rows in order within each particle. A point that is not strictly outside the chord
    between its neighbours on its side lies between that chord and the row's other extreme, so it
    is not a hull vertex and dropping it leaves the hull (hence the rectangle) unchanged. Each
    particle's top and bottom rows are always kept. Exact integer arithmetic.
    """
    x = x.astype(np.int64)
    y = y.astype(np.int64)
    for _ in range(HULL_FILTER_PASSES):
        if len(x) < 3:
            break
        same_particle = (owner[1:-1] == owner[:-2]) & (owner[1:-1] == owner[2:])
        # x of the chord at the middle row, compared without division: (xb - xa)(yc - ya) vs (xc - xa)(yb - ya).
        middle = (x[1:-1] - x[:-2]) * (y[2:] - y[:-2])
        chord = (x[2:] - x[:-2]) * (y[1:-1] - y[:-2])
        outside = middle < chord if side < 0 else middle > chord
        keep = np.ones(len(x), bool)
        keep[1:-1] = outside | ~same_particle
        if keep.all():
            break
        x, y, owner = x[keep], y[keep], owner[keep]
    return x, y, owner
