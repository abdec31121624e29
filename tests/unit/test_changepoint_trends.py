"""Issue 38: trends are not alarms; level / slope / variance kinds; BOCPD against a naive reference;
outliers, gaps and short series for each detector; the TCPDBench scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import gammaln

from wirewatch.changepoint import ChangepointConfig, build_detector
from wirewatch.changepoint.bocpd import BocpdParams, BocpdState
from wirewatch.changepoint.evaluate import covering, tcpd_f1

STATS = ["a", "b", "c"]
DETECTORS = {
    "default": {},
    "bocpd": {"online": {"method": "bocpd"}},
    "linear-only": {"online": {"enabled": False}},
}


def _feed(config: dict, values: np.ndarray) -> list:
    detector = build_detector(ChangepointConfig.model_validate({"stats": STATS, **config}))
    events = []
    for i, row in enumerate(values):
        events.extend(detector.update(i, dict(zip(STATS, row.tolist(), strict=True))))
    return events


def _trend(n: int, seed: int, outliers: float = 0.0, gaps: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 50.0 + np.array([0.01, -0.015, 0.005]) * np.arange(n)[:, None] + rng.standard_normal((n, 3))
    if outliers:
        hit = rng.random(x.shape) < outliers
        x[hit] += rng.choice([-1.0, 1.0], hit.sum()) * rng.uniform(6, 12, hit.sum())
    if gaps:
        x[rng.random(n) < gaps] = np.nan
    return x


@pytest.mark.parametrize("name", ["default", "linear-only"])
def test_a_steady_trend_with_outliers_and_gaps_raises_at_most_two_alarms_in_2000_frames(name: str) -> None:
    events = _feed(DETECTORS[name], _trend(2000, 1, outliers=0.01, gaps=0.02))
    assert len(events) <= 2, [(e.frame, e.detector, e.kind) for e in events]


def test_the_issue_6_detector_fires_on_that_trend() -> None:
    """What issue 38 is about: a constant-mean detector reads a trend as a string of changes."""
    old = {"windowed": {"cost": "l2"}, "online": {"trend": False}, "calibration": {"enabled": False}}
    assert len(_feed(old, _trend(2000, 1, outliers=0.01, gaps=0.02))) > 5


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_level_step_on_a_trend_is_found_as_a_level_change(name: str) -> None:
    x = _trend(400, 2, outliers=0.01, gaps=0.03)
    x[250:, 1] += 4.0
    events = _feed(DETECTORS[name], x)
    near = [e for e in events if abs(e.frame - 250) <= 5]
    assert len(near) == 1 and near[0].kind == "level" and "b" in near[0].statistics, events
    assert len(events) <= 2
    assert near[0].penalty > 0 and math.isfinite(near[0].penalty)


@pytest.mark.parametrize("name", ["default", "linear-only"])
def test_a_slope_change_is_found_as_a_slope_change(name: str) -> None:
    x = _trend(500, 3)
    x[250:, 0] += 0.1 * np.arange(250)  # a kink: continuous, the slope changes by 0.1 sigma per frame
    events = _feed(DETECTORS[name], x)
    if name == "linear-only":
        near = [e for e in events if abs(e.frame - 250) <= 15]
        assert len(near) == 1 and near[0].kind == "slope", [(e.frame, e.kind) for e in events]
    else:  # the trend CUSUM warns early; it dates a kink by a level split, some frames late
        near = [e for e in events if abs(e.frame - 250) <= 20]
        assert len(near) == 1, [(e.frame, e.kind) for e in events]
    assert len(events) == 1 and "a" in near[0].statistics


def test_bocpd_finds_a_sharp_slope_change() -> None:
    x = _trend(400, 4)
    x[200:, 2] += 0.4 * np.arange(200)
    events = _feed(DETECTORS["bocpd"], x)
    assert any(abs(e.frame - 200) <= 10 and "c" in e.statistics for e in events), events


def test_a_variance_change_is_named_so() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((600, 3))
    x[300:, 0] *= 4.0
    events = _feed({"windowed": {"cost": "normal", "jump": 4}, "online": {"enabled": False}}, x)
    assert any(abs(e.frame - 300) <= 10 and e.kind == "variance" for e in events), \
        [(e.frame, e.kind, e.statistics) for e in events]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_short_series_with_gaps(name: str) -> None:
    """A 60-frame series (warm-up 20) with 5 % gaps: the step at 30 is found, nothing else."""
    rng = np.random.default_rng(6)
    x = 5.0 + rng.standard_normal((60, 3))
    x[30:, 0] += 6.0
    x[rng.random(60) < 0.05] = np.nan
    events = _feed({**DETECTORS[name], "warmup": 20}, x)
    assert [abs(e.frame - 30) <= 3 for e in events] == [True], [(e.frame, e.detector) for e in events]


def _naive_bocpd(x: np.ndarray, p: BocpdParams) -> np.ndarray:
    """Adams & MacKay without pruning, each run's posterior refitted from its raw values (no sums)."""
    pa, pb = 1 / p.level_sd**2, 1 / p.slope_sd**2
    h = 1 / p.expected_run
    # the state after the first value: one run; its reference line is that value's prior, o = 0, s = 0
    runs = [(0.0, [x[0]], 0.0, 0.0)]  # (log prob, values, offset, offset slope)
    for value in x[1:]:
        logs = []
        preds = []
        for logp, vals, off, offs in runs:
            n = len(vals)
            tau = np.arange(n, dtype=float)
            y = np.array(vals) - (off + offs * tau)
            design = np.column_stack([np.ones(n), tau])
            lam = np.diag([pa, pb]) + design.T @ design
            mean = np.linalg.solve(lam, design.T @ y)
            an = p.a0 + n / 2
            cn = p.c0 + 0.5 * (y @ y - mean @ (design.T @ y))
            u = np.array([1.0, n])
            loc = off + offs * n + u @ mean
            s2 = cn / an * (1 + u @ np.linalg.solve(lam, u))
            dof = 2 * an
            lp = (gammaln((dof + 1) / 2) - gammaln(dof / 2) - 0.5 * np.log(dof * np.pi * s2)
                  - (dof + 1) / 2 * np.log1p((value - loc) ** 2 / s2 / dof))
            preds.append((loc, mean[1] + offs))
            logs.append(logp + lp)
        best = int(np.argmax([r[0] for r in runs]))
        ref, ref_slope = preds[best]
        s2_prior = p.c0 / p.a0 * (1 + p.level_sd**2)
        dof0 = 2 * p.a0
        lp0 = (gammaln((dof0 + 1) / 2) - gammaln(dof0 / 2) - 0.5 * np.log(dof0 * np.pi * s2_prior)
               - (dof0 + 1) / 2 * np.log1p((value - ref) ** 2 / s2_prior / dof0))
        total = np.logaddexp.reduce(logs)
        new = [(total + math.log(h) + lp0, [value], ref, ref_slope)]
        new += [(lg + math.log1p(-h), [*vals, value], off, offs) for lg, (_, vals, off, offs) in zip(logs, runs,
                                                                                                      strict=True)]
        norm = np.logaddexp.reduce([r[0] for r in new])
        runs = [(lg - norm, vals, off, offs) for lg, vals, off, offs in new]
    out = np.full(len(x), -np.inf)
    for lg, vals, _, _ in runs:
        out[len(vals) - 1] = lg
    return out


