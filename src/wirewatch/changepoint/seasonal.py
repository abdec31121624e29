"""Cheap seasonality removal: a periodic component found from the autocorrelation, then subtracted.

A monthly series with a yearly pattern (passenger counts, construction spending) or
an in-situ statistic that oscillates with a stage or temperature cycle swings by
several noise sigmas within every period; against a line (or a constant) each
swing looks like a change. For each statistic, on residuals from which local lines
have been removed (trends are not seasons):

1. the autocorrelation at lags 2..``max_period`` (at least ``MIN_CYCLES`` cycles in
   the data) is computed; a *clear* period is a lag whose autocorrelation is at
   least ``min_acf``, is the largest of all lags, and stands above the lowest
   autocorrelation at shorter lags by ``MIN_ACF_DIP`` (a trend, a step or AR(1)
   noise decay monotonically and have no such peak);
2. the periodic component is the mean residual per phase (sample index modulo the
   period), centred; it is subtracted from every later value of that statistic.

The profile is refined at each re-calibration from the residuals that remain
(corrections are added to it), so a pattern that drifts slowly is followed; it is
dropped when the period no longer shows. Cost: one FFT-free autocorrelation of a
100-row window per statistic every ``calibration.every`` frames; per frame one
subtraction. Written here because statsmodels' STL / seasonal_decompose work on a
whole series offline (not a stream) and need the period given.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

MIN_CYCLES = 3  # a period must repeat this often in the data to be trusted
MIN_ACF_DIP = 0.3  # the peak must stand this far above the lowest autocorrelation at a shorter lag
MIN_PERIOD = 2
RELATIVE_MARGIN = 3.0  # multiplicative when the lowest level exceeds this many sds of the residuals
KEEP_FRACTION = 0.75  # a found period is kept while its autocorrelation stays above this share of min_acf


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation of ``x`` (NaN = missing, left out pairwise) at lags 0..max_lag."""
    x = np.asarray(x, float)
    good = np.isfinite(x)
    if good.sum() < 3:
        return np.zeros(max_lag + 1)
    c = np.where(good, x - np.nanmean(x), 0.0)
    var = float((c * c).sum() / good.sum())
    if var <= 0.0:
        return np.zeros(max_lag + 1)
    out = np.empty(max_lag + 1)
    for lag in range(max_lag + 1):
        both = good[lag:] & good[: len(x) - lag]
        out[lag] = (c[lag:] * c[: len(x) - lag])[both].sum() / max(both.sum(), 1) / var
    return out


