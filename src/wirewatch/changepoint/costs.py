"""Segment costs for the windowed search, as ruptures cost classes.

``l2`` and ``normal`` give the same values as ruptures' ``CostL2`` / ``CostNormal``
(up to the covariance bias) but from cumulative sums, so one ``error(start, end)``
is O(d) instead of O(segment length): the windowed search is re-run every few
frames and must stay well under a millisecond per frame. ``rbf`` is ruptures' own
``CostRbf`` (kernel; slower, catches changes in distribution, not only in mean).
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


COSTS: dict[str, Callable[[], BaseCost]] = {
    "l2": CostL2Cumsum,
    "normal": CostNormalCumsum,
    "rbf": CostRbf,
}


def make_cost(name: str) -> BaseCost:
    try:
        return COSTS[name]()
    except KeyError:
        raise ValueError(f"unknown cost {name!r}; known: {', '.join(COSTS)}") from None
