"""The streaming detector on seeded signals: targets, event contents, messy input, resets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wirewatch.bench.changepoint_streams import synthetic_stream
from wirewatch.changepoint import ChangepointConfig, build_detector
from wirewatch.changepoint.evaluate import evaluate, match, precision_recall

STATS = ["a", "b", "c"]


def _config(**changes: object) -> ChangepointConfig:
    return ChangepointConfig.model_validate({"stats": STATS, **changes})


def _feed(detector, values: np.ndarray, start: int = 0) -> list:
    events = []
    for i, row in enumerate(values):
        events.extend(detector.update(start + i, dict(zip(STATS, row.tolist(), strict=True))))
    return events


def _step(n: int = 300, at: int = 150, column: int = 1, size: float = 3.0, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, len(STATS)))
    x[at:, column] += size
    return 10.0 + 2.0 * x  # level 10, sigma 2


def test_targets_on_seeded_piecewise_signals() -> None:
    """F1 >= 0.9 at a 10-frame margin and mean delay <= 20 frames (ruptures pw_constant, 5 statistics)."""
    clean = evaluate("clean", [synthetic_stream("pw_constant", s) for s in range(6)])
    messy = evaluate("messy", [synthetic_stream("pw_constant", 100 + s, drift=2.0, outliers=0.01, missing=0.03)
                               for s in range(6)])
    for summary in (clean, messy):
        assert summary.true_changes == 24
        assert summary.f1 >= 0.9, summary.row()
        assert summary.mean_delay <= 20, summary.row()


def test_false_alarms_on_change_free_streams() -> None:
    """At most 1 false alarm per 1000 change-free frames (noise, drift, outliers, dropped frames)."""
    streams = [synthetic_stream("null", 500 + s, n_frames=3000) for s in range(3)]
    streams += [synthetic_stream("null", 600 + s, n_frames=3000, drift=2.0, outliers=0.01, missing=0.03)
                for s in range(2)]
    summary = evaluate("null", streams)
    assert summary.frames == 15000
    assert summary.false_alarms_per_1000 <= 1.0, [(r.stream, [e.frame for e in r.detected]) for r in summary.results]


def test_one_change_is_reported_once_with_its_description() -> None:
    detector = build_detector(_config())
    events = _feed(detector, _step())
    assert len(events) == 1, events  # the online test and the windowed search found it: merged
    event = events[0]
    assert abs(event.frame - 150) <= 3
    assert event.frame <= event.detected_at <= event.frame + 20
    assert event.statistics == ("b",)
    assert event.before["b"] == pytest.approx(10.0, abs=0.8)
    assert event.after["b"] == pytest.approx(16.0, abs=1.5)
    assert event.effect_size == pytest.approx(3.0, abs=0.8)  # in robust sigmas
    assert event.detector in {"cusum", "binseg"}
    # a 3-sigma step measured two frames after it: critical (>= 3) or just below it
    assert event.severity == ("critical" if event.effect_size >= 3.0 else "warning")
    assert event.kind == "level" and event.penalty > 0
    mild = _feed(build_detector(_config(severity={"warning": 1.0, "critical": 10.0})), _step())
    assert [e.severity for e in mild] == ["warning"]


@pytest.mark.parametrize("changes", [
    {"online": {"enabled": False}},
    {"online": {"enabled": False}, "windowed": {"method": "pelt", "jump": 5}},
    {"online": {"enabled": False}, "windowed": {"method": "window", "width": 30}},
    {"windowed": {"enabled": False}},
    {"windowed": {"enabled": False}, "online": {"method": "page-hinkley"}},
])
def test_each_detector_alone_finds_a_step(changes: dict) -> None:
    detector = build_detector(_config(**changes))
    events = _feed(detector, _step())
    assert len(events) == 1, events
    assert abs(events[0].frame - 150) <= 5
    if changes.get("windowed", {}).get("enabled", True) is False:
        expected = changes.get("online", {}).get("method", "cusum")
    else:
        expected = changes.get("windowed", {}).get("method", "binseg")
    assert events[0].detector == expected
    delay = events[0].detected_at - 150
    # the linear-cost search alone waits 3 x min_segment samples (a young step looks like a ramp)
    alone = changes.get("online", {}).get("enabled", True) is False
    assert 0 <= delay <= (35 if alone else 25)


def test_windowed_search_confirms_before_reporting() -> None:
    def delay(confirmations: int) -> int:
        detector = build_detector(_config(online={"enabled": False},
                                          windowed={"confirmations": confirmations, "min_segment": 10}))
        events = _feed(detector, _step(size=5.0))
        assert len(events) == 1 and abs(events[0].frame - 150) <= 2
        return events[0].detected_at - 150

    # a break is at least min_segment old when first found; each confirmation waits a run (every 4 frames)
    assert delay(2) >= 10 + 4
    assert delay(4) >= delay(2) + 2 * 4


def test_missing_values_and_empty_frames_are_skipped_not_fatal() -> None:
    detector = build_detector(_config())
    x = _step(seed=3)
    events = []
    for i, row in enumerate(x):
        stats: dict[str, object] = dict(zip(STATS, row.tolist(), strict=True))
        if i % 17 == 0:
            stats = {"a": None, "b": float("nan"), "c": "n/a"}  # an empty or broken frame
        elif i % 11 == 0:
            stats["c"] = None
        events.extend(detector.update(i, stats))  # type: ignore[arg-type]
    assert detector.skipped_frames == len(range(0, 300, 17))
    assert len(events) == 1 and abs(events[0].frame - 150) <= 3


def test_warm_up_and_reset_at_series_boundaries() -> None:
    detector = build_detector(_config(warmup=50))
    assert _feed(detector, _step(n=45, at=20, size=8.0)) == []  # a change inside the warm-up is not seen
    assert detector.warming_up
    detector.reset()
    events = _feed(detector, _step(seed=4))
    assert len(events) == 1
    # a frame id going backwards is a new series: warm-up again, no stale baseline
    events = _feed(detector, _step(n=40, at=0, size=10.0, seed=5), start=0)
    assert events == [] and detector.warming_up


def test_scale_invariance() -> None:
    base = _step(seed=6)
    frames = [e.frame for e in _feed(build_detector(_config()), base)]
    scaled = [e.frame for e in _feed(build_detector(_config()), base * 1e-3 + 1e3)]
    assert frames == scaled


def test_match_agrees_with_ruptures_precision_recall() -> None:
    rng = np.random.default_rng(9)
    for _ in range(50):
        truth = sorted(rng.choice(np.arange(20, 980), size=4, replace=False).tolist())
        detected = sorted(rng.choice(np.arange(20, 980), size=int(rng.integers(1, 8)), replace=False).tolist())
        detected += [t + int(rng.integers(-12, 13)) for t in truth[:2]]
        detected = sorted(set(detected))
        pairs = match(truth, detected, 10)
        precision, recall = precision_recall(truth, detected, 1000, 10)
        assert math.isclose(len(pairs) / len(detected), precision)
        assert math.isclose(len(pairs) / len(truth), recall)
