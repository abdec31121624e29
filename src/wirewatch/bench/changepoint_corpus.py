"""A corpus of messy, real-like series with known change points, for the TCPDBench-style scores.

Each family imitates something real streams carry (in-situ statistics, or the
economic / environmental / quality-control series of TCPDBench): steady trends,
smooth growth curves, trend changes, seasonality, drifts, autocorrelation,
heavy-tailed outliers, gaps, variance changes and short series. Values are
generated from a seed, so the corpus is the same on every machine and never
downloaded. ``corpus(quick)`` returns ``EvalStream`` objects whose ``truth`` holds
the change points (one annotator).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from wirewatch.changepoint.evaluate import EvalStream

STATS = ("a", "b", "c")  # in-situ-like families: three statistics, one or more move at a change


def _stream(name: str, values: np.ndarray, truth: list[int]) -> EvalStream:
    values = np.asarray(values, float)
    if values.ndim == 1:
        values = values[:, None]
    names = STATS[: values.shape[1]] if values.shape[1] > 1 else ("x",)
    return EvalStream(name=name, frames=np.arange(len(values)), stats={n: values[:, j] for j, n in enumerate(names)},
                      truth=tuple(sorted(truth)))


def _noise(rng: np.random.Generator, shape: tuple[int, ...], kind: str = "normal") -> np.ndarray:
    if kind == "t3":
        return rng.standard_t(3, size=shape) / np.sqrt(3.0)
    return rng.standard_normal(shape)


def _outliers(rng: np.random.Generator, x: np.ndarray, rate: float) -> np.ndarray:
    hit = rng.random(x.shape) < rate
    return np.where(hit, x + rng.choice([-1.0, 1.0], x.shape) * rng.uniform(6, 12, x.shape), x)


def trend_no_change(seed: int, n: int = 2000) -> EvalStream:
    """In-situ: wires growing steadily (a linear trend of several sigma), noise, 1 % outliers, 2 % gaps."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    slopes = rng.uniform(-0.02, 0.02, size=(1, 3))
    x = 10 + slopes * t + _outliers(rng, _noise(rng, (n, 3)), 0.01)
    x[rng.random(n) < 0.02] = np.nan
    return _stream(f"trend-free-{seed}", x, [])


