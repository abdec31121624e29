"""Alert rules and the engine: when alerts fire, deduplicate, wait for the rate limit and resolve."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from wirewatch.config.base import validate
from wirewatch.publish import AlertsConfig, build_alert_engine
from wirewatch.publish.engine import AlertEngine, RateLimiter
from wirewatch.publish.metrics import AlertMetrics
from wirewatch.types import Alert, ChangePoint, FrameStats


def _engine(*rules: dict[str, Any], registry: CollectorRegistry | None = None, **extra: Any) -> AlertEngine:
    return build_alert_engine(validate(AlertsConfig, {"rules": list(rules), **extra}), registry=registry)


def _frame(i: int, **stats: float) -> FrameStats:
    return FrameStats(frame_id=i, time=float(i), aggregates=stats)


def _run(engine: AlertEngine, values: list[float], statistic: str = "particle_count",
         start: int = 0) -> list[tuple[int, str]]:
    """Feed one value per frame (time = frame number); return (frame, state) of every alert emitted."""
    out = []
    for i, v in enumerate(values, start):
        for alert in engine.observe(_frame(i, **{statistic: v}), [], float(i)):
            out.append((i, alert.state))
    return out


def _cp(frame: int = 100, stats: tuple[str, ...] = ("length_px_mean",), detector: str = "window",
        effect: float = 3.0, severity: str = "warning") -> ChangePoint:
    return ChangePoint(frame=frame, detected_at=frame + 8, statistics=stats,
                       before={s: 30.0 for s in stats}, after={s: 45.0 for s in stats},
                       effect_size=effect, detector=detector, severity=severity)  # type: ignore[arg-type]


LOW = {"kind": "threshold", "name": "CountLow", "statistic": "particle_count", "min": 5}


# -- threshold -------------------------------------------------------------------------------------

def test_threshold_fires_after_n_frames_and_resolves_after_m() -> None:
    engine = _engine({**LOW, "for_frames": 3, "clear_frames": 2})
    #           0  1  2  3  4  5  6  7  8  9
    values = [9, 2, 2, 9, 2, 2, 2, 2, 9, 9]
    assert _run(engine, values) == [(6, "firing"), (9, "resolved")]


def test_threshold_alert_content() -> None:
    engine = _engine({**LOW, "for_frames": 2, "severity": "critical", "labels": {"team": "beamline"},
                      "annotations": {"runbook": "{statistic} was {value:.0f} (min {min:g})"}},
                     labels={"instance": "rig-1"})
    engine.observe(_frame(10, particle_count=3.0), [], 100.0)
    (alert,) = engine.observe(_frame(11, particle_count=1.0), [], 101.0)
    assert alert.name == "CountLow" and alert.state == "firing" and alert.frame == 11
    assert alert.starts_at == 101.0 and alert.ends_at is None
    assert dict(alert.labels) == {"instance": "rig-1", "team": "beamline", "statistic": "particle_count",
                                  "severity": "critical"}
    assert alert.annotations == {"summary": "particle_count below 5",
                                 "description": "particle_count = 1 at frame 11, below 5 for 2 frames in a row",
                                 "runbook": "particle_count was 1 (min 5)"}
    (resolved,) = engine.observe(_frame(12, particle_count=8.0), [], 102.5)
    assert resolved.state == "resolved" and resolved.ends_at == 102.5 and resolved.starts_at == 101.0
    assert resolved.fingerprint == alert.fingerprint and resolved.frame == 12


def test_resolution_never_ends_before_it_started() -> None:
    engine = _engine(LOW)
    engine.observe(_frame(0, particle_count=1.0), [], 1000.0)
    (resolved,) = engine.observe(_frame(1, particle_count=9.0), [], 990.0)  # clock stepped back
    assert resolved.ends_at == 1000.0 == resolved.starts_at


@pytest.mark.parametrize(("bounds", "values", "expected"), [
    ({"max": 10}, [5, 11, 12, 9], [(1, "firing"), (3, "resolved")]),
    ({"min": 2, "max": 4}, [3, 1, 3, 5, 3], [(1, "firing"), (2, "resolved"), (3, "firing"), (4, "resolved")]),
    ({"min": 2, "max": 4}, [2, 4, 3], []),  # the bounds themselves are in range
])
def test_threshold_bounds(bounds: dict[str, float], values: list[float], expected: list[tuple[int, str]]) -> None:
    rule = {"kind": "threshold", "name": "Width", "statistic": "width_px_mean", **bounds}
    assert _run(_engine(rule), values, "width_px_mean") == expected


@pytest.mark.parametrize(("on_missing", "expected"), [
    ("ignore", [(5, "firing")]),  # NaN frames neither count nor reset the run
    ("breach", [(2, "firing")]),  # an empty frame counts as "too few particles"
    ("clear", []),  # NaN resets the run
])
def test_threshold_missing_values(on_missing: str, expected: list[tuple[int, str]]) -> None:
    engine = _engine({**LOW, "for_frames": 3, "on_missing": on_missing})
    assert _run(engine, [1, math.nan, 1, math.nan, math.nan, 1]) == expected


def test_a_statistic_the_frames_never_carry_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    engine = _engine({**LOW, "statistic": "particle_cuont"},
                     {"kind": "changepoint", "name": "C", "statistics": ["length_px_mean", "lenght_px_mean"]})
    for i in range(3):
        engine.observe(_frame(i, particle_count=3.0, length_px_mean=20.0), [], float(i))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "alert rule CountLow watches particle_cuont, which the frames do not carry; they have: length_px_mean, particle_count",
        "alert rule C watches lenght_px_mean, which the frames do not carry; they have: length_px_mean, particle_count"]


def test_threshold_absent_statistic_is_missing() -> None:
    engine = _engine({**LOW, "on_missing": "breach"})
    assert [a.state for a in engine.observe(_frame(0, width_px_mean=3.0), [], 0.0)] == ["firing"]
    alert = engine.active()[0]
    assert "particle_count = n/a" in alert.annotations["description"]


# -- change points ---------------------------------------------------------------------------------

def test_changepoint_rule_fires_per_statistic_dedups_and_expires() -> None:
    engine = _engine({"kind": "changepoint", "name": "Changed", "resolve_after_s": 60})
    out = engine.observe(_frame(108), [_cp(stats=("length_px_mean", "particle_count"))], 1000.0)
    assert [(a.state, a.labels["statistic"]) for a in out] == [("firing", "length_px_mean"),
                                                                ("firing", "particle_count")]
    assert out[0].annotations["description"] == ("window found a change in length_px_mean at frame 100 "
                                                 "(detected at frame 108, delay 8 frames): 30 -> 45, "
                                                 "effect size 3.00")
    assert out[0].frame == 100 and out[0].labels["severity"] == "warning"
    # a second change on the same statistic while the alert is active: no new notification, expiry extended
    assert engine.observe(_frame(150), [_cp(frame=142, stats=("length_px_mean",))], 1030.0) == []
    assert engine.active()[0].frame == 142 or engine.active()[1].frame == 142  # newest details kept
    resolved = engine.tick(1061.0)
    assert [(a.state, a.labels["statistic"]) for a in resolved] == [("resolved", "particle_count")]
    assert resolved[0].ends_at == 1061.0 and resolved[0].starts_at == 1000.0
    assert engine.tick(1089.0) == []
    assert [(a.state, a.labels["statistic"]) for a in engine.tick(1090.0)] == [("resolved", "length_px_mean")]
    assert engine.active() == []


@pytest.mark.parametrize(("rule", "cp", "fires"), [
    ({"statistics": ["width_px_mean"]}, _cp(), False),
    ({"statistics": ["length_px_mean"]}, _cp(), True),
    ({"detectors": ["cusum"]}, _cp(detector="window"), False),
    ({"detectors": ["cusum", "window"]}, _cp(detector="window"), True),
    ({"min_severity": "critical"}, _cp(severity="warning"), False),
    ({"min_severity": "warning"}, _cp(severity="critical"), True),
    ({"min_effect_size": 2.0}, _cp(effect=-1.5), False),
    ({"min_effect_size": 2.0}, _cp(effect=-2.5), True),
    ({"min_effect_size": 2.0}, _cp(effect=math.nan), False),
    ({}, _cp(effect=math.nan), True),
])
def test_changepoint_filters(rule: dict[str, Any], cp: ChangePoint, fires: bool) -> None:
    engine = _engine({"kind": "changepoint", "name": "Changed", **rule})
    assert bool(engine.observe(_frame(1), [cp], 1.0)) is fires


def test_changepoint_severity_from_event_or_rule() -> None:
    engine = _engine({"kind": "changepoint", "name": "A"}, {"kind": "changepoint", "name": "B", "severity": "info"})
    out = engine.observe(_frame(1), [_cp(severity="critical")], 1.0)
    assert {a.name: a.labels["severity"] for a in out} == {"A": "critical", "B": "info"}


def test_changepoint_severity_change_ends_the_old_alert() -> None:
    engine = _engine({"kind": "changepoint", "name": "A"})
    engine.observe(_frame(1), [_cp(severity="warning")], 1.0)
    out = engine.observe(_frame(2), [_cp(severity="critical")], 2.0)
    assert [(a.state, a.labels["severity"]) for a in out] == [("resolved", "warning"), ("firing", "critical")]


# -- no frames ------------------------------------------------------------------------------------

def test_no_frames_fires_on_silence_and_resolves_on_next_frame() -> None:
    engine = _engine({"kind": "no_frames", "name": "NoFrames", "after_s": 30, "severity": "critical"})
    assert engine.tick(1000.0) == []  # the clock starts at the first call
    assert engine.tick(1029.0) == []
    (alert,) = engine.tick(1030.0)
    assert alert.state == "firing" and alert.labels == {"severity": "critical"}
    assert alert.annotations["summary"] == "No frames for 30 s" and "last frame n/a" in alert.annotations["description"]
    assert engine.tick(1100.0) == []  # still silent: no duplicate
    (resolved,) = engine.observe(_frame(7), [], 1101.0)
    assert resolved.state == "resolved" and resolved.ends_at == 1101.0
    assert engine.tick(1130.0) == []
    (again,) = engine.tick(1131.0)
    assert "last frame 7" in again.annotations["description"]


# -- engine: dedup, rate limit, metrics ------------------------------------------------------------

def test_rate_limit_holds_back_and_releases_while_still_firing() -> None:
    registry = CollectorRegistry()
    rules = [{"kind": "threshold", "name": f"Low{i}", "statistic": f"s{i}", "min": 1} for i in range(4)]
    engine = _engine(*rules, registry=registry, rate_limit={"max_alerts": 2, "per_s": 10})
    out = engine.observe(_frame(0, s0=0, s1=0, s2=0, s3=0), [], 100.0)
    assert [a.name for a in out] == ["Low0", "Low1"]
    assert sorted(a.name for a in engine.pending()) == ["Low2", "Low3"]
    # Low3 clears before it could be sent: nobody hears about it
    assert engine.observe(_frame(1, s0=0, s1=0, s2=0, s3=5), [], 105.0) == []
    assert [a.name for a in engine.pending()] == ["Low2"]
    # the window has passed: the alert that still holds goes out (with its original start time)
    (released,) = engine.tick(110.0)
    assert released.name == "Low2" and released.starts_at == 100.0
    metrics = AlertMetrics.on(registry)
    assert metrics.suppressed.labels(alertname="Low2")._value.get() == 1
    assert metrics.suppressed.labels(alertname="Low3")._value.get() == 1
    assert metrics.alerts.labels(alertname="Low2", state="firing")._value.get() == 1
    assert metrics.alerts.labels(alertname="Low3", state="resolved")._value.get() == 0


def test_resolutions_pass_the_rate_limit() -> None:
    engine = _engine(LOW, rate_limit={"max_alerts": 1, "per_s": 3600})
    assert _run(engine, [1, 9, 1, 9]) == [(0, "firing"), (1, "resolved")]
    assert [a.name for a in engine.pending()] == []  # the second episode cleared before a token came


def test_rate_limiter_window() -> None:
    limiter = RateLimiter(2, 10.0)
    assert [limiter.allow(t) for t in (0.0, 1.0, 2.0, 9.9, 10.0, 11.0, 12.0)] == [
        True, True, False, False, True, True, False]


def test_disabled_rules_and_alerts() -> None:
    assert _engine({**LOW, "enabled": False}).rules == []
    assert _engine(LOW, enabled=False).rules == []


def test_engine_takes_any_rule_object() -> None:
    """Rules are a Protocol: a hand-written rule plugs in without config."""

    class Always:
        name = "Always"

        def observe(self, stats: FrameStats, changepoints: Any, now: float) -> list[Alert]:
            return [Alert(name="Always", state="firing", labels={}, annotations={}, starts_at=now)]

        def tick(self, now: float) -> list[Alert]:
            return []

    engine = AlertEngine([Always()], labels={"site": "x"})
    assert [a.labels for a in engine.observe(_frame(0), [], 1.0)] == [{"site": "x"}]
    assert engine.observe(_frame(1), [], 2.0) == []  # duplicate absorbed


# -- properties ------------------------------------------------------------------------------------

_value = st.one_of(st.floats(min_value=-5, max_value=15), st.just(math.nan))
_step = st.tuples(
    st.floats(min_value=0.0, max_value=40.0),  # seconds since the previous call
    st.booleans(),  # a frame (observe) or only a tick
    _value,  # particle_count
    st.lists(st.sampled_from(["length_px_mean", "particle_count"]), max_size=2),  # change point statistics
)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(_step, max_size=60), max_alerts=st.integers(1, 4))
def test_notifications_are_consistent_for_any_stream(steps: list[Any], max_alerts: int) -> None:
    """Whatever the stream: per alert, firing and resolved alternate starting with firing; ends never
    precede starts; the engine's active set is exactly what was fired and not yet resolved."""
    engine = _engine(
        {**LOW, "for_frames": 2, "clear_frames": 2, "on_missing": "breach"},
        {"kind": "threshold", "name": "CountHigh", "statistic": "particle_count", "max": 10},
        {"kind": "changepoint", "name": "Changed", "resolve_after_s": 30},
        {"kind": "no_frames", "name": "NoFrames", "after_s": 25},
        rate_limit={"max_alerts": max_alerts, "per_s": 60})
    now = 1000.0
    state: dict[str, str] = {}
    for frame, (dt, is_frame, value, cp_stats) in enumerate(steps):
        now += dt
        if is_frame:
            cps = [_cp(frame=frame, stats=tuple(dict.fromkeys(cp_stats)))] if cp_stats else []
            out = engine.observe(_frame(frame, particle_count=value), cps, now)
        else:
            out = engine.tick(now)
        for alert in out:
            previous = state.get(alert.fingerprint, "resolved")
            assert alert.state != previous, f"{alert.fingerprint}: {alert.state} twice in a row"
            state[alert.fingerprint] = alert.state
            assert alert.ends_at is None or alert.ends_at >= alert.starts_at
            assert alert.starts_at <= now
    firing = {fp for fp, s in state.items() if s == "firing"}
    assert {a.fingerprint for a in engine.active()} == firing
    assert not firing & {a.fingerprint for a in engine.pending()}
