"""Issue 38's "Done when": each selectable detector on the five conditions, with numbers.

Detectors: the default (binseg/linear search + trend CUSUM), the windowed search alone, the trend CUSUM
alone and BOCPD alone. Conditions: a steady trend raises nothing, a slope change is found (and named),
heavy-tailed outliers raise nothing, gaps (NaN rows, a run of missing frames, missing cells) are handled,
and a short record of 40 points runs and finds a large step. Where a detector falls short of a condition
the test states what it does (and docs/changepoint.md "Still not met" says why); ``xfail(strict=True)``
marks the gaps, so a fix shows up as an unexpected pass. Seeds are fixed; counts are summed over a few seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from wirewatch.changepoint import ChangepointConfig, build_detector
from wirewatch.types import ChangePoint

STATS = ["a", "b", "c"]
DETECTORS: dict[str, dict] = {
    "default": {},
    "windowed": {"online": {"enabled": False}},
    "cusum": {"windowed": {"enabled": False}},
    "bocpd": {"windowed": {"enabled": False}, "online": {"method": "bocpd"}},
}
SLOPES = (0.02, -0.03, 0.05)  # sigma per frame: up to 30 sigma over 600 frames


@pytest.fixture(scope="module", autouse=True)
def _thresholds_simulated() -> None:
    """Each detector's thresholds are simulated once per process and cached (BOCPD's takes 2-3 s on two
    busy cores): paid here, once, not inside whichever test comes first."""
    for name in DETECTORS:
        build_detector(ChangepointConfig.model_validate({"stats": STATS, **DETECTORS[name]}))


def _feed(name: str, values: np.ndarray, expect: int | None = None) -> list[ChangePoint]:
    detector = build_detector(ChangepointConfig.model_validate({"stats": STATS, **DETECTORS[name]}))
    if expect is not None:
        detector.expect_frames(expect)  # offline, as `wirewatch changepoints` and the evaluation do
    events: list[ChangePoint] = []
    for i, row in enumerate(values):
        events.extend(detector.update(i, dict(zip(STATS, row.tolist(), strict=True))))
    return events


def _series(n: int, seed: int, slopes: tuple[float, ...] = SLOPES, outliers: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 50.0 + np.array(slopes) * np.arange(n)[:, None] + rng.standard_normal((n, len(STATS)))
    if outliers:  # single-cell spikes of 6-12 sigma, either sign
        hit = rng.random(x.shape) < outliers
        x[hit] += rng.choice([-1.0, 1.0], hit.sum()) * rng.uniform(6, 12, hit.sum())
    return x


def _kink(seed: int) -> np.ndarray:
    x = _series(400, seed)
    x[200:, 0] += 0.3 * np.arange(200)  # continuous; the slope of "a" changes by 0.3 sigma per frame at 200
    return x


def _gappy_step(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = _series(400, seed)
    x[rng.random(400) < 0.1] = np.nan  # 10 % of frames empty
    x[100:120] = np.nan  # a 20-frame outage
    x[rng.random(x.shape) < 0.05] = np.nan  # 5 % of cells missing
    x[200:, 1] += 4.0
    return x


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_steady_trend_raises_nothing(name: str) -> None:
    events = [e for seed in (100, 101, 102) for e in _feed(name, _series(600, seed))]
    assert events == [], [(e.frame, e.detector, e.kind) for e in events]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_outliers_raise_no_more_than_the_false_alarm_budget(name: str) -> None:
    """2 % of cells hit by 6-12 sigma spikes, on a trend: at most the budget (1 per 1000 frames) over 1800."""
    events = [e for seed in (200, 201, 202) for e in _feed(name, _series(600, seed, outliers=0.02))]
    assert len(events) <= 2, [(e.frame, e.detector) for e in events]


def test_the_windowed_search_finds_a_slope_change_and_names_it_slope() -> None:
    for seed in (400, 401, 402):
        events = _feed("windowed", _kink(seed))
        assert [(abs(e.frame - 200) <= 8, e.kind, e.statistics) for e in events] == [(True, "slope", ("a",))], \
            (seed, [(e.frame, e.kind) for e in events])


@pytest.mark.parametrize("name", ["default", "cusum"])
def test_the_trend_cusum_warns_early_of_a_slope_change(name: str) -> None:
    """The online alarm comes 5-11 frames after the kink, dated within 4 frames of it; alone it misses one in
    three at 0.3 sigma per frame (its Holt baseline follows a slow bend), the default's search catches it."""
    found = 0
    for seed in (400, 401, 402):
        events = _feed(name, _kink(seed))
        assert len(events) <= 1 and all(abs(e.frame - 200) <= 4 and e.statistics == ("a",) for e in events)
        assert all(e.detected_at - 200 <= 30 for e in events)
        found += len(events)
    assert found == (3 if name == "default" else 2)


