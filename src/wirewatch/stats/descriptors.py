"""Per-particle descriptors from instance masks, vectorised across particles.

Coordinates: pixel (row r, column c) covers [c, c+1) x [r, r+1); ``bbox_x1``/``bbox_y1`` are
exclusive edges (as COCO boxes and ``Detections.boxes``) and centroids are in the same frame,
so a single pixel at (0, 0) has its centroid at (0.5, 0.5).

Orientation convention (``orientation_deg``): degrees in [0, 180), counter-clockwise from the
image's +x axis *as seen on screen*, i.e. with image y pointing down. A wire drawn from the
bottom-left to the top-right of the screen is 45 deg; one from top-left to bottom-right is 135.
It is the principal axis of the mask's second moments (for a rectangle: its long side), which is
steadier on rasterised masks than the rotated rectangle's edge direction.

Length is the long side of the minimum-area rotated rectangle around the mask's pixel centres
(OpenCV ``minAreaRect``) plus what pixel-centre sampling hides beyond the outermost centres
(``sampling_allowance``): a whole pixel for an axis-aligned side, so an axis-aligned L x W block of
pixels measures exactly L x W, but less for a rotated one, whose centres come closer to the true
edge (0.71 px at 45 degrees, near 0 across a long edge at a generic angle). The former constant
"+1 pixel" read rotated rectangles up to 1 px too long and too wide.

Width is the area over that length: the mean thickness of a body as long as the mask. On a straight
rod it is the rectangle's short side (a rasterised rectangle's pixel count is unbiased for its
area), but a mask that is not one straight rod - a stub of a crossing wire leaked into it, two
crossing wires merged, a curved wire - widens the rectangle to the whole shape's spread, while
the area grows only by the extra pixels (issue 37: on the ptychography preset the rectangle's
short side read the model's masks 2.1 px wide of the truth, area / length 0.1 px; docs/stats.md).
The aspect ratio is length / width (the paper's long/short side, on straight rods).
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from wirewatch.errors import InputError
from wirewatch.types import PARTICLE_COLUMNS  # the per-particle table's columns (shared with publish)

log = logging.getLogger(__name__)

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


# The stack is scanned as little-endian uint64 words of 8 mask bytes ("lanes", each 0 or 1): lane
# i of a word is memory byte i, i.e. column 8 * word + i. For such a word v, the top byte of
# v * C is sum(lane_i * c_(7-i)) over the lanes, exactly: with the constants below no byte of the
# product exceeds 255 (at most 8, 28 and 140), so no carry disturbs it.
WORD = np.dtype("<u8")
LANE_COUNT = np.uint64(0x0101010101010101)  # -> number of set lanes
LANE_INDEX_SUM = np.uint64(0x0001020304050607)  # -> sum of the set lanes' indices i
LANE_SQUARE_SUM = np.uint64(0x0001040910192431)  # -> sum of i * i over the set lanes
TOP_BYTE = np.uint64(56)
# np.add.at of words adds per lane without carries while at most 255 masks cover one pixel.
MAX_MASKS_PER_COVER_PASS = 255


def _lane_sum(words: np.ndarray, constant: np.uint64) -> np.ndarray:
    """sum over the set lanes of each word, weighted as ``constant`` says (see above); int64."""
    return ((words * constant) >> TOP_BYTE).astype(np.int64)


def _row_occupancy(masks: np.ndarray) -> np.ndarray:
    """(N, H) bool: which rows of each mask hold a pixel: the one full pass over the stack (OpenCV row sums).

    Every byte of the stack is read once here, at memory speed: a model's boxes may be loose or
    tight, so they cannot say where a mask ends. Everything after this reads the row bands only.
    """
    n, h, w = masks.shape
    if n * h == 0 or w == 0:
        return np.zeros((n, h), bool)
    rows = masks.reshape(n * h, w).view(np.uint8)
    # OpenCV >= 4.14 (the pyproject floor): 0.9 ms for 100 masks at 512 px; 4.11-4.13 took 46 ms for this
    # call, where numpy's bool any(axis=1) takes 1.3-1.6 ms.
    sums = cv2.reduce(rows, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S)
    return np.asarray(sums.reshape(n, h) > 0)


@dataclass(frozen=True)
class _BandWords:
    """The non-zero words of every kept mask's row band, grouped by particle, row-major within each.

    ``values`` the words; ``frame_y``, ``frame_x`` the frame row and the column of lane 0;
    ``frame_word`` the index in a frame of ``words_per_row`` words a row; ``band_row`` numbers
    the rows (distinct across particles); ``starts`` each particle's first word.
    """

    values: np.ndarray
    frame_y: np.ndarray
    frame_x: np.ndarray
    frame_word: np.ndarray
    band_row: np.ndarray
    starts: np.ndarray
    words_per_row: int


def _band_words(masks: np.ndarray, keep: np.ndarray, y0: np.ndarray, y1: np.ndarray) -> _BandWords:
    """Gather the bands (rows ``y0[j]:y1[j]`` of mask ``keep[j]``) and keep their non-zero words."""
    n, h, w = masks.shape
    words_per_row = -(-w // 8)
    heights = y1 - y0
    band_first = np.zeros(len(keep), np.int64)
    np.cumsum(heights[:-1], out=band_first[1:])
    row_y = np.arange(int(heights.sum()), dtype=np.int64) - np.repeat(band_first - y0, heights)
    stack_rows = row_y + np.repeat(keep * h, heights)
    if w % 8 == 0:
        block = np.take(masks.reshape(n * h, w).view(WORD), stack_rows, axis=0).ravel()
    else:  # pad rows to whole words
        padded = np.zeros((len(stack_rows), 8 * words_per_row), np.uint8)
        padded[:, :w] = np.take(masks.reshape(n * h, w), stack_rows, axis=0)
        block = padded.view(WORD).ravel()
    hit = np.flatnonzero(block != 0)  # a bool scan (SIMD), much faster than nonzero on uint64
    band_row, column = np.divmod(hit, words_per_row)
    frame_y = np.take(row_y, band_row)
    # A particle's first band row holds a pixel, so each particle owns at least one word.
    starts = np.searchsorted(band_row, band_first)
    return _BandWords(values=np.take(block, hit), frame_y=frame_y, frame_x=column * 8,
                      frame_word=frame_y * words_per_row + column, band_row=band_row, starts=starts,
                      words_per_row=words_per_row)


def _cover_lanes(band: _BandWords, frame_words: int) -> np.ndarray:
    """Masks covering each pixel of the word-padded frame: adds whole words, 8 pixels at a time.

    One pass when at most 255 particles (no lane can carry); else one pass per 255 particles.
    """
    bounds = [*band.starts[::MAX_MASKS_PER_COVER_PASS].tolist(), len(band.values)]
    passes = []
    for lo, hi in itertools.pairwise(bounds):
        cover = np.zeros(frame_words, WORD)
        np.add.at(cover, band.frame_word[lo:hi], band.values[lo:hi])
        passes.append(cover.view(np.uint8))
    return passes[0] if len(passes) == 1 else np.stack(passes).sum(axis=0, dtype=np.int64)


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

    Cost: one pass over the stack for the occupied rows; then only the particles' row bands,
    8 pixels (one uint64 word) at a time, all particles at once; one ``minAreaRect`` per particle.
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
    band = _band_words(masks, keep, y0, y1)
    words, starts = band.values, band.starts

    # Sums over each particle's pixels, from each word's lane count and lane index sums: pixel
    # x = frame_x + i, y = frame_y. All integers (int64): exact.
    count = _lane_sum(words, LANE_COUNT)
    index_sum = _lane_sum(words, LANE_INDEX_SUM)
    x, y = band.frame_x, band.frame_y
    sum_x_word = count * x + index_sum
    per_word = np.empty((6, len(words)), np.int64)
    per_word[0] = count
    per_word[1] = sum_x_word
    np.multiply(count, y, out=per_word[2])  # sum y
    per_word[3] = count * x * x + 2 * x * index_sum + _lane_sum(words, LANE_SQUARE_SUM)  # sum x^2
    np.multiply(per_word[2], y, out=per_word[4])  # sum y^2
    np.multiply(sum_x_word, y, out=per_word[5])  # sum x y
    counts, sum_x, sum_y, sum_xx, sum_yy, sum_xy = np.add.reduceat(per_word, starts, axis=1)

    left_x, right_x, row_y, row_owner, row_starts = _row_extremes(band, k)
    x0 = np.minimum.reduceat(left_x, row_starts)
    x1 = np.maximum.reduceat(right_x, row_starts) + 1
    area = counts.astype(np.float64)

    cover = _cover_lanes(band, h * band.words_per_row)
    # Lanes whose pixel another mask covers too: compare 8 cover counts, read the result as a word.
    shared = (np.take(cover.reshape(-1, 8), band.frame_word, axis=0) > 1).view(WORD).ravel()
    overlap = np.add.reduceat(_lane_sum(shared & words, LANE_COUNT), starts)

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

    row_x0 = np.take(x0, row_owner)
    long_span, short_span = _rotated_rectangle_sides(left_x - row_x0, right_x - row_x0,
                                                     row_y - np.take(y0, row_owner), row_owner, row_starts)
    add_long, _ = sampling_allowance(orientation, long_span, short_span)
    length = long_span + add_long
    # Mean thickness (module docstring): the rectangle's short side on a straight rod, but not widened to
    # a whole X or L by a crossing wire's piece in the mask. length > 0: every side gets an allowance.
    width = area / length

    if image is not None:
        od_integrated = _image_sums(image, band)
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


def _image_sums(image: np.ndarray, band: _BandWords) -> np.ndarray:
    """Sum of the image under each particle, in float64: the 8 values behind each word, masked by its lanes."""
    h, w = image.shape
    width = 8 * band.words_per_row
    if w == width:
        values = np.ascontiguousarray(image).reshape(-1, 8)
    else:
        padded = np.zeros((h, width), image.dtype)
        padded[:, :w] = image
        values = padded.reshape(-1, 8)
    lanes = band.values.view(np.uint8).reshape(-1, 8).view(bool)
    # where, not multiply: NaN or inf outside the mask must not leak in.
    under = np.where(lanes, np.take(values, band.frame_word, axis=0), 0)
    return np.add.reduceat(under.ravel(), band.starts * 8, dtype=np.float64)


def _row_extremes(band: _BandWords, k: int) -> tuple[np.ndarray, ...]:
    """First and last pixel column of every occupied row, its frame row, owner and each particle's first row."""
    new_row = np.empty(len(band.values), bool)
    new_row[0] = True
    np.not_equal(band.band_row[1:], band.band_row[:-1], out=new_row[1:])
    first = np.flatnonzero(new_row)
    last = np.empty_like(first)
    last[:-1] = first[1:] - 1
    last[-1] = len(band.values) - 1
    left_x = np.take(band.frame_x, first) + _lowest_lane(np.take(band.values, first))
    right_x = np.take(band.frame_x, last) + _highest_lane(np.take(band.values, last))
    row_starts = np.searchsorted(first, band.starts)
    row_owner = np.repeat(np.arange(k), np.diff(row_starts, append=len(first)))
    return left_x, right_x, np.take(band.frame_y, first), row_owner, row_starts


