"""Magnification independence: estimate a frame's typical wire width and the resize that brings its
wires into the width range the model learnt (``segment.options.scale``).

The shipped model learnt one range of wire widths (the default synth preset: 5-20 px, median 10 px at
512 px). Shown wires 2.5x wider it found almost none (issue 37: mask AP 0.146 -> 0.014). ``scale: auto``
measures each frame's typical wire width and resizes the frame so that it matches the training frames';
masks come back in the frame's own pixels.

The estimate (``estimate_wire_width``), written here because no library measures "typical stripe width"
and it must cost ~1 ms: the frame is levelled with a wide opening (black-hat for dark wires: the polarity
is the sign of the frame's skew, the wires being the minority phase), smoothed, thresholded at 30 % of the
way from the background to the typical wire level (Otsu separates the two first); the distance transform of that foreground peaks on each wire's mid-line at half its width, so the
median of 2 x the ridge distance, less the one pixel the pixel-centre convention adds, is the typical
width. Crossings and clusters add few ridge pixels, so the median holds. It runs on a frame of at most
``ESTIMATE_SIDE`` px (widths scaled back). ``TARGET_WIDTH_PX`` is the same estimator's median on the
training preset's frames, so its biases (blur, thresholding) cancel in the ratio.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wirewatch.errors import InputError
from wirewatch.segment import ENGINES

# The estimator's median on frames of the training preset (default ptychography preset, 512 px, seeds
# 38000-38019: 10.3 px, realistic preset 9.7 px; the wires' drawn widths are 5-20 px, median 10 px).
TARGET_WIDTH_PX = 10.0
WIRE_LEVEL_FRACTION = 0.3
TRAINED_WIDTH_RANGE_PX = (5.0, 20.0)  # drawn widths the training preset spans (wires.width low / high)
# factors within [1/1.5, 1.5] are 1: frames the model already fits stay as they are (the trained widths span
# 4x, and the estimate reads SEM frames' bright edges ~1.3x wide and STXM's coarse pixels ~1.15x)
DEAD_BAND = 1.5
STEP = 2.0 ** 0.25  # factors snap to quarter octaves: a steady series keeps one factor frame after frame
MIN_FACTOR, MAX_FACTOR = 1.0 / 8.0, 4.0
ESTIMATE_SIDE = 1024  # the estimate runs on a frame of at most this many pixels a side
MIN_RIDGE_PIXELS = 20  # fewer ridge pixels than this: no wires seen, keep the frame as it is
_MANIFEST = Path(__file__).resolve().parents[1] / "models" / "default.synth-manifest.json"

ScaleOption = str | float | None  # "auto", "multi", a factor, or None ("none")
SCALE_OPTIONS = ("scale", "scale_window", "polarity")  # segment.options handled by the runtime, not the backend


# scale and polarity default to auto for these: every model engine (segment.ENGINES) and the ray backend
MODEL_BACKENDS = (*ENGINES, "ray")


@dataclass(frozen=True)
class RuntimeOptions:
    """``segment.options`` the runtime's resize path applies, not the backend."""

    scale: ScaleOption = None
    scale_window: int = 1
    polarity: str = "bright"  # bright: frames as given


def split_scale_options(backend: str, options: Mapping[str, Any], default_window: int = 1
                        ) -> tuple[RuntimeOptions, dict[str, Any]]:
    """(runtime options, the backend's own options). ``scale`` and ``polarity`` default to ``auto`` for the
    model backends and to ``none`` / ``bright`` otherwise (the watershed baseline's thresholds are its own and
    it stays as it was; a segmenter handed in by code keeps the frames it is given)."""
    rest = dict(options)
    model = ((backend in ENGINES or backend in MODEL_BACKENDS)
             and not (backend == "ray" and rest.get("inner") == "watershed"))
    scale = parse_scale(rest.pop("scale", "auto" if model else "none"))
    polarity = parse_polarity(rest.pop("polarity", "auto" if model else "bright"))
    window = rest.pop("scale_window", default_window)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise InputError(f"scale_window must be a whole number of frames >= 1, got {window!r}")
    return RuntimeOptions(scale, window, polarity), rest


