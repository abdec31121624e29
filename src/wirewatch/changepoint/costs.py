"""Segment costs for the windowed search, as ruptures cost classes.

``l2`` and ``normal`` give the same values as ruptures' ``CostL2`` / ``CostNormal``
(up to the covariance bias) but from cumulative sums, so one ``error(start, end)``
is O(d) instead of O(segment length): the windowed search is re-run every few
frames and must stay well under a millisecond per frame. ``rbf`` is ruptures' own
``CostRbf`` (kernel; slower, catches changes in distribution, not only in mean).

``linear`` is the squared residual of a least-squares line per segment and statistic
(piecewise linear, discontinuous): a steady trend costs nothing to keep in one segment,
so only a change of level or of slope pays for a break. ruptures' ``CostLinear`` needs
a design matrix and ``CostCLinear`` (continuous) is O(segment) per call; ours is O(d)
from cumulative sums of t, t^2, x, t x and x^2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ruptures.base import BaseCost
from ruptures.costs import CostRbf

# Added to each segment covariance (unit: robust variance) so a constant segment has a finite cost.
NORMAL_COV_BIAS = 1e-2


def _as_2d(signal: np.ndarray) -> np.ndarray:
    signal = np.asarray(signal, float)
    return signal.reshape(-1, 1) if signal.ndim == 1 else signal


class CostL2Cumsum(BaseCost):
    """Sum of squared deviations from the segment mean (change in mean)."""

    model = "l2"
    min_size = 1

    def __init__(self) -> None:
        self.signal: np.ndarray = np.zeros((0, 1))
        self._sum = np.zeros((1, 1))
        self._sq: list[float] = [0.0]

    def fit(self, signal: np.ndarray) -> CostL2Cumsum:
        x = _as_2d(signal)
        self.signal = x
        self._sum = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
        self._sq = np.concatenate([[0.0], np.cumsum(np.einsum("ij,ij->i", x, x))]).tolist()
        return self

    def error(self, start: int, end: int) -> float:
        d = self._sum[end] - self._sum[start]
        return self._sq[end] - self._sq[start] - float(d @ d) / (end - start)


class CostNormalCumsum(BaseCost):
    """Gaussian negative log-likelihood with segment mean and covariance (change in mean or spread)."""

    model = "normal"
    min_size = 2

    def __init__(self) -> None:
        self.signal: np.ndarray = np.zeros((0, 1))
        self._sum = np.zeros((1, 1))
        self._outer = np.zeros((1, 1, 1))

    def fit(self, signal: np.ndarray) -> CostNormalCumsum:
        x = _as_2d(signal)
        self.signal = x
        d = x.shape[1]
        self._sum = np.vstack([np.zeros((1, d)), np.cumsum(x, axis=0)])
        self._outer = np.concatenate([np.zeros((1, d, d)), np.cumsum(x[:, :, None] * x[:, None, :], axis=0)])
        self._eye = NORMAL_COV_BIAS * np.eye(d)
        return self

    def error(self, start: int, end: int) -> float:
        n = end - start
        mean = (self._sum[end] - self._sum[start]) / n
        cov = (self._outer[end] - self._outer[start]) / n - np.outer(mean, mean) + self._eye
        _, logdet = np.linalg.slogdet(cov)
        return float(n * logdet)


class CostLinearCumsum(BaseCost):
    """Sum of squared residuals of a least-squares line per segment (change in level or slope)."""

    model = "linear"
    min_size = 3

    def __init__(self) -> None:
        self.signal: np.ndarray = np.zeros((0, 1))
        self._sx = np.zeros((1, 1))
        self._stx = np.zeros((1, 1))
        self._sxx: list[float] = [0.0]

    def fit(self, signal: np.ndarray) -> CostLinearCumsum:
        x = _as_2d(signal)
        self.signal = x
        t = np.arange(len(x), dtype=float)
        zero = np.zeros((1, x.shape[1]))
        self._sx = np.vstack([zero, np.cumsum(x, axis=0)])
        self._stx = np.vstack([zero, np.cumsum(t[:, None] * x, axis=0)])
        self._sxx = np.concatenate([[0.0], np.cumsum(np.einsum("ij,ij->i", x, x))]).tolist()
        return self

    def error(self, start: int, end: int) -> float:
        n = end - start
        sx = self._sx[end] - self._sx[start]
        if n < 3:  # two points lie on a line; one point too
            return 0.0
        # centred sums; t runs over start..end-1: mean (start+end-1)/2, sum of squares n(n^2-1)/12
        tbar = 0.5 * (start + end - 1)
        stt = n * (n * n - 1) / 12.0
        stx = self._stx[end] - self._stx[start] - tbar * sx
        return float(self._sxx[end] - self._sxx[start] - float(sx @ sx) / n - float(stx @ stx) / stt)


COSTS: dict[str, Callable[[], BaseCost]] = {
    "linear": CostLinearCumsum,
    "l2": CostL2Cumsum,
    "normal": CostNormalCumsum,
    "rbf": CostRbf,
}


def make_cost(name: str) -> BaseCost:
    try:
        return COSTS[name]()
    except KeyError:
        raise ValueError(f"unknown cost {name!r}; known: {', '.join(COSTS)}") from None
