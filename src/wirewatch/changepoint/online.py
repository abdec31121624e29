"""Fast sequential tests per statistic for early warning: CUSUM and Page-Hinkley.

Both run on robust-standardised values (unit: robust sigma), two-sided, one test
per statistic, vectorised over statistics (O(d) per frame):

    e_t   = clip(z_t - mu_t, -c, c)           (an outlier adds at most c - k)
    S+_t  = max(0, S+_{t-1} + e_t - k)        alarm when S+ > h (same for S- with -e_t)

with drift k = shift / 2 and h from the false-alarm budget (``calibrate.py``).
They differ in the baseline mu: CUSUM tracks it slowly (EWMA, ``baseline_alpha``,
so a slow drift does not accumulate into an alarm); Page-Hinkley uses the running
mean since the last change. The change frame is estimated as the sample after
the sum last left zero.

With ``trend`` (the default) the CUSUM's baseline is a local line instead of a
level: Holt's linear exponential smoothing in error-correction form with Brown's
gains for discount w = 1 - baseline_alpha (level gain 1 - w^2, slope gain (1 - w)^2),
so the residual e_t is the one-step forecast error and a steady trend (or a slow
curve) leaves it centred on zero: only a change of level or of slope accumulates.
The forecast's own variance (sum of the squared weights of its linear filter on
white noise, computed once) enters the self-starting correction.

After a change (found by either detector) the baseline is re-learnt from the
samples after it; for ``holdoff`` samples the test only learns and cannot alarm.
With ``trend`` the baseline after a change (and after the warm-up) is the
least-squares line through all samples since, kept as running sums (an
expanding fit: a slope from a few samples is too uncertain to extrapolate with
Holt's small gains), with the exact extrapolation variance in the self-starting
correction, until ``2 / baseline_alpha`` samples; then Holt's smoothing takes
over from that line.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np

from wirewatch.changepoint.base import Candidate


def holt_gains(baseline_alpha: float) -> tuple[float, float]:
    """Brown's double-smoothing gains (level, slope) for discount w = 1 - baseline_alpha."""
    w = 1.0 - baseline_alpha
    return 1.0 - w * w, (1.0 - w) ** 2


@lru_cache(maxsize=32)
def holt_forecast_variance(level_gain: float, slope_gain: float, steps: int = 5000) -> float:
    """Variance of Holt's steady one-step forecast on unit white noise (sum of its squared weights)."""
    # the forecast is linear in past observations: feed a unit impulse and collect its response
    level = slope = 0.0
    total = 0.0
    x = 1.0
    for _ in range(steps):
        forecast = level + slope
        total += forecast * forecast
        error = x - forecast
        level, slope = forecast + level_gain * error, slope + slope_gain * error
        x = 0.0
    return total


class _Line:
    """Running least-squares line of one statistic over local time tau (O(1) per sample)."""

    __slots__ = ("n", "st", "stt", "stx", "sx")

    def __init__(self) -> None:
        self.n = self.st = self.stt = self.sx = self.stx = 0.0

    def add(self, tau: float, x: float) -> None:
        self.n += 1.0
        self.st += tau
        self.stt += tau * tau
        self.sx += x
        self.stx += tau * x

    def predict(self, tau: float) -> tuple[float, float, float]:
        """Value at ``tau``, its variance factor (unit noise) and the slope; n must be >= 1."""
        n = self.n
        tbar, xbar = self.st / n, self.sx / n
        stt = self.stt - n * tbar * tbar
        if n < 3 or stt <= 0.0:
            return xbar, 1.0 / n, 0.0
        slope = (self.stx - n * tbar * xbar) / stt
        return xbar + slope * (tau - tbar), 1.0 / n + (tau - tbar) ** 2 / stt, slope


