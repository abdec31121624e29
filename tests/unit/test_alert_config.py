"""The alerts config section: shipped example loads; every bad value is a ConfigError naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wirewatch.config.base import load_config, validate
from wirewatch.errors import ConfigError
from wirewatch.publish.config import (
    AlertmanagerSinkConfig,
    AlertsConfig,
    ChangepointRule,
    NoFramesRule,
    ThresholdRule,
    WebhookSinkConfig,
)
from wirewatch.publish.templates import TemplateError, check_template, placeholders, render, render_safe

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "alerts-example.yaml"


def _cfg(**data: Any) -> AlertsConfig:
    return validate(AlertsConfig, data, "alerts")


def _threshold(**extra: Any) -> dict[str, Any]:
    return {"kind": "threshold", "name": "CountLow", "statistic": "particle_count", "min": 5, **extra}


def test_shipped_example_loads() -> None:
    config = load_config(AlertsConfig, EXAMPLE)
    kinds = [type(r) for r in config.rules]
    assert kinds == [ChangepointRule, ChangepointRule, ThresholdRule, ThresholdRule, NoFramesRule]
    assert [type(s) for s in config.sinks] == [AlertmanagerSinkConfig, WebhookSinkConfig]
    assert config.sinks[1].name == "process-control"
    assert config.zmq is None  # the ZeroMQ stream is the daemon's publish.zmq


def test_environment_overrides_a_value() -> None:
    config = load_config(AlertsConfig, EXAMPLE, environ={"WIREWATCH_ALERTS__TICK_INTERVAL_S": "2.5",
                                                         "WIREWATCH_ALERTS__RATE_LIMIT__MAX_ALERTS": "7"},
                         env_prefix="WIREWATCH_ALERTS__")
    assert config.tick_interval_s == 2.5 and config.rate_limit.max_alerts == 7


def test_defaults_are_quiet() -> None:
    config = _cfg()
    assert config.rules == [] and config.sinks == [] and config.zmq is None and config.enabled


@pytest.mark.parametrize(("data", "message"), [
    ({"rules": [_threshold(minimum=3)]}, r"rules\.0\.threshold\.minimum: unknown key"),
    ({"rules": [{"kind": "flood", "name": "X"}]}, r"rules\.0: .*'changepoint', 'threshold', 'no_frames'"),
    ({"rules": [_threshold(min=None)]}, "needs 'min', 'max' or both"),
    ({"rules": [_threshold(min=5, max=1)]}, r"min \(5.0\) is greater than max \(1.0\)"),
    ({"rules": [_threshold(for_frames=0)]}, r"for_frames: Input should be greater than 0"),
    ({"rules": [_threshold(on_missing="skip")]}, r"on_missing: Input should be 'ignore', 'breach' or 'clear'"),
    ({"rules": [_threshold(name="has space")]}, "alert name 'has space' must match"),
    ({"rules": [_threshold(labels={"severity": "x"})]}, "label 'severity' is set by the rule itself"),
    ({"rules": [_threshold(labels={"bad-name": "x"})]}, "label name 'bad-name' must match"),
    ({"rules": [_threshold(annotations={"summary": "{valeu}"})]}, r"unknown placeholder \{valeu\}; allowed: .*value"),
    ({"rules": [_threshold(annotations={"s": "{value.__class__}"})]}, "must be a plain name"),
    ({"rules": [_threshold(annotations={"s": "{statistic:.2f}"})]}, "cannot be formatted"),
    ({"rules": [_threshold(annotations={"s": "{value"})]}, "malformed template"),
    ({"rules": [{"kind": "no_frames", "name": "Quiet", "after_s": 0}]}, r"after_s: Input should be greater than 0"),
    ({"rules": [_threshold(), _threshold()]}, "rule names must be unique; repeated: CountLow"),
    ({"labels": {"alertname": "x"}}, "label name 'alertname' is invalid or reserved"),
    ({"sinks": [{"type": "alertmanager", "url": "ftp://am:9093"}]}, "not an http:// or https:// URL"),
    ({"sinks": [{"type": "alertmanager", "url": "http://u:pw@am:9093"}]}, "credentials in the URL"),
    ({"sinks": [{"type": "alertmanager", "url": "http://am", "resend_interval_s": 60, "firing_ttl_s": 30}]},
     r"firing_ttl_s \(30.0\) must exceed resend_interval_s"),
    ({"sinks": [{"type": "webhook", "url": "http://h/x"}]}, r"sinks\.0\.webhook\.spool_dir: Field required"),
    ({"sinks": [{"type": "webhook", "url": "http://h/x", "spool_dir": "/tmp/s",
                 "headers": {"Authorization": "Bearer x"}}]}, "header 'Authorization' carries a secret"),
    ({"sinks": [{"type": "webhook", "url": "http://h/x", "spool_dir": "/tmp/s", "hmac_secret": {}}]},
     "give exactly one of 'file' or 'env'"),
    ({"sinks": [{"type": "webhook", "url": "http://h/x", "spool_dir": "/tmp/s",
                 "hmac_secret": {"file": "/k", "env": "K"}}]}, "give exactly one of 'file' or 'env'"),
    ({"sinks": [{"type": "webhook", "url": "http://h/x", "spool_dir": "/a"},
                {"type": "webhook", "url": "http://h/y", "spool_dir": "/b"}]}, "sink names must be unique"),
    ({"sinks": [{"type": "webhook", "name": "a b", "url": "http://h/x", "spool_dir": "/a"}]}, "sink name 'a b'"),
    ({"zmq": {"topics": ["stats", "frames"]}}, r"zmq\.topics\.1: Input should be 'stats', 'changepoint' or 'alert'"),
])
def test_bad_values_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _cfg(**data)


def test_templates() -> None:
    assert placeholders("{a} and {b:.2f} {{literal}}") == ["a", "b"]
    assert render("{v:.1f} in [{lo}, {hi}]", {"v": 2.345, "lo": None, "hi": 3}) == "2.3 in [n/a, 3]"
    assert render_safe("{v:.1f}", {"v": "text"}) == "{v:.1f}"  # never raises at runtime
    with pytest.raises(TemplateError):
        check_template("{x[0]}", ["x"], {"x": [1]})