@pytest.mark.xfail(strict=True, reason="an online alarm is described a few frames after the kink, too few to "
                                       "see a slope: the default names 2 of 3 kinks 'level' (docs, Still not met)")
def test_the_default_names_every_slope_change_slope() -> None:
    kinds = [e.kind for seed in (400, 401, 402) for e in _feed("default", _kink(seed))]
    assert kinds == ["slope"] * 3


def test_bocpd_finds_most_slope_changes_on_a_trend_with_some_false_alarms() -> None:
    """BOCPD alone on the same kinks: found in 2 of 3 (one 19 frames late, named 'level'), and 4 alarms
    elsewhere in 1200 frames - its linear segment model's slope prior (0.05 sigma / frame) sits at the
    trend's steepest statistic, so the trend itself sometimes reads as a new run."""
    near = far = 0
    for seed in (400, 401, 402):
        events = _feed("bocpd", _kink(seed))
        near += any(abs(e.frame - 200) <= 20 and "a" in e.statistics for e in events)
        far += sum(abs(e.frame - 200) > 20 for e in events)
    assert near >= 2 and far <= 4, (near, far)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_gaps_are_bridged_and_a_step_after_them_is_found(name: str) -> None:
    """10 % empty frames, a 20-frame outage and 5 % missing cells before a 4-sigma step of "b" at 200."""
    hits, extra, delays = 0, 0, []
    for seed in (500, 501, 502):
        events = _feed(name, _gappy_step(seed))
        near = [e for e in events if abs(e.frame - 200) <= 3 and "b" in e.statistics and e.kind == "level"]
        hits += len(near)
        extra += len(events) - len(near)
        delays += [e.detected_at - 200 for e in near]
    if name == "bocpd":  # misses one (seed 502) and raises one alarm 17 frames after a found step
        assert hits >= 2 and extra <= 1, (hits, extra)
    else:
        assert hits == 3 and extra == 0, (hits, extra)
    # the online tests alarm within a few frames; the linear search alone waits ~3 x min_segment frames
    assert max(delays) <= (40 if name == "windowed" else 5), delays


def _short(seed: int, step: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 5.0 + rng.standard_normal((40, 3))
    x[rng.random(x.shape) < 0.05] = np.nan  # 5 % missing cells
    x[30:, 0] += step
    return x


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_short_record_runs_and_finds_a_large_step(name: str) -> None:
    """40 points (warm-up a quarter of the length: 10), a 6-sigma step at 30."""
    found = [e for seed in (600, 601, 602) for e in _feed(name, _short(seed, 6.0), expect=40)]
    if name == "windowed":  # a line after the break needs 3 x min_segment (24) frames: 10 is too few
        assert found == []
        return
    assert [(abs(e.frame - 30) <= 1, e.statistics) for e in found] == [(True, ("a",))] * 3, found
    # the CUSUM alarms 2-3 frames after the step; BOCPD once waits 9 (to the record's last frame)
    assert max(e.detected_at for e in found) <= (39 if name == "bocpd" else 33)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_short_change_free_records_raise_few_alarms(name: str) -> None:
    """20 records of 40 points without a change: 600 frames after the warm-ups, scale learnt from 10 samples
    each. Measured over 40 such records: default 2 alarms, CUSUM 2, BOCPD 1, the search alone 0."""
    events = [e for seed in range(600, 620) for e in _feed(name, _short(seed), expect=40)]
    assert len(events) <= (0 if name == "windowed" else 2), [(e.frame, e.detector) for e in events]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_record_shorter_than_any_warm_up_gives_no_events(name: str) -> None:
    x = 5.0 + np.random.default_rng(7).standard_normal((12, 3))
    x[6:, 0] += 6.0
    assert _feed(name, x, expect=12) == []  # 12 points: warm-up 10, two frames left


@pytest.mark.xfail(strict=True, reason="the online tests only learn for 32 samples after the start (hold-off) "
                                       "and the search needs 24 frames after a break: nothing before frame 32 "
                                       "of a short record is found (docs, Still not met)")
def test_the_default_finds_a_step_ten_frames_after_a_short_records_warm_up() -> None:
    found = 0
    for seed in (600, 601, 602):
        x = 5.0 + np.random.default_rng(seed).standard_normal((40, 3))
        x[20:, 0] += 6.0
        found += any(abs(e.frame - 20) <= 1 for e in _feed("default", x, expect=40))
    assert found == 3
