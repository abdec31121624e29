"""Decision thresholds derived from a target false-alarm rate, not magic constants.

Windowed search (ruptures): a run reports a break when splitting the window
lowers the total cost by more than the penalty. On change-free data the largest
such gain is a random variable; we simulate it on standard normal noise of the
same shape (the detector feeds robust-standardised data, see ``robust.py``) and
take the penalty as its ``1 - alpha_run`` quantile, alpha_run = target false
alarms per frame * frames between runs. Very small alpha_run are reached by
fitting an exponential tail to the top of the simulated maxima (conservative
for chi-square-like maxima). Results are cached per shape.

Online test (CUSUM / Page-Hinkley): Siegmund's approximation of the in-control
average run length of a one-sided CUSUM with drift k and threshold h on unit
variance data, ARL0 = (exp(2 k b) - 2 k b - 1) / (2 k^2) with b = h + 1.166,
solved for h so that the 2 sides x n statistics together stay within budget.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import ruptures as rpt
from scipy.optimize import brentq

from wirewatch.changepoint.costs import make_cost

SIM_SEED = 20240611  # fixed: the same config always gives the same thresholds


def _split_positions(n: int, min_size: int, jump: int) -> np.ndarray:
    return np.array([t for t in range(jump, n, jump) if min_size <= t <= n - min_size], int)


def _max_gain_l2(windows: np.ndarray, min_size: int, jump: int) -> np.ndarray:
    """Largest single-split gain of the l2 cost per window, vectorised. windows: (N, W, d)."""
    n = windows.shape[1]
    cs = np.cumsum(windows, axis=1)
    total = cs[:, -1, :]
    t = _split_positions(n, min_size, jump)
    left = cs[:, t - 1, :]
    mean_diff = left / t[None, :, None] - (total[:, None, :] - left) / (n - t)[None, :, None]
    gain = (t * (n - t) / n)[None, :] * np.einsum("ntd,ntd->nt", mean_diff, mean_diff)
    return np.asarray(gain.max(axis=1))


def _max_window_score_l2(windows: np.ndarray, width: int, jump: int) -> np.ndarray:
    """Largest ruptures ``Window`` score (l2) per window, vectorised."""
    n = windows.shape[1]
    half = width // 2
    cs = np.concatenate([np.zeros((windows.shape[0], 1, windows.shape[2])), np.cumsum(windows, axis=1)], axis=1)
    centres = np.array([k for k in range(0, n, jump) if half <= k < n - half], int)
    left = (cs[:, centres, :] - cs[:, centres - half, :]) / half
    right = (cs[:, centres + half, :] - cs[:, centres, :]) / half
    diff = left - right
    return np.asarray((half / 2.0) * np.einsum("ntd,ntd->nt", diff, diff)).max(axis=1)


def _max_gain_generic(window: np.ndarray, cost_name: str, method: str, min_size: int, jump: int,
                      width: int) -> float:
    if method == "window":
        algo = rpt.Window(width=width, custom_cost=make_cost(cost_name), min_size=min_size, jump=jump).fit(window)
        return float(np.max(algo.score)) if len(algo.score) else 0.0
    cost = make_cost(cost_name).fit(window)
    n = window.shape[0]
    whole = cost.error(0, n)
    return max((whole - cost.error(0, t) - cost.error(t, n) for t in _split_positions(n, min_size, jump)),
               default=0.0)


def _upper_quantile(samples: np.ndarray, alpha: float) -> float:
    """The 1 - alpha quantile; beyond the samples' reach, an exponential tail fitted to the top."""
    samples = np.sort(np.asarray(samples, float))
    n = samples.size
    if alpha * n >= 20:
        return float(np.quantile(samples, 1.0 - alpha))
    p_u = min(0.1, max(20.0 * alpha, 200.0 / n))
    u = float(np.quantile(samples, 1.0 - p_u))
    excess = samples[samples > u] - u
    beta = float(excess.mean()) if excess.size else 1.0
    return u + beta * math.log(p_u / alpha)


@lru_cache(maxsize=64)
def windowed_penalty(*, cost: str, method: str, n_dims: int, window: int, min_size: int, jump: int,
                     width: int, alpha_run: float) -> float:
    """Penalty such that a change-free window yields a break with probability ~ ``alpha_run``."""
    rng = np.random.default_rng(SIM_SEED)
    if cost == "l2":
        n_sim = int(min(max(50.0 / alpha_run, 2000), 20000))
        maxima = []
        chunk = max(1, 2_000_000 // (window * n_dims))
        for start in range(0, n_sim, chunk):
            windows = rng.standard_normal((min(chunk, n_sim - start), window, n_dims))
            if method == "window":
                maxima.append(_max_window_score_l2(windows, width, jump))
            else:
                maxima.append(_max_gain_l2(windows, min_size, jump))
        samples = np.concatenate(maxima)
    else:  # cost-generic, slower: fewer samples, rely on the tail fit
        n_sim = 600 if cost == "rbf" else 1500
        samples = np.array([_max_gain_generic(rng.standard_normal((window, n_dims)), cost, method, min_size,
                                              jump, width) for _ in range(n_sim)])
    return max(_upper_quantile(samples, alpha_run), 1e-6)


def cusum_arl(h: float, k: float) -> float:
    """Siegmund's in-control average run length of a one-sided CUSUM (unit variance)."""
    b = h + 1.166
    x = min(2.0 * k * b, 700.0)  # exp overflow guard; such ARLs are astronomically long anyway
    return (math.exp(x) - x - 1.0) / (2.0 * k * k)


def cusum_threshold(*, drift: float, n_dims: int, rate_per_frame: float) -> float:
    """Threshold h so that 2 sides x ``n_dims`` CUSUMs give ~ ``rate_per_frame`` false alarms per frame."""
    target_arl = 2.0 * n_dims / rate_per_frame
    return float(brentq(lambda h: cusum_arl(h, drift) - target_arl, 1e-3, 1e3))
