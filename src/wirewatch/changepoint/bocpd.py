"""Bayesian online change-point detection (Adams & MacKay 2007), pruned, one model per statistic.

Why hand-written: the PyPI packages for BOCPD (``bocd`` 0.1.2 and ``bocpd`` 0.0.4,
unmaintained since 2019 / 2023; ``bayesian-changepoint-detection``, offline and
unpruned; ``bayesian-changepoint``, built on PyTorch) offer a constant-mean model
only, keep every run length (memory and time per point grow with the stream) and
run one series at a time. Here all statistics share one vectorised state of fixed
size (``d`` statistics x ``R`` run lengths), and the segment model is a line.

Model (per statistic, data in robust-sigma units). Within a run the values follow
a Bayesian linear regression on the run's local time tau = 0, 1, ...:

    y_tau = x_tau - (o + s tau) = b0 + b1 tau + e,   e ~ N(0, sigma^2)
    (b0, b1) | sigma^2 ~ N(0, sigma^2 L0^-1),  L0 = diag(1 / level_sd^2, 1 / slope_sd^2)
    sigma^2 ~ InvGamma(a0, c0)

with the run's reference line (o, s) = where the most probable run predicted the
stream to be, and its slope, when the run began (a new regime starts near the old
one; ``constant`` drops b1 and s: the normal-gamma model of the paper). Conjugacy
(Bishop 2006, sec. 3.3; Murphy 2007, "Conjugate Bayesian analysis of the Gaussian
distribution", sec. 9) gives, from the run's n values with sums Sy, Sty, Syy and
S0 = n, S1 = sum tau, S2 = sum tau^2:

    Ln = L0 + [[S0, S1], [S1, S2]],  mn = Ln^-1 [Sy, Sty]
    an = a0 + n / 2,  cn = c0 + (Syy - mn . [Sy, Sty]) / 2

and the predictive of the next value (tau = n, u = [1, n]) is Student-t with 2 an
degrees of freedom, location u . mn and squared scale cn / an (1 + u Ln^-1 u').

Recursion (Adams & MacKay, eqs. 3-5) with constant hazard H = 1 / expected_run:

    P(r_t = r + 1, x_1:t) = P(r_{t-1} = r, x_1:t-1) pi_r(x_t) (1 - H)
    P(r_t = 0,     x_1:t) = sum_r P(r_{t-1} = r, x_1:t-1) pi_0(x_t) H

Here column k of the state is the run holding the last k + 1 values (the new run
holds x_t). Pruning: at most ``max_run`` columns; the mass of a run that would
grow past them is merged into the last column, whose sums cover the last
``max_run`` values (memory and time per point are constant; the oldest evidence
is forgotten, as in a sliding window).

Outliers: each value is first winsorised at ``clip`` predictive standard
deviations of the most probable run. Alarm: the posterior mass of runs shorter
than ``lag`` (and younger than the last reset) exceeds a threshold calibrated
by simulation on noise to the false-alarm budget (``bocpd_threshold``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import gammaln

from wirewatch.changepoint.base import Candidate

LOG_ZERO = -1e300


@dataclass(frozen=True)
class BocpdParams:
    expected_run: float = 250.0  # 1 / hazard
    max_run: int = 100  # columns kept (pruned run length)
    lag: int = 15  # an alarm sums the mass of runs shorter than this
    linear: bool = True  # segment model: a line (True) or a constant (normal-gamma)
    level_sd: float = 3.0  # prior sd of a new run's level around the reference, in sigma
    slope_sd: float = 0.05  # prior sd of a new run's slope change, sigma per sample
    a0: float = 3.0  # inverse-gamma prior on the noise variance (unit data: mean c0 / (a0 - 1) = 1)
    c0: float = 2.0
    clip: float = 3.0  # winsorise at this many predictive sigmas of the most probable run


class BocpdState:
    """Run-length posterior and per-run sufficient statistics for d statistics (vectorised)."""

    def __init__(self, params: BocpdParams, n_dims: int) -> None:
        self.p = params
        r = params.max_run
        self.n_dims = n_dims
        self.logp = np.full((n_dims, r), LOG_ZERO)
        self.sy = np.zeros((n_dims, r))
        self.sty = np.zeros((n_dims, r))
        self.syy = np.zeros((n_dims, r))
        self.off = np.zeros((n_dims, r))  # reference line of each run: o + s tau
        self.offslope = np.zeros((n_dims, r))
        self.empty = np.ones(n_dims, bool)  # no run yet (before the first value)
        self.ref = np.zeros(n_dims)  # where a new run starts when there is none
        self.ref_slope = np.zeros(n_dims)
        n = np.arange(1, r + 1, dtype=float)  # values in column k: k + 1
        self._n = n
        self._s1 = n * (n - 1) / 2.0
        self._s2 = (n - 1) * n * (2 * n - 1) / 6.0
        self._pa = 1.0 / params.level_sd**2
        self._pb = 1.0 / params.slope_sd**2
        self._log_h = math.log(1.0 / params.expected_run)
        self._log_1mh = math.log1p(-1.0 / params.expected_run)

    # -- posterior of each run ----------------------------------------------------------------------------
    def _predictive(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Location, squared scale and degrees of freedom of each column's next-value predictive
        (relative to the column's reference line at tau = n), each (d, R)."""
        p = self.p
        n = self._n[None, :]
        if p.linear:
            l00 = self._pa + n
            l01 = self._s1[None, :]
            l11 = self._pb + self._s2[None, :]
            det = l00 * l11 - l01 * l01
            m0 = (l11 * self.sy - l01 * self.sty) / det
            m1 = (l00 * self.sty - l01 * self.sy) / det
            quad = m0 * self.sy + m1 * self.sty
            loc = m0 + m1 * n
            v = 1.0 + (l11 - 2.0 * n * l01 + n * n * l00) / det
        else:
            lam = self._pa + n
            m0 = self.sy / lam
            quad = m0 * self.sy
            loc = m0
            v = 1.0 + 1.0 / lam
        an = p.a0 + n / 2.0
        cn = np.maximum(p.c0 + 0.5 * (self.syy - quad), 1e-12)
        return loc, cn / an * v, np.broadcast_to(2.0 * an, loc.shape)

    def _slope(self) -> np.ndarray:
        """Posterior mean slope of each column (d, R), reference slope included."""
        if not self.p.linear:
            return np.zeros_like(self.sy)
        n = self._n[None, :]
        l00, l01, l11 = self._pa + n, self._s1[None, :], self._pb + self._s2[None, :]
        det = l00 * l11 - l01 * l01
        return (l00 * self.sty - l01 * self.sy) / det + self.offslope

    def _prior_logpdf(self, y: np.ndarray) -> np.ndarray:
        p = self.p
        v = 1.0 + p.level_sd**2
        return _student_logpdf(y, np.zeros_like(y), np.full_like(y, p.c0 / p.a0 * v), np.full_like(y, 2.0 * p.a0))

    def map_prediction(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per statistic: predicted next value, its predictive sd and slope under the most probable run."""
        loc, scale2, dof = self._predictive()
        best = np.argmax(self.logp, axis=1)
        rows = np.arange(self.n_dims)
        tau = self._n[best]
        mean = self.off[rows, best] + self.offslope[rows, best] * tau + loc[rows, best]
        var = scale2[rows, best] * np.where(dof[rows, best] > 2, dof[rows, best] / (dof[rows, best] - 2), 3.0)
        slope = self._slope()[rows, best]
        mean = np.where(self.empty, self.ref, mean)
        sd = np.where(self.empty, self.p.level_sd, np.sqrt(var))
        slope = np.where(self.empty, self.ref_slope, slope)
        return mean, sd, slope

    # -- one step -------------------------------------------------------------------------------------------
    def update(self, x: np.ndarray) -> None:
        """Absorb one value per statistic (NaN: that statistic's state is left as it is)."""
        observed = np.isfinite(x)
        if not observed.any():
            return
        mean, sd, slope = self.map_prediction()
        ref, ref_slope = mean, slope if self.p.linear else np.zeros_like(slope)
        if self.p.clip > 0:
            x = np.clip(x, mean - self.p.clip * sd, mean + self.p.clip * sd)
        x = np.where(observed, x, mean)
        # predictive log density of x under each existing run (column k, tau = k + 1)
        loc, scale2, dof = self._predictive()
        tau_next = self._n[None, :]
        y_runs = x[:, None] - (self.off + self.offslope * tau_next)
        log_pred = _student_logpdf(y_runs, loc, scale2, dof)
        log_pred0 = self._prior_logpdf(x - ref)
        grown = self.logp + log_pred + self._log_1mh
        total = _logsumexp(self.logp + log_pred, axis=1)
        new_cp = np.where(self.empty, 0.0, total + self._log_h) + log_pred0
        logp = np.empty_like(self.logp)
        logp[:, 0] = new_cp
        logp[:, 1:] = grown[:, :-1]
        logp[:, -1] = np.logaddexp(logp[:, -1], grown[:, -1])  # pruning: the longest run stays the last column
        logp -= _logsumexp(logp, axis=1)[:, None]
        # sufficient statistics: every run gets x at its tau; the new run starts at the reference line
        sy, sty, syy = self._shift(self.sy), self._shift(self.sty), self._shift(self.syy)
        off, offslope = self._shift(self.off), self._shift(self.offslope)
        off[:, 0], offslope[:, 0] = ref, ref_slope
        tau = np.concatenate([[0.0], self._n[:-1]])[None, :]
        y = x[:, None] - (off + offslope * tau)
        sy += y
        sty += tau * y
        syy += y * y
        keep = observed[:, None]
        self.logp = np.where(keep, logp, self.logp)
        self.sy, self.sty, self.syy = (np.where(keep, a, b) for a, b in ((sy, self.sy), (sty, self.sty),
                                                                         (syy, self.syy)))
        self.off, self.offslope = np.where(keep, off, self.off), np.where(keep, offslope, self.offslope)
        self.empty &= ~observed

    @staticmethod
    def _shift(a: np.ndarray) -> np.ndarray:
        out = np.empty_like(a)
        out[:, 0] = 0.0
        out[:, 1:] = a[:, :-1]
        return out

    def reset_to(self, block: np.ndarray) -> None:
        """One run holding ``block`` (m, d) (NaN skipped): the state after a reported change."""
        r = self.p.max_run
        block = block[-r:]
        self.__init__(self.p, self.n_dims)  # type: ignore[misc]
        for j in range(self.n_dims):
            col = block[:, j]
            good = np.isfinite(col)
            m = int(good.sum())
            if m == 0:
                continue
            xs = col[good]
            tau = np.arange(m, dtype=float)
            if self.p.linear and m >= 3:
                slope, intercept = np.polyfit(tau, xs, 1)
            else:
                slope, intercept = 0.0, float(np.median(xs))
            y = xs - (intercept + slope * tau)
            k = m - 1
            self.logp[j, k] = 0.0
            self.sy[j, k], self.sty[j, k], self.syy[j, k] = y.sum(), (tau * y).sum(), (y * y).sum()
            self.off[j, k], self.offslope[j, k] = intercept, slope
            self.empty[j] = False

    def short_run_mass(self, limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per statistic: posterior mass of runs in columns < limit_j, and the most probable of them."""
        cols = np.arange(self.p.max_run)[None, :]
        masked = np.where(cols < limit[:, None], self.logp, LOG_ZERO)
        mass = np.exp(np.minimum(_logsumexp(masked, axis=1), 0.0))
        return mass, np.argmax(masked, axis=1)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(a, axis=axis, keepdims=True)
    return np.asarray(np.log(np.sum(np.exp(a - top), axis=axis)) + np.squeeze(top, axis=axis))


def _student_logpdf(y: np.ndarray, loc: np.ndarray, scale2: np.ndarray, dof: np.ndarray) -> np.ndarray:
    z2 = (y - loc) ** 2 / scale2
    return np.asarray(gammaln((dof + 1) / 2) - gammaln(dof / 2) - 0.5 * np.log(dof * math.pi * scale2)
                      - (dof + 1) / 2 * np.log1p(z2 / dof))


# -- the online test ----------------------------------------------------------------------------------------
class BocpdTest:
    """BOCPD as the streaming detector's online test (``online.method: bocpd``)."""

    name = "bocpd"

    def __init__(self, params: BocpdParams, *, threshold: float, holdoff: int) -> None:
        self.params = params
        self.threshold = threshold
        self.holdoff = holdoff
        self.start(np.zeros(1))

    def start(self, location: np.ndarray, slope: np.ndarray | None = None) -> None:
        d = len(location)
        self.state = BocpdState(self.params, d)
        self._pending: np.ndarray | None = None
        self._age = np.zeros(d)  # values since the last reset (alarms only count runs younger than that)
        self._hold = 0

    def on_change(self, index: int, post_change: np.ndarray) -> None:
        self._pending = np.asarray(post_change, float).reshape(-1, self.state.n_dims)
        self._hold = max(0, self.holdoff - len(self._pending))

    def release(self) -> None:
        """End the hold-off now: the baseline came from a short warm-up whose noise scale is known
        (a reference run, ``changepoint.reference``)."""
        self._hold = 0

    def update(self, index: int, values: np.ndarray, scale: np.ndarray) -> Candidate | None:
        z = np.asarray(values, float) / scale
        if self._pending is not None:
            block = self._pending / scale
            self.state.reset_to(block)
            self._age = np.isfinite(block).sum(axis=0).astype(float)
            self._pending = None
        self.state.update(z)
        self._age += np.isfinite(z)
        if self._hold > 0:
            self._hold -= 1
            return None
        limit = np.minimum(self.params.lag, self._age - 1)
        mass, best = self.state.short_run_mass(limit)
        alarmed = np.flatnonzero(mass > self.threshold)
        if alarmed.size == 0:
            return None
        start = index - int(best[alarmed].max())
        return Candidate(index=start, detector=self.name, columns=tuple(int(j) for j in alarmed))


# -- threshold from the false-alarm budget ----------------------------------------------------------------
SIM_STREAMS = 256
SIM_STEPS = 1200
SIM_BURN_IN = 60
SIM_BLOCK = 50


@lru_cache(maxsize=16)
def _simulated_block_maxima(params: BocpdParams) -> np.ndarray:
    """Logit of the largest short-run mass per block of ``SIM_BLOCK`` samples on unit white noise."""
    rng = np.random.default_rng(20261207)
    state = BocpdState(params, SIM_STREAMS)
    state.reset_to(rng.standard_normal((SIM_BURN_IN, SIM_STREAMS)))
    age = np.full(SIM_STREAMS, float(SIM_BURN_IN))
    masses = np.empty((SIM_STEPS, SIM_STREAMS))
    for t in range(SIM_STEPS):
        state.update(rng.standard_normal(SIM_STREAMS))
        age += 1
        masses[t], _ = state.short_run_mass(np.minimum(params.lag, age - 1))
    m = np.clip(masses, 1e-12, 1 - 1e-12)
    logit = np.log(m) - np.log1p(-m)
    return np.asarray(logit.reshape(SIM_STEPS // SIM_BLOCK, SIM_BLOCK, SIM_STREAMS).max(axis=1).ravel())


def bocpd_threshold(params: BocpdParams, rate_per_statistic: float) -> float:
    """Short-run mass above which a statistic alarms, for ~``rate_per_statistic`` false alarms per sample."""
    from wirewatch.changepoint.calibrate import _upper_quantile

    maxima = _simulated_block_maxima(params)
    alpha = min(0.5, rate_per_statistic * SIM_BLOCK)
    logit = _upper_quantile(maxima, alpha)
    return float(1.0 / (1.0 + math.exp(-logit))) if logit < 700 else 1.0 - 1e-12