def smooth_growth(seed: int, n: int = 300) -> EvalStream:
    """A logistic growth curve with little noise (like a population series): no change."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 100 / (1 + np.exp(-(t - n * rng.uniform(0.3, 0.7)) / (n / rng.uniform(4, 8)))) + 0.3 * _noise(rng, (n,))
    return _stream(f"growth-{seed}", x, [])


def slope_changes(seed: int, n: int = 600) -> EvalStream:
    """Piecewise-linear trends (continuous kinks) in two of three statistics, noise, outliers."""
    rng = np.random.default_rng(seed)
    cps = sorted(rng.choice(np.arange(120, n - 120, 10), size=2, replace=False).tolist())
    while cps[1] - cps[0] < 120:
        cps = sorted(rng.choice(np.arange(120, n - 120, 10), size=2, replace=False).tolist())
    x = _noise(rng, (n, 3))
    for j in range(2):
        slope = rng.uniform(-0.01, 0.01)
        level = 0.0
        trend = np.empty(n)
        bounds = [0, *cps, n]
        for a, b in itertools.pairwise(bounds):
            trend[a:b] = level + slope * np.arange(b - a)
            level = trend[b - 1] + slope
            slope += rng.choice([-1, 1]) * rng.uniform(0.05, 0.1)
        x[:, j] += trend
    return _stream(f"slope-{seed}", _outliers(rng, x, 0.005), cps)


def steps_on_trend(seed: int, n: int = 600) -> EvalStream:
    """Level steps (1.5-3 sigma) on a steady trend, 1 % outliers, 3 % gaps."""
    rng = np.random.default_rng(seed)
    cps = sorted(rng.choice(np.arange(100, n - 60, 10), size=3, replace=False).tolist())
    while min(np.diff(cps)) < 80:
        cps = sorted(rng.choice(np.arange(100, n - 60, 10), size=3, replace=False).tolist())
    t = np.arange(n)[:, None]
    x = rng.uniform(-0.01, 0.01, size=(1, 3)) * t + _noise(rng, (n, 3))
    for c in cps:
        j = rng.integers(3)
        x[c:, j] += rng.choice([-1, 1]) * rng.uniform(1.5, 3.0)
    x = _outliers(rng, x, 0.01)
    x[rng.random(n) < 0.03] = np.nan
    return _stream(f"steps-trend-{seed}", x, cps)


def seasonal(seed: int, n: int = 240, change: bool = True) -> EvalStream:
    """A monthly-like series: period 12, a trend, optionally one level shift (like passenger counts)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 0.02 * t + 1.5 * np.sin(2 * np.pi * t / 12) + _noise(rng, (n,))
    truth = []
    if change:
        c = int(rng.integers(n // 3, 2 * n // 3))
        x[c:] += rng.choice([-1, 1]) * 4.0
        truth = [c]
    return _stream(f"seasonal-{seed}{'' if change else '-free'}", x, truth)


def autocorrelated(seed: int, n: int = 500) -> EvalStream:
    """AR(1) noise (phi 0.6, like economic or environmental data) with one 4-sigma level shift."""
    rng = np.random.default_rng(seed)
    e = _noise(rng, (n,))
    x = np.empty(n)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = 0.6 * x[i - 1] + e[i]
    c = int(rng.integers(n // 3, 2 * n // 3))
    x[c:] += rng.choice([-1, 1]) * 4.0 * x.std()
    return _stream(f"ar1-{seed}", x, [c])


def heavy_tails(seed: int, n: int = 400) -> EvalStream:
    """Student-t (3 dof) noise with 2 % large outliers, one 2-sigma step (quality-control like)."""
    rng = np.random.default_rng(seed)
    x = _outliers(rng, _noise(rng, (n,), "t3"), 0.02)
    c = int(rng.integers(n // 3, 2 * n // 3))
    x[c:] += rng.choice([-1, 1]) * 2.0
    return _stream(f"heavy-{seed}", x, [c])


def variance_change(seed: int, n: int = 500) -> EvalStream:
    """The noise sd triples at one point, the mean stays."""
    rng = np.random.default_rng(seed)
    x = _noise(rng, (n,))
    c = int(rng.integers(n // 3, 2 * n // 3))
    x[c:] *= 3.0
    return _stream(f"variance-{seed}", x, [c])


def short(seed: int) -> EvalStream:
    """A short series (30-60 points, like a yearly record) with one 3-sigma step, 5 % gaps."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 61))
    x = _noise(rng, (n,)) + 0.02 * np.arange(n)
    c = int(rng.integers(12, n - 10))
    x[c:] += rng.choice([-1, 1]) * 3.0
    x[rng.random(n) < 0.05] = np.nan
    return _stream(f"short-{seed}", x, [c])


FAMILIES: dict[str, Callable[[int], EvalStream]] = {
    "trend, no change (2000 frames, outliers, gaps)": trend_no_change,
    "smooth growth curve, no change": smooth_growth,
    "slope changes (kinks)": slope_changes,
    "level steps on a trend (outliers, gaps)": steps_on_trend,
    "seasonal + trend, one level shift": seasonal,
    "seasonal + trend, no change": lambda s: seasonal(s, change=False),
    "AR(1) noise, one level shift": autocorrelated,
    "heavy tails + outliers, one step": heavy_tails,
    "variance change": variance_change,
    "short series (30-60 points)": short,
}


def corpus(quick: bool = False) -> dict[str, list[EvalStream]]:
    """Family name -> its streams (seeds 0..k-1; ``quick``: fewer)."""
    per = 2 if quick else 6
    return {name: [make(1000 * i + s) for s in range(per)] for i, (name, make) in enumerate(FAMILIES.items())}
