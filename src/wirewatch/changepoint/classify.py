"""What changed at a break: level, slope or variance, measured against a line on each side.

For each statistic, least-squares lines are fitted to the segment before the break
and the one after it (robust-standardised values, unit noise sigma). Then

- level: the jump between the two lines at the break, its t statistic against the
  two extrapolations' standard errors;
- slope: the difference of the two slopes, over its standard error
  sqrt(1 / Stt_before + 1 / Stt_after);
- variance: the ratio of the residual variances (an F statistic).

The kind of an event is the one with the strongest evidence among the statistics
that moved: level unless the slope's t statistic is larger, variance when neither
is significant but the residual spread changed (F beyond its 0.1 % quantile).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import f as f_dist

from wirewatch.changepoint.costs import CostL2Cumsum, CostLinearCumsum
from wirewatch.types import ChangeKind

VARIANCE_ALPHA = 1e-3  # two-sided level of the F test that calls a change a variance change
MIN_SLOPE_SAMPLES = 10  # a slope from fewer samples after the break is too uncertain to name the kind


@dataclass(frozen=True)
class BreakEvidence:
    """Per-statistic evidence (arrays of length d)."""

    level_shift: np.ndarray  # jump at the break, in sigma
    slope_shift: np.ndarray  # slope after - slope before, sigma per sample
    t_level: np.ndarray
    t_slope: np.ndarray
    sd_ratio: np.ndarray  # residual sd after / before
    variance_changed: np.ndarray  # bool: F test significant
    n_after: np.ndarray

    @property
    def t_max(self) -> np.ndarray:
        return np.maximum(self.t_level, self.t_slope)


def _fit(segment: np.ndarray, t0: float) -> tuple[np.ndarray, ...]:
    """Line per column (NaN skipped): value at time t0 (relative to the segment's first row), its
    variance factor, slope, Stt, residual variance, count."""
    m = segment.shape[0]
    t = np.arange(m, dtype=float)[:, None]
    good = np.isfinite(segment)
    n = good.sum(axis=0).astype(float)
    x = np.where(good, segment, 0.0)
    tt = np.where(good, t, 0.0)
    with np.errstate(all="ignore"):
        tbar = tt.sum(axis=0) / n
        xbar = x.sum(axis=0) / n
        dt = np.where(good, t - tbar, 0.0)
        stt = (dt * dt).sum(axis=0)
        slope = np.where(stt > 0, (dt * (x - xbar)).sum(axis=0) / stt, 0.0)
        resid = np.where(good, x - xbar - slope * (t - tbar), 0.0)
        dof = np.maximum(n - 2, 1)
        var = (resid * resid).sum(axis=0) / dof
        value = xbar + slope * (t0 - tbar)
        value_var = 1.0 / n + np.where(stt > 0, (t0 - tbar) ** 2 / stt, 0.0)
    return value, value_var, slope, stt, var, n


def break_evidence(before: np.ndarray, after: np.ndarray, flat_t: float = 0.0) -> BreakEvidence:
    """Evidence for a change between ``before`` (m1, d) and ``after`` (m2, d), unit-noise values.

    ``flat_t`` > 0: a statistic whose slope is below ``flat_t`` standard errors on both sides is flat there,
    and its level jump is measured between the two means (the power of a constant-mean test; a line
    extrapolated to the break has a much larger error). Kept small (about 1): a weak trend on both sides
    biases the difference of the means by about 2.4 ``flat_t`` standard errors.
    """
    m1 = before.shape[0]
    v1, vv1, b1, stt1, var1, n1 = _fit(before, float(m1) - 0.5)  # both lines evaluated half-way across the break
    v2, vv2, b2, stt2, var2, n2 = _fit(after, -0.5)
    if flat_t > 0:
        with np.errstate(all="ignore"):
            flat = ((np.abs(b1) * np.sqrt(stt1) < flat_t) & (np.abs(b2) * np.sqrt(stt2) < flat_t)
                    & (n1 >= MIN_SLOPE_SAMPLES) & (n2 >= MIN_SLOPE_SAMPLES))
            m_1, m_2 = np.nansum(before, axis=0) / n1, np.nansum(after, axis=0) / n2
            v1, vv1 = np.where(flat, m_1, v1), np.where(flat, 1.0 / n1, vv1)
            v2, vv2 = np.where(flat, m_2, v2), np.where(flat, 1.0 / n2, vv2)
    # a line through a few samples extrapolates badly: a level there, until MIN_SLOPE_SAMPLES are in
    with np.errstate(all="ignore"):
        short = n2 < MIN_SLOPE_SAMPLES
        mean2 = np.nansum(after, axis=0) / n2
        v2, vv2, b2 = np.where(short, mean2, v2), np.where(short, 1.0 / n2, vv2), np.where(short, b1, b2)
    with np.errstate(all="ignore"):
        level = v2 - v1
        t_level = np.abs(level) / np.sqrt(vv1 + vv2)
        slope = b2 - b1
        enough = (n1 >= MIN_SLOPE_SAMPLES) & (n2 >= MIN_SLOPE_SAMPLES) & (stt1 > 0) & (stt2 > 0)
        t_slope = np.where(enough, np.abs(slope) / np.sqrt(1.0 / stt1 + 1.0 / stt2), 0.0)
        ratio = var2 / var1
        dof1, dof2 = np.maximum(n1 - 2, 1), np.maximum(n2 - 2, 1)
        lo = f_dist.ppf(VARIANCE_ALPHA / 2, dof2, dof1)
        hi = f_dist.ppf(1 - VARIANCE_ALPHA / 2, dof2, dof1)
        changed = enough & ((ratio < lo) | (ratio > hi))
    clean = lambda a: np.where(np.isfinite(a), a, 0.0)  # noqa: E731
    return BreakEvidence(level_shift=clean(level), slope_shift=clean(slope), t_level=clean(t_level),
                         t_slope=clean(t_slope), sd_ratio=np.where(np.isfinite(ratio) & (ratio > 0),
                                                                   np.sqrt(np.abs(ratio)), 1.0),
                         variance_changed=changed, n_after=n2)


MIN_RESIDUAL_SAMPLES = 6  # per side: fewer residuals say little about the noise around the lines


def residual_scale(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Robust sd (MAD) of the residuals of a least-squares line on each side of a break, pooled, per column.

    On unit-noise values this is about 1 when the two lines explain the data (a step or kink in noise);
    it is much larger on a smooth curve or a sawtooth whose first differences are tiny (a population
    count, a balance that resets monthly): there the "noise" of the first differences is not what
    deviates from a piecewise line, and t statistics against it would call every bend a change.
    NaN where a side has fewer than ``MIN_RESIDUAL_SAMPLES`` values.
    """
    parts = []
    for seg in (before, after):
        m = seg.shape[0]
        if m < MIN_RESIDUAL_SAMPLES:
            return np.full(seg.shape[1], np.nan)
        t = np.arange(m, dtype=float)[:, None]
        good = np.isfinite(seg)
        n = np.maximum(good.sum(axis=0), 1)
        x = np.where(good, seg, 0.0)
        with np.errstate(all="ignore"):
            tbar = np.where(good, t, 0.0).sum(axis=0) / n
            xbar = x.sum(axis=0) / n
            dt = np.where(good, t - tbar, 0.0)
            stt = (dt * dt).sum(axis=0)
            slope = np.where(stt > 0, (dt * (x - xbar)).sum(axis=0) / stt, 0.0)
        parts.append(np.where(good, seg - xbar - slope * (t - tbar), np.nan))
    resid = np.vstack(parts)
    with np.errstate(all="ignore"):
        centre = np.nanmedian(resid, axis=0)
        return 1.4826 * np.nanmedian(np.abs(resid - centre), axis=0)


def kind_of(evidence: BreakEvidence, columns: list[int], significant: float) -> ChangeKind:
    """Level, slope or variance, from the strongest evidence among ``columns``."""
    cols = np.array(columns, int)
    t_level, t_slope = evidence.t_level[cols], evidence.t_slope[cols]
    if max(t_level.max(initial=0.0), t_slope.max(initial=0.0)) < significant and evidence.variance_changed[cols].any():
        return "variance"
    return "slope" if t_slope.max(initial=0.0) > t_level.max(initial=0.0) else "level"


def effect_of(evidence: BreakEvidence, j: int, kind: ChangeKind) -> float:
    """Effect size of statistic ``j`` in sigma: the jump (level), how far the new line has left the old
    one by the end of the segment after the break (slope), or the relative change of the noise sd."""
    if kind == "slope":
        return float(abs(evidence.slope_shift[j]) * evidence.n_after[j])
    if kind == "variance":
        ratio = float(evidence.sd_ratio[j])
        return max(ratio, 1.0 / ratio) - 1.0
    return float(abs(evidence.level_shift[j]))


def best_split(z: np.ndarray, linear: bool, min_before: int = 2) -> int | None:
    """Row of the best single split of ``z`` (n, d): means on both sides (``l2``), or a line before and
    a level after (``linear``: an alarm comes a few samples after the change, too few for a slope)."""
    n = len(z)
    lo = max(min_before, 3 if linear else 1)
    hi = n - 1
    if hi < lo:
        return None
    if linear:
        line, level = CostLinearCumsum().fit(z), CostL2Cumsum().fit(z)
        gains = np.array([-line.error(0, t) - level.error(t, n) for t in range(lo, hi + 1)])
    else:
        cs = np.cumsum(z, axis=0)
        t = np.arange(lo, hi + 1)
        left = cs[t - 1] / t[:, None]
        right = (cs[-1] - cs[t - 1]) / (n - t)[:, None]
        gains = (t * (n - t) / n) * ((left - right) ** 2).sum(axis=1)
    return lo + int(np.argmax(gains))


MIN_CURVE_SAMPLES = 8  # values in the segment (both sides) below which the curvature check says nothing


def curve_t(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """How much better a line on each side of the break fits than one quadratic through both, per column.

    A bend of a smooth growth curve (a population, an accumulating concentration) is fitted about as well by
    a quadratic as by two lines; a kink or a step is not. The statistic is the square root of the F
    statistic of the extra parameter (two lines: 4, quadratic: 3), against the two lines' own residual
    variance, so it is scale-free and discounts wiggles the lines do not explain either (autocorrelation,
    seasonality). ``inf`` where a column has too few values to judge (the check then passes).
    """
    seg = np.vstack([before, after])
    m1, m = before.shape[0], seg.shape[0]
    t = np.arange(m, dtype=float)
    out = np.full(seg.shape[1], np.inf)
    for j in range(seg.shape[1]):
        good = np.isfinite(seg[:, j])
        n = int(good.sum())
        if n < MIN_CURVE_SAMPLES or good[:m1].sum() < 2 or good[m1:].sum() < 2:
            continue
        x, tj = seg[good, j], t[good] / m  # time scaled to [0, 1): a well-conditioned quadratic
        side = tj < m1 / m
        lines = np.column_stack([side, side * tj, ~side, ~side * tj]).astype(float)
        quad = np.column_stack([np.ones(n), tj, tj * tj])
        rss_lines = float(np.sum((x - lines @ np.linalg.lstsq(lines, x, rcond=None)[0]) ** 2))
        rss_quad = float(np.sum((x - quad @ np.linalg.lstsq(quad, x, rcond=None)[0]) ** 2))
        dof = n - 4
        if dof < 1:
            continue
        if rss_lines <= 1e-12 * max(rss_quad, 1e-300):
            continue  # the lines fit exactly: noise-free data, nothing to compare against
        out[j] = float(np.sqrt(max(rss_quad - rss_lines, 0.0) / (rss_lines / dof)))
    return out