def parse_scale(value: Any) -> ScaleOption:
    """``auto`` | ``multi`` | a positive factor | ``none`` (also None / 1) -> "auto", "multi", a float, or None."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "off", "")):
        return None
    if isinstance(value, str) and value.strip().lower() in ("auto", "multi"):
        return value.strip().lower()
    try:
        factor = float(value)
    except (TypeError, ValueError):
        raise InputError(f"scale must be auto, multi, none or a positive factor (e.g. 0.5), got {value!r}") from None
    if isinstance(value, bool) or not (math.isfinite(factor) and MIN_FACTOR <= factor <= MAX_FACTOR):
        raise InputError(f"scale factor must be within {MIN_FACTOR:g}..{MAX_FACTOR:g}, got {value!r}")
    return None if factor == 1.0 else factor


def trained_width_range() -> tuple[float, float]:
    """Wire widths (px) the shipped model was trained on, from its training data's manifest when present."""
    try:
        width = json.loads(_MANIFEST.read_text())["config"]["wires"]["width"]
        return float(width["low"]), float(width["high"])
    except (OSError, KeyError, TypeError, ValueError):
        return TRAINED_WIDTH_RANGE_PX


def skewness(image: np.ndarray) -> float:
    """Standardised third moment about the median of a 4x subsample (~0.2 ms at 512 px). The wires are the
    minority phase, so their side of the intensity distribution has the long tail: bright wires give a
    positive value (panel sets: 0.5 to 4.7), dark wires on a bright field a negative one (-2.8 to -3.0)."""
    sample = np.asarray(image[::4, ::4], np.float32)
    centred = sample - float(np.median(sample))
    sd = float(centred.std())
    return float(np.mean(centred * centred * centred)) / sd ** 3 if sd > 0 else 0.0


POLARITIES = ("auto", "bright", "dark")
DARK_SKEW = -1.0  # polarity auto: frames more skewed than this towards dark are dark wires on a bright field


def parse_polarity(value: Any) -> str:
    if value not in POLARITIES:
        raise InputError(f"polarity must be one of {', '.join(POLARITIES)} (auto: dark wires on a bright field "
                         f"are recognised and inverted for the model), got {value!r}")
    return str(value)


def wires_are_dark(image: np.ndarray, polarity: str) -> bool:
    """Whether ``image`` shows dark wires on a bright field (inverted before the model, which knows bright wires)."""
    if polarity == "auto":
        return skewness(image) < DARK_SKEW
    return polarity == "dark"