class CusumTest:
    name = "cusum"

    def __init__(self, *, drift: float, threshold: float, clip: float, baseline_alpha: float,
                 holdoff: int, warmup: int, running_mean: bool = False, trend: bool = False) -> None:
        self.drift = drift
        self.threshold = threshold
        self.clip = clip
        self.baseline_alpha = baseline_alpha
        self.holdoff = holdoff
        self.warmup = warmup
        self.running_mean = running_mean
        self.trend = trend and not running_mean and baseline_alpha > 0
        self.level_gain, self.slope_gain = holt_gains(baseline_alpha)
        self.forecast_var = holt_forecast_variance(self.level_gain, self.slope_gain) if self.trend else 0.0
        self.expanding = max(8, int(2.0 / baseline_alpha)) if self.trend else 0  # samples of the LS phase
        self.start(np.zeros(1))

    def start(self, location: np.ndarray, slope: np.ndarray | None = None) -> None:
        """Fresh state; the baseline ``location`` (and ``slope``) was learnt from ``warmup`` samples."""
        # Plain lists: a handful of statistics per frame is faster in Python floats than in numpy.
        n_dims = len(location)
        self.mu = [float(v) for v in location]  # baseline in the statistic's own units
        self.slope = [0.0] * n_dims if slope is None or not self.trend else [float(v) for v in slope]
        self.count = [float(self.warmup)] * n_dims  # samples behind the baseline
        self.pos = [0.0] * n_dims
        self.neg = [0.0] * n_dims
        self.pos_zero = [0] * n_dims  # sample index after which S+ last was zero
        self.neg_zero = [0] * n_dims
        self._learning: list[np.ndarray] = []
        self._hold = 0
        self._lines = [_Line() for _ in range(n_dims)]
        self._origin = 0  # sample index of tau = 0 for the lines

    def on_change(self, index: int, post_change: np.ndarray) -> None:
        """A change was reported at sample ``index``: re-learn the baseline from the samples after it."""
        self._learning = list(np.asarray(post_change, float).reshape(-1, len(self.mu)))
        self._hold = max(0, self.holdoff - len(self._learning))
        if self.trend:
            self._origin = index
            self._lines = [_Line() for _ in self.mu]
            for tau, row in enumerate(self._learning):
                self._learn_row(index + tau, row)
            self._learning = []
        self._relearn()
        n = len(self.mu)
        self.pos, self.neg = [0.0] * n, [0.0] * n
        self.pos_zero, self.neg_zero = [index] * n, [index] * n  # two lists: each side dates its own start

    def release(self) -> None:
        """End the hold-off now: the baseline came from a short warm-up whose noise scale is known
        (a reference run, ``changepoint.reference``)."""
        self._hold = 0

    def _learn_row(self, index: int, row: np.ndarray) -> None:
        tau = float(index - self._origin)
        for j, value in enumerate(row.tolist()):
            if math.isfinite(value):
                line = self._lines[j]
                line.add(tau, value)
                self.mu[j], _, self.slope[j] = line.predict(tau)
                self.count[j] = line.n

    def _relearn(self) -> None:
        if not self._learning:
            return
        block = np.array(self._learning)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            level = np.nanmedian(block, axis=0)
        counts = np.isfinite(block).sum(axis=0)
        for j in range(len(self.mu)):
            if np.isfinite(level[j]):
                self.mu[j] = float(level[j])
                self.count[j] = float(counts[j])

    def update(self, index: int, values: np.ndarray, scale: np.ndarray) -> Candidate | None:
        """One sample (NaN = missing) with the current robust sigma per statistic."""
        if self._hold > 0:
            if self.trend:
                self._learn_row(index, np.asarray(values, float))
            else:
                self._learning.append(np.asarray(values, float))
                self._relearn()
            self._hold -= 1
            self.pos_zero = [index + 1] * len(self.mu)
            self.neg_zero = [index + 1] * len(self.mu)
            return None
        k, c, h = self.drift, self.clip, self.threshold
        alarmed: list[int] = []
        starts: list[int] = []
        sigmas = scale.tolist()
        trend = self.trend
        for j, value in enumerate(values.tolist()):
            if not math.isfinite(value):
                if trend and self._lines[j].n >= self.expanding:
                    self.mu[j] += self.slope[j]  # Holt's line goes on through a gap
                continue
            n = self.count[j]
            if trend:
                sigma = sigmas[j]
                line = self._lines[j]
                if line.n < self.expanding:  # least-squares line since the change, exact extrapolation variance
                    tau = float(index - self._origin)
                    if line.n >= 1:
                        forecast, var_f, _ = line.predict(tau)
                    else:
                        forecast, var_f = self.mu[j], 1.0
                    residual = min(max((value - forecast) / sigma, -c), c)
                    e = residual / math.sqrt(1.0 + var_f)
                    # the line learns only in-control samples: while a sum builds up (half-way to the threshold)
                    # it would tilt towards a new level and hide it; clipped: one outlier cannot tilt it either
                    if max(self.pos[j] + e - k, self.neg[j] - e - k) < 0.5 * h:
                        line.add(tau, forecast + residual * sigma)
                    self.mu[j], _, self.slope[j] = line.predict(tau)
                else:  # Holt, started from that line
                    forecast = self.mu[j] + self.slope[j]
                    residual = min(max((value - forecast) / sigma, -c), c)
                    e = residual / math.sqrt(1.0 + self.forecast_var)
                    self.mu[j] = forecast + self.level_gain * residual * sigma
                    self.slope[j] += self.slope_gain * residual * sigma
            elif self.running_mean or n * self.baseline_alpha < 1.0:
                alpha, var_mu = 1.0 / (n + 1.0), 1.0 / max(n, 1.0)
            else:
                alpha, var_mu = self.baseline_alpha, self.baseline_alpha / (2.0 - self.baseline_alpha)
            if not trend:
                sigma = sigmas[j]
                residual = min(max((value - self.mu[j]) / sigma, -c), c)
                # self-starting: the residual against an estimated baseline has variance 1 + var(mu)
                e = residual / math.sqrt(1.0 + var_mu)
                self.mu[j] += alpha * residual * sigma
            pos = max(0.0, self.pos[j] + e - k)
            neg = max(0.0, self.neg[j] - e - k)
            if pos == 0.0:
                self.pos_zero[j] = index + 1
            if neg == 0.0:
                self.neg_zero[j] = index + 1
            self.pos[j], self.neg[j] = pos, neg
            self.count[j] = n + 1.0
            if pos > h:
                alarmed.append(j)
                starts.append(self.pos_zero[j])
            elif neg > h:
                alarmed.append(j)
                starts.append(self.neg_zero[j])
        if not alarmed:
            return None
        return Candidate(index=min(min(starts), index), detector=self.name, columns=tuple(alarmed))


class PageHinkleyTest(CusumTest):
    """CUSUM whose baseline is the running mean since the last change (Page-Hinkley)."""

    name = "page-hinkley"

    def __init__(self, *, drift: float, threshold: float, clip: float, baseline_alpha: float,
                 holdoff: int, warmup: int, running_mean: bool = True, trend: bool = False) -> None:
        super().__init__(drift=drift, threshold=threshold, clip=clip, baseline_alpha=baseline_alpha,
                         holdoff=holdoff, warmup=warmup, running_mean=True)


ONLINE_TESTS: dict[str, type[CusumTest]] = {"cusum": CusumTest, "page-hinkley": PageHinkleyTest}
