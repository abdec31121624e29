"""A real Alertmanager (Debian package prometheus-alertmanager) on loopback receives our alerts.

The test starts Alertmanager on free ports with clustering off, a temporary
storage path and a config that forwards notifications (resolved ones too) to a
local HTTP receiver, then drives the real rule engine and sink:
firing -> visible through GET /api/v2/alerts -> resolved -> gone from the API
and Alertmanager itself notifies "resolved". (The ``alertmanager`` and ``am_hook`` fixtures are in
conftest.py.)
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.system.alert_receiver import AlertReceiver
from tests.system.helpers import ALERTMANAGER_BINARY, Alertmanager, wait_for
from wirewatch.publish import AlertsConfig, build_publisher
from wirewatch.publish.config import AlertmanagerSinkConfig
from wirewatch.publish.metrics import AlertMetrics
from wirewatch.publish.sinks.alertmanager import AlertmanagerSink
from wirewatch.types import Alert, FrameStats

pytestmark = pytest.mark.skipif(
    ALERTMANAGER_BINARY is None,
    reason="Alertmanager binary absent: apt-get install prometheus-alertmanager (.ci/run does)")


def test_threshold_alert_fires_shows_in_api_then_resolves(alertmanager: Alertmanager,
                                                          am_hook: AlertReceiver) -> None:
    config = AlertsConfig.model_validate({
        "labels": {"instance": "test-rig"},
        "rules": [{"kind": "threshold", "name": "ParticleCountLow", "statistic": "particle_count",
                   "min": 5, "for_frames": 3, "severity": "critical",
                   "annotations": {"runbook": "check the precursor flow"}}],
        "sinks": [{"type": "alertmanager", "url": alertmanager.url, "timeout_s": 2,
                   "backoff_initial_s": 0.05, "resend_interval_s": 30}],
    })
    registry = CollectorRegistry()
    publisher = build_publisher(config, registry, generator_url="http://127.0.0.1:9100/status")
    sink = publisher.sinks[0]
    assert isinstance(sink, AlertmanagerSink)
    try:
        t0 = time.time()
        fired = []
        for frame, count in enumerate([9, 8, 2, 1, 0]):
            fired += publisher.publish(FrameStats(frame, t0 + frame, {"particle_count": float(count)}), [],
                                       now=t0 + frame * 0.01)
        assert [a.state for a in fired] == ["firing"]  # fires once on the 3rd low frame, no duplicates
        assert sink.flush(10)

        found = wait_for(lambda: alertmanager.alerts(alertname="ParticleCountLow"), what="alert in Alertmanager")
        assert len(found) == 1
        am_alert = found[0]
        assert am_alert["labels"] == {"alertname": "ParticleCountLow", "instance": "test-rig",
                                      "statistic": "particle_count", "severity": "critical"}
        assert am_alert["annotations"]["runbook"] == "check the precursor flow"
        assert am_alert["annotations"]["summary"] == "particle_count below 5"
        assert "particle_count = 0 at frame 4" in am_alert["annotations"]["description"]
        assert am_alert["status"]["state"] == "active"
        assert am_alert["generatorURL"] == "http://127.0.0.1:9100/status"

        # Alertmanager routes it: its own webhook notification says "firing"
        note = wait_for(lambda: [r.json() for r in am_hook.accepted() if r.json()["status"] == "firing"],
                     what="firing notification from Alertmanager")[0]
        assert note["alerts"][0]["labels"]["alertname"] == "ParticleCountLow"

        # condition clears -> resolution with endsAt -> gone from the active list, notified as resolved
        resolved = publisher.publish(FrameStats(5, t0 + 5, {"particle_count": 12.0}), [], now=time.time())
        assert [a.state for a in resolved] == ["resolved"]
        assert sink.flush(10)
        wait_for(lambda: alertmanager.alerts(alertname="ParticleCountLow") == [], what="alert to leave the API")
        note = wait_for(lambda: [r.json() for r in am_hook.accepted() if r.json()["status"] == "resolved"],
                     timeout=15, what="resolved notification from Alertmanager")[0]
        assert note["alerts"][0]["labels"]["alertname"] == "ParticleCountLow"
        assert note["alerts"][0]["endsAt"].startswith(time.strftime("%Y-%m-%d", time.gmtime()))

        metrics = AlertMetrics.on(registry)
        assert metrics.alerts_sent.labels(sink="alertmanager", result="success")._value.get() == 2
        assert metrics.alerts_sent.labels(sink="alertmanager", result="failed")._value.get() == 0
    finally:
        publisher.close(2)


def test_firing_alerts_are_resent_and_endsat_ttl_is_honoured(alertmanager: Alertmanager) -> None:
    """Re-posting keeps a long-running alert active; an alert that is not re-posted expires at its TTL."""
    registry = CollectorRegistry()
    config = AlertmanagerSinkConfig(type="alertmanager", url=alertmanager.url, resend_interval_s=0.3,
                                    firing_ttl_s=1.0, backoff_initial_s=0.05)
    sink = AlertmanagerSink(config, metrics=AlertMetrics.on(registry))
    try:
        sink.send(Alert(name="NoFrames", state="firing", labels={"severity": "critical"},
                        annotations={"summary": "no frames"}, starts_at=time.time()))
        assert sink.flush(5)
        wait_for(lambda: alertmanager.alerts(alertname="NoFrames"), what="alert in Alertmanager")
        time.sleep(2.0)  # two TTLs: still active only because the sink keeps re-posting it
        assert len(alertmanager.alerts(alertname="NoFrames")) == 1
        posts = AlertMetrics.on(registry).alerts_sent.labels(sink="alertmanager", result="success")._value.get()
        assert posts >= 4
    finally:
        sink.close(2)
    # the sink is gone: nobody re-posts, so Alertmanager lets it expire at endsAt (= last post + TTL)
    wait_for(lambda: alertmanager.alerts(alertname="NoFrames") == [], timeout=5, what="alert to expire")


def test_rejected_request_is_counted_failed_not_retried(alertmanager: Alertmanager) -> None:
    registry = CollectorRegistry()
    config = AlertmanagerSinkConfig(type="alertmanager", url=alertmanager.url, backoff_initial_s=0.05)
    sink = AlertmanagerSink(config, metrics=AlertMetrics.on(registry))
    try:
        # a label name Alertmanager does not accept: it answers 400 for the whole batch
        sink.send(Alert(name="Bad", state="firing", labels={"bad-label": "x"}, annotations={}, starts_at=time.time()))
        sink.send(Alert(name="Good", state="firing", labels={}, annotations={}, starts_at=time.time()))
        assert sink.flush(5)
        metrics = AlertMetrics.on(registry)
        assert metrics.alerts_sent.labels(sink="alertmanager", result="failed")._value.get() == 1
        assert metrics.alerts_sent.labels(sink="alertmanager", result="retry")._value.get() == 0
        # the good one got through on its own; the bad one is not re-posted
        assert [a["labels"]["alertname"] for a in alertmanager.alerts()] == ["Good"]
    finally:
        sink.close(1)


def test_cli_alerts_test_reaches_alertmanager(alertmanager: Alertmanager, am_hook: AlertReceiver,
                                              tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from wirewatch.cli.app import app

    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump({"sinks": [{"type": "alertmanager", "url": alertmanager.url}]}))
    result = CliRunner().invoke(app, ["alerts", "test", str(path), "--no-resolve"])
    assert result.exit_code == 0, result.output
    assert "alertmanager: OK (success 1)" in result.output
    (found,) = wait_for(lambda: alertmanager.alerts(alertname="WirewatchTestAlert"), what="the test alert")
    assert found["labels"] == {"alertname": "WirewatchTestAlert", "severity": "info", "test": "true"}
