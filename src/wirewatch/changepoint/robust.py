"""Robust location/scale estimates and outlier suppression for messy per-frame series.

All functions accept NaN (missing values: dropped or empty frames) and ignore it.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.ndimage import median_filter

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
TRUNCATED_SD_CORRECTION = 1.0031  # sd of a normal truncated at 3.5 sd is 0.9969 sd


def robust_location(values: np.ndarray) -> np.ndarray:
    """Per-column median ignoring NaN (NaN for an all-NaN column)."""
    values = np.asarray(values, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column -> NaN is what we want
        return np.asarray(np.nanmedian(values, axis=0), float).reshape(values.shape[1])


def _mad(col: np.ndarray) -> float:
    return float(MAD_TO_SIGMA * np.median(np.abs(col - np.median(col))))


def robust_scale(values: np.ndarray, location: np.ndarray | None = None) -> np.ndarray:
    """Per-column noise sigma, robust to level shifts, slow drifts and outliers.

    From first differences divided by sqrt(2) (a step adds one large difference,
    which is dropped as an outlier): their standard deviation within 3.5 MADs of
    the median difference (efficient and robust); where the MAD is zero (e.g. a count that
    rarely moves) the plain MAD, then the standard deviation, then a floor of
    max(1e-9 |location|, 1e-12) so that a constant series never divides by zero.
    """
    values = np.asarray(values, float)
    if location is None:
        location = robust_location(values)
    # far below any real noise, far above float rounding of the level
    floor = np.maximum(1e-9 * np.abs(np.where(np.isfinite(location), location, 0.0)), 1e-12)
    if len(values) >= 3 and np.isfinite(values).all():  # the common case, vectorised
        diffs = np.diff(values, axis=0)
        centre = np.median(diffs, axis=0)
        dev = np.abs(diffs - centre)
        mad = MAD_TO_SIGMA * np.median(dev, axis=0)
        if (mad > 0).all():
            # efficiency: the standard deviation of the differences within 3.5 MADs (outliers out)
            kept = np.where(dev <= 3.5 * mad, dev, np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                sd = np.sqrt(np.nanmean(kept**2, axis=0)) * TRUNCATED_SD_CORRECTION
            return np.maximum(sd / np.sqrt(2.0), floor)
    out = np.empty(values.shape[1])
    for j in range(values.shape[1]):
        col = values[np.isfinite(values[:, j]), j]
        scale_j = 0.0
        if col.size >= 3:
            scale_j = _mad(np.diff(col)) / np.sqrt(2.0)
            if scale_j <= 0:
                scale_j = _mad(col)
            if scale_j <= 0:
                scale_j = float(np.std(col))
        out[j] = max(scale_j, floor[j])
    return out


def forward_fill(values: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Replace NaN by the previous finite value of its column (``fallback`` before the first)."""
    out = np.array(values, float, copy=True)
    for j in range(out.shape[1]):
        col = out[:, j]
        bad = ~np.isfinite(col)
        if not bad.any():
            continue
        idx = np.where(~bad, np.arange(col.size), -1)
        np.maximum.accumulate(idx, out=idx)
        filled = np.where(idx >= 0, col[np.maximum(idx, 0)], fallback[j])
        out[:, j] = filled
    return out


def fill_gaps(values: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Replace NaN by linear interpolation between its column's neighbours.

    A gap inside a trend is bridged along the trend (forward filling would leave a flat
    stretch and then a jump, which a piecewise-linear search reads as two changes).
    Trailing gaps take the last value, leading ones the first (``fallback`` for an empty column).
    """
    out = np.array(values, float, copy=True)
    idx = np.arange(out.shape[0], dtype=float)
    for j in range(out.shape[1]):
        col = out[:, j]
        good = np.isfinite(col)
        if good.all():
            continue
        if not good.any():
            out[:, j] = fallback[j]
            continue
        out[:, j] = np.interp(idx, idx[good], col[good])
    return out


def hampel(z: np.ndarray, clip: float, size: int = 5) -> np.ndarray:
    """Replace isolated outliers of a standardised series by the local median.

    A point further than ``clip`` (unit: sigma) from the running median of its
    ``size`` neighbours is an outlier; steps survive because a running median
    follows them after size // 2 frames.
    """
    if z.shape[0] < size:
        return z
    local = median_filter(z, size=(size, 1), mode="nearest")
    return np.where(np.abs(z - local) > clip, local, z)