def find_period(residuals: np.ndarray, max_period: int, min_acf: float) -> int | None:
    """The clear period of a 1-D residual series, or None (see the module docstring)."""
    n = int(np.isfinite(residuals).sum())
    top = min(max_period, n // MIN_CYCLES)
    if top < MIN_PERIOD + 1:
        return None
    acf = autocorrelation(residuals, top + 1)
    lags = np.arange(MIN_PERIOD, top + 1)
    best = int(lags[np.argmax(acf[lags])])
    for d in range(MIN_PERIOD, best):  # a multiple of the period correlates about as well: take the period
        if best % d == 0 and acf[d] >= 0.8 * acf[best] and acf[d] >= acf[d - 1] and acf[d] >= acf[d + 1]:
            best = d
            break
    peak = acf[best]
    if peak < min_acf or peak < acf[best + 1] or peak - acf[1:best].min() < MIN_ACF_DIP:
        return None
    return best


def phase_means(residuals: np.ndarray, start: int, period: int) -> np.ndarray:
    """Centred mean residual per phase ((start + row) % period); phases without data get 0."""
    phase = (start + np.arange(len(residuals))) % period
    good = np.isfinite(residuals)
    sums = np.bincount(phase[good], weights=residuals[good], minlength=period)
    counts = np.bincount(phase[good], minlength=period)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return means - means[counts > 0].mean() if (counts > 0).any() else means


class SeasonalFilter:
    """Per-statistic periodic components, subtracted from the stream's rows.

    A statistic whose local level stays far above zero gets a *multiplicative* component (the pattern is a
    fraction of the level: passenger counts whose yearly swing grows with the traffic); it is scaled by
    the level of the local line at the last re-fit. Otherwise the component is additive.
    """

    def __init__(self, n_dims: int, *, max_period: int, min_acf: float) -> None:
        self.n_dims = n_dims
        self.max_period = max_period
        self.min_acf = min_acf
        self.periods: list[int | None] = [None] * n_dims
        self.profiles: list[np.ndarray] = [np.zeros(0) for _ in range(n_dims)]
        self.relative = [False] * n_dims  # multiplicative: the profile is a fraction of the level
        self.levels = np.ones(n_dims)  # level of the local line at the last re-fit (multiplicative only)

    @property
    def active(self) -> bool:
        return any(p is not None for p in self.periods)

    def component(self, index: int) -> np.ndarray:
        """The periodic component of every statistic at sample ``index`` (0 where none)."""
        out = np.zeros(self.n_dims)
        for j, p in enumerate(self.periods):
            if p is not None:
                out[j] = self.profiles[j][index % p] * (self.levels[j] if self.relative[j] else 1.0)
        return out

    def _values(self, j: int, phases: np.ndarray, level: np.ndarray) -> np.ndarray:
        return self.profiles[j][phases] * (level if self.relative[j] else 1.0)

    def refit(self, start: int, residuals: np.ndarray, lines: np.ndarray | None = None) -> np.ndarray:
        """Update from ``residuals`` (m, d): rows ``start``.. of the stream with the current component
        already removed and local lines taken out (``lines``: those lines' values, for multiplicative
        components). Returns the (m, d) amounts by which those rows change (subtract them from the stored
        rows): a new or refined component, or a dropped one added back."""
        m = residuals.shape[0]
        delta = np.zeros((m, self.n_dims))
        rows = start + np.arange(m)
        if lines is None:
            lines = np.ones_like(residuals)
        for j in range(self.n_dims):
            level = lines[:, j]
            col = residuals[:, j]
            # multiplicative only where the level stays far above zero compared with the swings around it
            spread = float(np.nanstd(col)) if np.isfinite(col).any() else math.inf
            positive = bool(np.isfinite(level).any() and np.nanmin(level) > RELATIVE_MARGIN * spread)
            p = self.periods[j]
            if p is not None:
                if self.relative[j] and not positive:
                    positive = True  # keep the mode chosen at the find; a level near 0 makes no sense of it
                rel = col / level if self.relative[j] else col
                restored = rel + self.profiles[j][rows % p]
                if autocorrelation(restored, p)[p] < KEEP_FRACTION * self.min_acf:
                    # the period went away: drop it, the rows get it back
                    delta[:, j] = -self._values(j, rows % p, level)
                    self.periods[j], self.profiles[j] = None, np.zeros(0)
                    continue
                self.profiles[j] = self.profiles[j] + phase_means(rel, start, p)
                old = self._values(j, rows % p, np.full(m, self.levels[j]))
                self.levels[j] = _last_finite(level, self.levels[j])
                delta[:, j] = self._values(j, rows % p, level) - old  # rows held the component at the old level
                continue
            found = find_period(col, self.max_period, self.min_acf)
            if found is not None:
                self.periods[j], self.relative[j] = found, positive
                rel = col / level if positive else col
                self.profiles[j] = phase_means(rel, start, found)
                self.levels[j] = _last_finite(level, 1.0)
                delta[:, j] = self._values(j, rows % found, level)
        return np.where(np.isfinite(delta), delta, 0.0)


def _last_finite(values: np.ndarray, default: float) -> float:
    good = values[np.isfinite(values)]
    return float(good[-1]) if good.size else default


def detrended(values: np.ndarray, bounds: list[int], min_rows: int = 6) -> np.ndarray:
    """``values`` (m, d) with a least-squares line removed per column within each segment
    ``bounds[i]:bounds[i+1]``; NaN where a segment is shorter than ``min_rows`` or a value is missing."""
    out = np.full(values.shape, np.nan)
    for a, b in itertools.pairwise(bounds):
        seg = values[a:b]
        if b - a < min_rows:
            continue
        t = np.arange(b - a, dtype=float)[:, None]
        good = np.isfinite(seg)
        n = np.maximum(good.sum(axis=0), 1)
        with np.errstate(all="ignore"):
            tbar = np.where(good, t, 0.0).sum(axis=0) / n
            xbar = np.where(good, seg, 0.0).sum(axis=0) / n
            dt = np.where(good, t - tbar, 0.0)
            stt = (dt * dt).sum(axis=0)
            slope = np.where(stt > 0, (dt * np.where(good, seg - xbar, 0.0)).sum(axis=0) / stt, 0.0)
        out[a:b] = np.where(good, seg - xbar - slope * (t - tbar), np.nan)
    return out