def test_bocpd_matches_the_naive_unpruned_recursion() -> None:
    rng = np.random.default_rng(7)
    x = np.r_[rng.standard_normal(25), rng.standard_normal(20) + 3.0 + 0.1 * np.arange(20)]
    params = BocpdParams(max_run=len(x), clip=0.0)  # nothing pruned, nothing winsorised
    state = BocpdState(params, 1)
    for value in x:
        state.update(np.array([value]))
    naive = _naive_bocpd(x, params)
    ours = state.logp[0]
    finite = naive > -700
    assert np.allclose(np.exp(ours[finite]), np.exp(naive[finite]), atol=1e-9)
    assert int(np.argmax(ours)) == int(np.argmax(naive))


def test_bocpd_memory_and_time_are_bounded_by_max_run() -> None:
    params = BocpdParams(max_run=30)
    state = BocpdState(params, 2)
    rng = np.random.default_rng(8)
    for _ in range(200):
        state.update(rng.standard_normal(2))
    assert state.logp.shape == (2, 30)
    assert np.isclose(np.exp(state.logp).sum(axis=1), 1.0).all()


def test_tcpd_f1_and_covering_follow_the_benchmark_definitions() -> None:
    # the series start counts as a change: no detection on a change-free series scores 1
    assert tcpd_f1([[]], []) == 1.0 and covering([[]], [], 100) == 1.0
    # one true change at 50, none detected: precision 1/1, recall 1/2
    assert tcpd_f1([[50]], []) == pytest.approx(2 * 0.5 / 1.5)
    assert tcpd_f1([[50]], [53]) == 1.0 and tcpd_f1([[50]], [56]) < 1.0  # margin 5
    # two annotators: precision against their union, recall averaged
    assert tcpd_f1([[50], [50, 80]], [50]) == pytest.approx(2 * 1.0 * (1.0 + 2 / 3) / 2 / (1.0 + (1.0 + 2 / 3) / 2))
    assert covering([[50]], [50], 100) == 1.0
    assert covering([[50]], [], 100) == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