def polarity_levelled(image: np.ndarray, radius: int) -> np.ndarray:
    """The frame with its broad background removed, wires bright whichever their polarity."""
    h, w = image.shape
    small_f = max(1, radius // 8)  # the morphology runs at reduced resolution (~0.1 ms)
    small = image if small_f == 1 else cv2.resize(image, (max(1, w // small_f), max(1, h // small_f)),
                                                   interpolation=cv2.INTER_AREA)
    bright = skewness(image) >= 0.0
    r = max(1, radius // small_f)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    background = cv2.morphologyEx(small, cv2.MORPH_OPEN if bright else cv2.MORPH_CLOSE, disc)
    if small_f != 1:
        background = cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR)
    out: np.ndarray = image - background if bright else background - image
    return out


@dataclass(frozen=True)
class WidthEstimate:
    width_px: float  # typical wire width in the frame's pixels (NaN when no wires were seen)
    ridge_pixels: int  # how many mid-line pixels the median was taken over
    foreground: float  # fraction of the frame taken as wire
    narrow_px: float = math.nan  # the 15th and 85th percentiles of the mid-line widths: a frame of mixed
    wide_px: float = math.nan  # widths has them far apart (scale: multi runs a pass for each)


def _hist_median(values: np.ndarray, counts: np.ndarray) -> float:
    """Median of ``values`` (ascending) weighted by ``counts``."""
    cum = np.cumsum(counts)
    return float(values[int(np.searchsorted(cum, cum[-1] / 2.0))])


def estimate_wire_width(image: np.ndarray) -> WidthEstimate:
    """Typical wire width (px) of a float32 frame (either polarity), ~1-3 ms for 512 px."""
    image = np.asarray(image, np.float32)
    h, w = image.shape
    k = max(1, math.ceil(max(h, w) / ESTIMATE_SIDE))
    if k > 1:
        image = cv2.resize(image, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
    radius = max(8, min(image.shape) // 8)  # wider than any wire we can hope to measure (~1/4 of the frame)
    levelled = polarity_levelled(image, radius)
    levelled = cv2.GaussianBlur(levelled, (0, 0), 1.0)
    lo, hi = float(levelled.min()), float(levelled.max())
    if not hi > lo:
        return WidthEstimate(math.nan, 0, 0.0)
    grey = np.clip((levelled - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    otsu_cut, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    t = int(otsu_cut)
    if not hist[:t + 1].sum() or not hist[t + 1:].sum():
        return WidthEstimate(math.nan, 0, 0.0)
    # Otsu's cut sits between the background and the brightest wires (crossings, thick wires in absorption
    # contrast), which thins the faint ones: cut instead at 30 % of the way from the background to the typical
    # wire level, above 3 noise sigmas (the per-frame spread of estimate / true width fell from 17 % to 6 %)
    # (medians from the 256-bin histogram: ~20x cheaper than sorting the pixels)
    levels = np.arange(256, dtype=np.float64)
    level = _hist_median(levels[:t + 1], hist[:t + 1])
    deviation = np.abs(levels[:t + 1] - level)
    order = np.argsort(deviation)
    noise = 1.4826 * _hist_median(deviation[order], hist[:t + 1][order])
    wire_level = _hist_median(levels[t + 1:], hist[t + 1:])
    cut = max(level + 3.0 * noise, level + WIRE_LEVEL_FRACTION * (wire_level - level))
    _, fg = cv2.threshold(grey, min(cut, 254.0), 255, cv2.THRESH_BINARY)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # lone noise pixels are not wires
    dist = cv2.distanceTransform(fg, cv2.DIST_L2, 5)
    ridge = (dist >= 1.0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)))
    values = dist[ridge]
    if values.size < MIN_RIDGE_PIXELS:
        return WidthEstimate(math.nan, int(values.size), float(np.count_nonzero(fg)) / fg.size)
    # mean of the middle half: the distance map is quantised, a plain median jumps between its levels
    lo_q, hi_q = np.percentile(values, (25.0, 75.0))
    middle = values[(values >= lo_q) & (values <= hi_q)]
    width = max(1.0, 2.0 * float(middle.mean()) - 1.0) * k
    narrow, wide = (max(1.0, 2.0 * float(q) - 1.0) * k for q in np.percentile(values, (15.0, 85.0)))
    return WidthEstimate(width, int(values.size), float(np.count_nonzero(fg)) / fg.size, narrow, wide)


def auto_factor(width_px: float, target_px: float = TARGET_WIDTH_PX) -> float:
    """The resize that brings ``width_px`` to the training width: snapped to quarter octaves, 1 inside the
    dead band, clamped to [MIN_FACTOR, MAX_FACTOR]; 1 when no width was measured."""
    if not math.isfinite(width_px) or width_px <= 0:
        return 1.0
    raw = target_px / width_px
    if 1.0 / DEAD_BAND <= raw <= DEAD_BAND:
        return 1.0
    snapped = STEP ** round(math.log(raw, STEP))
    return float(min(MAX_FACTOR, max(MIN_FACTOR, snapped)))


# hysteresis: a factor is kept until the width asks for one this many steps past its own bin (a held factor is
# at most 1.5 steps, 1.30x, off the ideal: well inside the trained 4x range of widths; a zoom of 1.41x or more
# is always followed). 1.5 steps held the demo's factor until 43 frames after its width jump, 1 step until 11
HOLD_STEPS = 1.0
HOLD_STEPS_DEAD_BAND = 0.5  # ... and 1 (the dead band, already 1.5x wide each way) half a step past it


def held_factor(width_px: float, previous: float | None, target_px: float = TARGET_WIDTH_PX) -> float:
    """``auto_factor`` with hysteresis: ``previous`` is kept while the raw factor (target / width) stays
    within ``HOLD_STEPS`` quarter octaves beyond the bin that snaps to it (``HOLD_STEPS_DEAD_BAND`` beyond
    the dead band for 1). Snapping alone flips between neighbouring factors when a series' typical width
    sits near a bin's edge: on steady series (160 frames, ``scale_window`` 9) it switched 10-14 times on the
    magnified panel sets and the 256 px steady scenario (CV of the applied factor 5-9 %), with the hold not
    once after the window filled (``python -m wirewatch.bench.scale_stability``; written here: a two-line
    rule, no library for it)."""
    factor = auto_factor(width_px, target_px)
    if previous is None or factor == previous or not math.isfinite(width_px) or width_px <= 0:
        return factor
    raw = target_px / width_px
    margin = STEP ** (0.5 + HOLD_STEPS)
    band = DEAD_BAND * STEP ** HOLD_STEPS_DEAD_BAND
    low, high = (1.0 / band, band) if previous == 1.0 else \
        (previous / margin, previous * margin)
    return previous if low <= raw <= high else factor


class RunningWidth:
    """Running median of the last ``size`` typical wire widths, px (the median of their logs: a width is a
    scale); nan before the first finite one. Used by ``scale: auto`` (its resize factor) and by
    ``quality.image`` (``iq_wire_width_px``); not thread-safe (callers hold their own lock)."""

    def __init__(self, size: int) -> None:
        self._logs: deque[float] = deque(maxlen=size)

    def add(self, width_px: float) -> float:
        """Take one frame's estimate (a non-finite or non-positive one is skipped); the running median."""
        if math.isfinite(width_px) and width_px > 0:
            self._logs.append(math.log(width_px))
        return self.value

    @property
    def value(self) -> float:
        return math.exp(float(np.median(self._logs))) if self._logs else math.nan

    @property
    def full(self) -> bool:
        return len(self._logs) == self._logs.maxlen

    def clear(self) -> None:
        self._logs.clear()


MULTI_SPREAD = 2.5  # scale multi: a second pass when the wide wires are this many times the narrow ones


def multi_factors(estimate: WidthEstimate) -> list[float]:
    """``scale: multi``: the factor for the typical width, plus those for the narrow and the wide wires when
    the frame's widths spread over more than MULTI_SPREAD (distinct factors only, typical first)."""
    factors = [auto_factor(estimate.width_px)]
    if math.isfinite(estimate.narrow_px) and estimate.wide_px > MULTI_SPREAD * estimate.narrow_px:
        for width in (estimate.narrow_px, estimate.wide_px):
            f = auto_factor(width)
            if all(abs(f - g) > 1e-6 for g in factors):
                factors.append(f)
    return factors


def covered_widths_nm(pixel_size_nm: float, factor_range: tuple[float, float] = (MIN_FACTOR, MAX_FACTOR)
                      ) -> tuple[float, float]:
    """Wire widths (nm) the model can be brought to see with ``scale: auto`` at ``pixel_size_nm``: the trained
    width range divided by the largest and smallest factor."""
    low, high = trained_width_range()
    return low / factor_range[1] * pixel_size_nm, high / factor_range[0] * pixel_size_nm


def describe_coverage(pixel_size_nm: float | None, factor: float = 1.0) -> str:
    """One log line: which widths the model sees as trained at this frame's factor (nm when known)."""
    low, high = trained_width_range()
    lo_px, hi_px = low / factor, high / factor
    text = f"model trained on wires {low:g}-{high:g} px wide; at scale {factor:.3g} it sees {lo_px:.3g}-{hi_px:.3g} px"
    if pixel_size_nm is not None:
        text += f" = {lo_px * pixel_size_nm:.4g}-{hi_px * pixel_size_nm:.4g} nm"
        a, b = covered_widths_nm(pixel_size_nm)
        text += f" (scale auto reaches {a:.4g}-{b:.4g} nm)"
    return text
