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

The stream's own history (``noise_inflation``): both rules above assume independent,
Gaussian, trend-free noise after robust scaling. Real statistics are autocorrelated,
skewed or curved, and then a change-free window splits with a larger gain than noise
would give. Every few frames the detector block-bootstraps the residuals of its recent
window (lines or means between reported changes; blocks of ``BOOT_BLOCK`` rows keep the
autocorrelation and the correlation between statistics) and compares the ``BOOT_QUANTILE``
quantile of the largest split gain with the same quantile on independent noise. Their
ratio (at least 1) multiplies the penalty; its square root multiplies the noise scale the
online tests use. A bootstrap cannot reach the 1e-4 tails the budget needs, so it measures
this inflation at a moderate quantile and the noise simulation supplies the tail.
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


def _max_gain_linear(windows: np.ndarray, min_size: int, jump: int) -> np.ndarray:
    """Largest single-split gain of the piecewise-linear cost per window, vectorised. windows: (N, W, d)."""
    n = windows.shape[1]
    t_all = np.arange(n, dtype=float)
    zero = np.zeros((windows.shape[0], 1, windows.shape[2]))
    sx = np.concatenate([zero, np.cumsum(windows, axis=1)], axis=1)  # (N, W+1, d)
    stx = np.concatenate([zero, np.cumsum(t_all[None, :, None] * windows, axis=1)], axis=1)
    t = _split_positions(n, max(min_size, 3), jump)

    def explained(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
        """Sum of squares a line explains on [a, b) (the part of the cost that depends on the split)."""
        a_arr, b_arr = np.broadcast_arrays(np.asarray(a), np.asarray(b))
        m = (b_arr - a_arr).astype(float)
        s_x = sx[:, b_arr, :] - sx[:, a_arr, :]
        tbar = 0.5 * (a_arr + b_arr - 1)
        s_tx = stx[:, b_arr, :] - stx[:, a_arr, :] - tbar[None, :, None] * s_x
        stt = m * (m * m - 1) / 12.0
        return np.asarray((s_x**2).sum(axis=2) / m[None, :] + (s_tx**2).sum(axis=2) / stt[None, :])

    whole = explained(np.array([0]), np.array([n]))  # (N, 1)
    gain = explained(np.zeros_like(t), t) + explained(t, np.full_like(t, n)) - whole
    return np.asarray(gain.max(axis=1))


def max_gains(windows: np.ndarray, cost: str, min_size: int, jump: int) -> np.ndarray:
    """Largest single-split gain per window for the vectorised costs (``l2``, ``linear``)."""
    if cost == "linear":
        return _max_gain_linear(windows, min_size, jump)
    return _max_gain_l2(windows, min_size, jump)


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
    if cost in ("l2", "linear"):
        # about 2e7 simulated values at most (40 statistics: 5000 windows); the tail fit reaches further
        cap = int(min(20000, max(2000, 2e7 // (window * n_dims))))
        n_sim = int(min(max(50.0 / alpha_run, 2000), cap))
        maxima = []
        chunk = max(1, 2_000_000 // (window * n_dims))
        for start in range(0, n_sim, chunk):
            windows = rng.standard_normal((min(chunk, n_sim - start), window, n_dims))
            if method == "window" and cost == "l2":
                maxima.append(_max_window_score_l2(windows, width, jump))
            else:
                maxima.append(max_gains(windows, cost, min_size, jump))
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


BOOT_BLOCK = 10  # rows per bootstrap block: keeps the short-range autocorrelation of the residuals
BOOT_SAMPLES = 120  # bootstrap windows per calibration
BOOT_QUANTILE = 0.75  # where the bootstrap and the noise simulation are compared
MAX_INFLATION = 1e4  # a smooth curve with almost no noise can need a penalty this many times the noise one


@lru_cache(maxsize=64)
def _noise_quantile(cost: str, n_dims: int, window: int, min_size: int, jump: int) -> float:
    rng = np.random.default_rng(SIM_SEED + 1)
    n_sim = int(min(2000, max(300, 4e6 // (window * n_dims))))  # the 0.75 quantile needs few windows
    gains = max_gains(rng.standard_normal((n_sim, window, n_dims)), cost, min_size, jump)
    return float(np.quantile(gains, BOOT_QUANTILE))


def noise_inflation(residuals: np.ndarray, *, cost: str, window: int, min_size: int, jump: int,
                    rng: np.random.Generator) -> float | None:
    """How much larger than on independent unit noise the split gains of these residuals are (>= 1).

    ``residuals``: (m, d) rows of a change-free stretch in robust-sigma units (trend or mean
    removed). Returns None when there are too few rows to bootstrap (< 3 blocks).
    """
    m, d = residuals.shape
    if m < 3 * BOOT_BLOCK or cost not in ("l2", "linear"):
        return None
    n_blocks = -(-window // BOOT_BLOCK)
    starts = rng.integers(0, m - BOOT_BLOCK + 1, size=(BOOT_SAMPLES, n_blocks))
    rows = (starts[:, :, None] + np.arange(BOOT_BLOCK)[None, None, :]).reshape(BOOT_SAMPLES, -1)[:, :window]
    gains = max_gains(residuals[rows], cost, min_size, jump)
    ratio = float(np.quantile(gains, BOOT_QUANTILE)) / _noise_quantile(cost, d, window, min_size, jump)
    return min(max(ratio, 1.0), MAX_INFLATION)
