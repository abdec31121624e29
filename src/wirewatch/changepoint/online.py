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

After a change (found by either detector) the baseline is re-learnt from the
samples after it; for ``holdoff`` samples the test only learns and cannot alarm.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from wirewatch.changepoint.base import Candidate


class CusumTest:
    name = "cusum"

    def __init__(self, *, drift: float, threshold: float, clip: float, baseline_alpha: float,
                 holdoff: int, warmup: int, running_mean: bool = False) -> None:
        self.drift = drift
        self.threshold = threshold
        self.clip = clip
        self.baseline_alpha = baseline_alpha
        self.holdoff = holdoff
        self.warmup = warmup
        self.running_mean = running_mean
        self.start(np.zeros(1))

    def start(self, location: np.ndarray) -> None:
        """Fresh state; the baseline ``location`` was learnt from ``warmup`` samples."""
        # Plain lists: a handful of statistics per frame is faster in Python floats than in numpy.
        n_dims = len(location)
        self.mu = [float(v) for v in location]  # baseline in the statistic's own units
        self.count = [float(self.warmup)] * n_dims  # samples behind the baseline
        self.pos = [0.0] * n_dims
        self.neg = [0.0] * n_dims
        self.pos_zero = [0] * n_dims  # sample index after which S+ last was zero
        self.neg_zero = [0] * n_dims
        self._learning: list[np.ndarray] = []
        self._hold = 0

    def on_change(self, index: int, post_change: np.ndarray) -> None:
        """A change was reported at sample ``index``: re-learn the baseline from the samples after it."""
        self._learning = list(np.asarray(post_change, float).reshape(-1, len(self.mu)))
        self._hold = max(0, self.holdoff - len(self._learning))
        self._relearn()
        n = len(self.mu)
        self.pos, self.neg = [0.0] * n, [0.0] * n
        self.pos_zero, self.neg_zero = [index] * n, [index] * n  # two lists: each side dates its own start

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
        for j, value in enumerate(values.tolist()):
            if not math.isfinite(value):
                continue
            n = self.count[j]
            if self.running_mean or n * self.baseline_alpha < 1.0:
                alpha, var_mu = 1.0 / (n + 1.0), 1.0 / max(n, 1.0)
            else:
                alpha, var_mu = self.baseline_alpha, self.baseline_alpha / (2.0 - self.baseline_alpha)
            sigma = sigmas[j]
            residual = min(max((value - self.mu[j]) / sigma, -c), c)
            # self-starting: the residual against an estimated baseline has variance 1 + var(mu)
            e = residual / math.sqrt(1.0 + var_mu)
            pos = max(0.0, self.pos[j] + e - k)
            neg = max(0.0, self.neg[j] - e - k)
            if pos == 0.0:
                self.pos_zero[j] = index + 1
            if neg == 0.0:
                self.neg_zero[j] = index + 1
            self.pos[j], self.neg[j] = pos, neg
            self.mu[j] += alpha * residual * sigma
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
                 holdoff: int, warmup: int, running_mean: bool = True) -> None:
        super().__init__(drift=drift, threshold=threshold, clip=clip, baseline_alpha=baseline_alpha,
                         holdoff=holdoff, warmup=warmup, running_mean=True)


ONLINE_TESTS: dict[str, type[CusumTest]] = {"cusum": CusumTest, "page-hinkley": PageHinkleyTest}
