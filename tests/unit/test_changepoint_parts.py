"""Robust scaling, costs and threshold calibration of the change detectors."""

from __future__ import annotations

import numpy as np
import pytest
import ruptures as rpt

from wirewatch.changepoint.calibrate import cusum_arl, cusum_threshold, windowed_penalty
from wirewatch.changepoint.config import ChangepointConfig, WindowedConfig
from wirewatch.changepoint.costs import CostL2Cumsum, CostNormalCumsum
from wirewatch.changepoint.online import ONLINE_TESTS
from wirewatch.changepoint.robust import forward_fill, hampel, robust_location, robust_scale
from wirewatch.changepoint.windowed import WindowedSearch
from wirewatch.config.base import validate
from wirewatch.errors import ConfigError


def test_robust_scale_ignores_steps_outliers_and_nan() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 2.0, size=(400, 3))
    x[200:, 0] += 50.0  # a big step
    x[::37, 1] = 1e6  # spikes
    x[::5, 2] = np.nan  # missing values
    scale = robust_scale(x)
    assert scale == pytest.approx([2.0, 2.0, 2.0], rel=0.15)


def test_robust_scale_of_a_constant_or_empty_column_is_a_small_positive_floor() -> None:
    x = np.column_stack([np.full(50, 7.0), np.full(50, np.nan)])
    scale = robust_scale(x)
    assert np.all(scale > 0) and np.all(scale < 1e-6)
    assert np.isnan(robust_location(x)[1])


def test_forward_fill_and_hampel() -> None:
    x = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [5.0, 3.0]])
    filled = forward_fill(x, np.array([-1.0, -2.0]))
    assert filled.tolist() == [[-1.0, 1.0], [2.0, 1.0], [2.0, 1.0], [5.0, 3.0]]
    z = np.zeros((40, 1))
    z[20:] = 4.0  # a step survives
    z[10] = 30.0  # a spike does not
    cleaned = hampel(z, clip=5.0)
    assert cleaned[10, 0] == 0.0
    assert cleaned[20:, 0].tolist() == [4.0] * 20


def test_cumsum_costs_match_ruptures() -> None:
    x = np.random.default_rng(1).normal(size=(60, 3))
    ours, theirs = CostL2Cumsum().fit(x), rpt.costs.CostL2().fit(x)
    for a, b in [(0, 60), (5, 17), (30, 31), (2, 59)]:
        assert ours.error(a, b) == pytest.approx(theirs.error(a, b), rel=1e-9, abs=1e-9)
    normal = CostNormalCumsum().fit(x)
    segment = x[10:50]
    cov = np.cov(segment.T, bias=True) + 1e-2 * np.eye(3)
    assert normal.error(10, 50) == pytest.approx(40 * np.linalg.slogdet(cov)[1])


def test_siegmund_arl_matches_the_classic_table() -> None:
    # one-sided CUSUM, k = 0.5, h = 4 (or 5): in-control ARL ~ 336 (~ 930) in the standard tables
    assert 300 < cusum_arl(4.0, 0.5) < 380
    assert 850 < cusum_arl(5.0, 0.5) < 1000
    low = cusum_threshold(drift=1.0, n_dims=5, rate_per_frame=1e-3)
    high = cusum_threshold(drift=1.0, n_dims=5, rate_per_frame=1e-5)
    assert 0 < low < high


def test_windowed_penalty_gives_about_the_target_rate_on_noise() -> None:
    """The calibrated penalty makes a change-free window yield a break with probability ~ alpha."""
    alpha = 0.05
    cfg = WindowedConfig(window=100, min_segment=8, jump=2, cost="l2")
    penalty = windowed_penalty(cost="l2", method="binseg", n_dims=5, window=100, min_size=8, jump=2, width=40,
                               alpha_run=alpha)
    search = WindowedSearch(cfg, penalty)
    rng = np.random.default_rng(123)
    hits = sum(bool(search.breaks(rng.standard_normal((100, 5)))) for _ in range(400))
    assert 0.4 * alpha * 400 <= hits <= 1.8 * alpha * 400
    stricter = windowed_penalty(cost="l2", method="binseg", n_dims=5, window=100, min_size=8, jump=2, width=40,
                                alpha_run=alpha / 100)
    assert stricter > penalty


@pytest.mark.parametrize("name", sorted(ONLINE_TESTS))
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_online_test_dates_a_step_after_a_relearnt_baseline(name: str, sign: float) -> None:
    # After a change the test re-learns its baseline; a later step up or down must still be dated where its
    # one-sided sum last left zero, not at the alarm (the two sides keep separate records).
    test = ONLINE_TESTS[name](drift=0.5, threshold=5.0, clip=5.0, baseline_alpha=0.01, holdoff=5, warmup=20)
    test.start(np.zeros(1))
    test.on_change(100, np.full((10, 1), 3.0))  # a reported change at 100, ten samples after it seen
    scale = np.ones(1)
    alarm = None
    for index in range(110, 200):
        value = 3.0 + (sign * 2.0 if index >= 150 else 0.0)
        alarm = test.update(index, np.array([value]), scale)
        if alarm is not None:
            break
    assert alarm is not None, "a 2-sigma step went unnoticed for 50 samples"
    assert 149 <= alarm.index <= 151  # dated at the step, not at the alarm a few samples later
    assert alarm.columns == (0,)


def test_windowed_search_finds_and_refines_a_step() -> None:
    cfg = WindowedConfig(window=100, min_segment=8, jump=5)
    penalty = windowed_penalty(cost="l2", method="binseg", n_dims=2, window=100, min_size=8, jump=5, width=40,
                               alpha_run=1e-3)
    z = np.random.default_rng(2).normal(size=(100, 2))
    z[63:, 1] += 3.0
    found = WindowedSearch(cfg, penalty).breaks(z)
    assert [b for _, b, _ in found] == [63]


@pytest.mark.parametrize(("data", "key"), [
    ({"stats": []}, "stats"),
    ({"windowed": {"method": "dynp"}}, "windowed.method"),
    ({"windowed": {"window": 20, "min_segment": 10}}, "windowed"),
    ({"false_alarms_per_1000": 0}, "false_alarms_per_1000"),
    ({"online": {"shfit": 2}}, "online.shfit"),
    ({"severity": {"warning": 3, "critical": 1}}, "severity"),
])
def test_bad_config_names_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(ChangepointConfig, data, "changepoint")


def test_bench_body_reports_cost_and_judges_targets() -> None:
    from wirewatch.bench.changepoint import meets_targets, update_cost
    from wirewatch.changepoint.evaluate import summarise

    cost = update_cost(n_frames=300)
    assert cost["frames"] == 300 and cost["statistics"] == 5
    assert cost["cpu_ms_per_frame"] > 0 and cost["wall_ms_max"] >= cost["wall_ms_p99"] > 0
    empty = summarise("none", [])
    assert meets_targets(empty)["f1"] is None and meets_targets(empty)["false_alarms"] is None