def _lowest_lane(words: np.ndarray) -> np.ndarray:
    """Index of the first set lane of each (non-zero) word: its lowest set bit, located by frexp."""
    lowest_bit = words & (~words + np.uint64(1))  # a power of two: exact in float64
    return (np.frexp(lowest_bit.astype(np.float64))[1] - 1) >> 3


def _highest_lane(words: np.ndarray) -> np.ndarray:
    """Index of the last set lane of each (non-zero) word. Lanes are 0/1 bytes, so the word is
    below 1.01 x its top bit and the float64 rounding cannot reach the next power of two."""
    return (np.frexp(words.astype(np.float64))[1] - 1) >> 3


def _empty_table(frame_shape: tuple[int, int], skipped: int) -> ParticleTable:
    """The table of a frame without particles: every column empty, with its usual dtype."""
    int_columns = {"mask_index", "area_px", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"}
    columns = {name: np.zeros(0, bool if name == "touches_border" else np.int64 if name in int_columns
                               else np.float64) for name in PARTICLE_COLUMNS}
    return ParticleTable(columns=columns, frame_shape=frame_shape, covered_px=0, empty_masks_skipped=skipped)


def _rotated_rectangle_sides(left_x: np.ndarray, right_x: np.ndarray, row_y: np.ndarray, row_owner: np.ndarray,
                             row_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Long and short side of each particle's minimum-area rectangle around its pixel centres.

    Inputs: first and last pixel of every occupied row in box coordinates, rows in order within
    each particle, ``row_owner`` the particle of each row and ``row_starts`` each particle's first
    row. The rectangle only depends on the convex hull, so OpenCV gets the hull candidates among
    those points, not every pixel.
    """
    k = len(row_starts)
    rows = len(row_y)
    # One array of chains: each particle's first pixels (rows going down), then its last pixels.
    at_left = np.arange(rows) + np.take(row_starts, row_owner)
    at_right = at_left + np.take(np.diff(row_starts, append=rows), row_owner)
    x = np.empty(2 * rows, np.int64)
    y = np.empty(2 * rows, np.int64)
    chain = np.empty(2 * rows, np.int64)
    x[at_left], x[at_right] = left_x, right_x
    y[at_left] = y[at_right] = row_y
    chain[at_left] = 2 * row_owner
    chain[at_right] = 2 * row_owner + 1
    x, y, chain = _hull_candidates(x, y, chain)
    points = np.column_stack((x, y)).astype(np.int32)
    bounds = np.searchsorted(chain, 2 * np.arange(k + 1)).tolist()
    sides = np.array([cv2.minAreaRect(points[lo:hi])[1] for lo, hi in itertools.pairwise(bounds)],
                     np.float64).reshape(k, 2)
    return sides.max(axis=1), sides.min(axis=1)


def sampling_allowance(orientation_deg: np.ndarray, long_span: np.ndarray,
                       short_span: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What to add to the long and short side of the rectangle around a mask's pixel centres.

    A pixel belongs to a mask when its centre lies inside the object, so the outermost centres
    stop short of each true edge by a gap. The expected gap depends on how the pixel grid meets
    the edge: with the edge's normal at angle phi (folded to [0, 45] deg) the edge crosses
    m = (edge length) cos(phi) pixel rows, whose centres lie at horizontal offsets
    a - i tan(phi) (mod 1) from it, i < m, for an unknown sub-pixel offset a. The gap is cos(phi)
    times the smallest of these; over a uniform a its mean is half the sum of the squared gaps
    between the m points {i tan(phi) mod 1} on the unit circle. That gives 0.5 px per edge for an
    axis-aligned side (the old "+1 pixel"), 0.35 px at 45 degrees (0.5 / sqrt 2), and about
    1 / (2 m) across long edges at generic angles. Each side gets the gaps of its two edges:
    the short side's edges are as long as the long side and vice versa. ``orientation_deg`` is
    the moments' axis (steadier on rasterised masks than the rectangle's own edge direction).
    """
    phi = np.radians(np.asarray(orientation_deg, np.float64) % 90.0)
    phi = np.minimum(phi, math.pi / 2 - phi)
    cos_phi = np.cos(phi)
    tan_phi = np.tan(phi)
    # Edge rows: the long side's edges bound the short side (and the short side's edges the long one).
    rows = np.floor((np.concatenate((short_span, long_span)) + 1.0) * np.tile(cos_phi, 2))
    gaps = _mean_smallest_offset(np.tile(tan_phi, 2), np.maximum(rows, 1.0))
    k = len(phi)
    return 2.0 * cos_phi * gaps[:k], 2.0 * cos_phi * gaps[k:]


def _mean_smallest_offset(step: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per set j: the mean over a uniform a in [0, 1) of min_i ((a - i step_j) mod 1), i < count_j.

    That is half the sum of squared gaps between the points {i step mod 1} around the circle.
    By the three-gap theorem those gaps take at most three lengths, known from the continued
    fraction of ``step`` (Alessandri & Berthe 1998, "Three distance theorems and combinatorics on
    words", Thm 1): with convergent denominators q_k, errors eta_k = |q_k step - p_k| and
    N = r q_k + q_(k-1) + s (1 <= r <= a_(k+1), 0 <= s < q_k), there are N - q_k gaps eta_k,
    s gaps eta_(k-1) - r eta_k and q_k - s gaps eta_(k-1) - (r - 1) eta_k. So a few Euclid steps
    for all sets at once, instead of sorting every set's points (3x slower on the bench frame).
    """
    n = np.asarray(count, np.float64)  # counts, q_k and s stay far below 2**53: exact in float64
    prev_eta, eta = np.ones_like(n), np.asarray(step, np.float64) % 1.0  # eta_(-1) = 1, eta_0 = step
    prev_q, q = np.zeros_like(n), np.ones_like(n)  # q_(-1) = 0, q_0 = 1
    states = []  # (eta_(k-1), eta_k, q_(k-1), q_k) per step k; each set keeps the one where it stops
    stop_at = np.zeros(len(n), np.int64)  # counts the steps a set went on: its stopping step
    todo = np.ones(len(n), bool)
    with np.errstate(divide="ignore", invalid="ignore"):  # eta_k = 0 (a rational step): a_(k+1) is inf
        while True:
            states.append((prev_eta, eta, prev_q, q))
            a = np.floor_divide(prev_eta, eta)
            next_q = a * q + prev_q
            todo &= n >= next_q + q  # False for NaN (0 / 0): that set stops too
            if not todo.any():
                break
            stop_at += todo
            prev_eta, eta = eta, np.abs(prev_eta - a * eta)  # abs: rounding can leave -0.0 or -1e-17
            prev_q, q = q, next_q
    prev_eta, eta, prev_q, q = np.take_along_axis(np.array(states), stop_at[None, None], 0)[0]
    r = np.floor((n - prev_q) / q)
    s = n - r * q - prev_q
    return 0.5 * ((n - q) * eta * eta + s * (prev_eta - r * eta) ** 2 + (q - s) * (prev_eta - (r - 1) * eta) ** 2)


# Passes of the local convexity filter: one drops about 2/3 of the row extremes of a straight rod;
# more passes cost more than the minAreaRect work they save (bench frame).
HULL_FILTER_PASSES = 1


def _hull_candidates(x: np.ndarray, y: np.ndarray, chain: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop row extremes that cannot be convex-hull vertices, for all particles at once.

    ``x``, ``y``: one extreme pixel per occupied row, rows going down along each chain; ``chain``
    is 2 x particle for first pixels (the left side), 2 x particle + 1 for last pixels (right).
    A point that is not strictly outside the chord between its neighbours on its side lies
    between that chord and its row's other extreme, so it is not a hull vertex, and dropping it
    leaves the hull (hence the rectangle) unchanged. Chain ends always stay. Exact integers.
    """
    for _ in range(HULL_FILTER_PASSES):
        if len(x) < 3:
            break
        same_chain = (chain[1:-1] == chain[:-2]) & (chain[1:-1] == chain[2:])
        # The middle point against the chord at its row, without division:
        # (xb - xa)(yc - ya) vs (xc - xa)(yb - ya); outside is smaller on the left, larger on the right.
        beyond = (x[1:-1] - x[:-2]) * (y[2:] - y[:-2]) - (x[2:] - x[:-2]) * (y[1:-1] - y[:-2])
        outside = np.where(chain[1:-1] & 1, beyond > 0, beyond < 0)
        keep = np.ones(len(x), bool)
        keep[1:-1] = outside | ~same_chain
        if keep.all():
            break
        x, y, chain = x[keep], y[keep], chain[keep]
    return x, y, chain
