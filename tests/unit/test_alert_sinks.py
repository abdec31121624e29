"""Sinks through the transport seam (no sockets): spool, retries, backoff, payloads, secrets, metrics."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from wirewatch.errors import ConfigError, SinkError
from wirewatch.publish import AlertsConfig, build_publisher
from wirewatch.publish.config import AlertmanagerSinkConfig, SecretRef, WebhookSinkConfig
from wirewatch.publish.encode import changepoint_to_dict, dumps, rfc3339, stats_to_dict
from wirewatch.publish.metrics import AlertMetrics
from wirewatch.publish.sinks.alertmanager import AlertmanagerSink, alertmanager_payload
from wirewatch.publish.sinks.base import AlertSink
from wirewatch.publish.sinks.credentials import load_secret
from wirewatch.publish.sinks.spool import Spool, SpoolFull
from wirewatch.publish.sinks.transport import Backoff, HttpResponse, display_url, retry_after_s, retryable
from wirewatch.publish.sinks.webhook import WebhookSink, idempotency_key, sign, verify_signature
from wirewatch.types import Alert, ChangePoint, FrameStats


class ScriptedTransport:
    """Answers from a script: an int status, an exception to raise, or (status, headers)."""

    def __init__(self, *script: Any, default: int = 200) -> None:
        self.script = list(script)
        self.default = default
        self.calls: list[tuple[str, bytes, dict[str, str], float, float]] = []
        self._lock = threading.Lock()

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResponse:
        with self._lock:
            self.calls.append((url, body, dict(headers), timeout, time.monotonic()))
            step = self.script.pop(0) if self.script else self.default
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, tuple):
            return HttpResponse(status=step[0], headers=step[1])
        return HttpResponse(status=step, body=b"nope" if step >= 300 else b"")


def _alert(i: int = 0, state: str = "firing") -> Alert:
    return Alert(name="CountLow", state=state, labels={"statistic": "particle_count", "n": str(i)},  # type: ignore[arg-type]
                 annotations={"summary": "low"}, starts_at=1_700_000_000.0 + i,
                 ends_at=1_700_000_050.0 if state == "resolved" else None, frame=i)


def _sent(registry: CollectorRegistry, sink: str, result: str) -> float:
    return AlertMetrics.on(registry).alerts_sent.labels(sink=sink, result=result)._value.get()


def _webhook(tmp_path: Path, transport: ScriptedTransport, registry: CollectorRegistry, **extra: Any) -> WebhookSink:
    config = WebhookSinkConfig.model_validate({"type": "webhook", "url": "http://hooks.local/x?token=abc",
                                               "spool_dir": str(tmp_path / "spool"), "backoff_initial_s": 0.01,
                                               "backoff_max_s": 0.05, "jitter": 0.0, **extra})
    return WebhookSink(config, metrics=AlertMetrics.on(registry), transport=transport)  # type: ignore[arg-type]


# -- encode / transport helpers --------------------------------------------------------------------

def test_json_forms_turn_nan_into_null() -> None:
    stats = FrameStats(3, 12.5, {"particle_count": 0.0, "length_px_mean": math.nan, "x": math.inf})
    assert json.loads(dumps(stats_to_dict(stats))) == {"frame": 3, "time": 12.5, "stats": {
        "particle_count": 0.0, "length_px_mean": None, "x": None}}
    cp = ChangePoint(frame=5, detected_at=9, statistics=("a",), before={"a": 1.0}, after={"a": math.nan},
                     effect_size=math.nan, detector="cusum")
    assert changepoint_to_dict(cp)["effect_size"] is None and changepoint_to_dict(cp)["delay"] == 4
    with pytest.raises(ValueError):
        dumps({"x": math.nan})  # a NaN that slipped through is an error, never invalid JSON
    assert rfc3339(0.0) == "1970-01-01T00:00:00.000Z" and rfc3339(1.2345) == "1970-01-01T00:00:01.234Z"


def test_backoff_and_status_rules() -> None:
    backoff = Backoff(initial_s=0.5, max_s=4.0, multiplier=2.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay(hint_s=3.0) == 3.0 and backoff.next_delay(hint_s=100.0) == 4.0
    jittered = Backoff(initial_s=1.0, max_s=10.0, jitter=0.2)
    assert all(0.8 <= jittered.next_delay() / (2.0 ** i) <= 1.2 for i in range(3))
    assert [retryable(s) for s in (200, 301, 400, 401, 404, 408, 425, 429, 500, 503)] == [
        False, False, False, False, False, True, True, True, True, True]
    assert retry_after_s(HttpResponse(503, {"retry-after": "7"})) == 7.0
    assert retry_after_s(HttpResponse(503, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) is None
    assert display_url("https://h.example:8443/a/b?token=s3cret#x") == "https://h.example:8443/a/b?..."


# -- secrets -----------------------------------------------------------------------------------------

def test_secrets_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   caplog: pytest.LogCaptureFixture) -> None:
    key = tmp_path / "key"
    key.write_text("abc123\n")
    key.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        secret = load_secret(SecretRef(file=key), "hmac")
    assert secret.reveal() == "abc123" and "abc123" not in repr(secret) and "abc123" not in str(secret)
    assert caplog.text == ""
    key.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_secret(SecretRef(file=key), "hmac")
    assert "readable by group or others" in caplog.text and "abc123" not in caplog.text
    monkeypatch.setenv("WW_TOKEN", "tok")
    assert load_secret(SecretRef(env="WW_TOKEN"), "token").reveal() == "tok"
    with pytest.raises(ConfigError, match="environment variable WW_MISSING is not set"):
        load_secret(SecretRef(env="WW_MISSING"), "token")
    with pytest.raises(ConfigError, match=r"cannot read secret file .*nope"):
        load_secret(SecretRef(file=tmp_path / "nope"), "token")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_secret(SecretRef(file=tmp_path / "empty"), "token")


def test_signature_helpers() -> None:
    body = b'{"a":1}'
    header = sign(b"k", body, timestamp=1_700_000_000)
    assert header == "t=1700000000,v1=" + hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert verify_signature(b"k", body, header, now=1_700_000_000)
    assert verify_signature(b"k", body, sign(b"k", body))  # now by default
    assert not verify_signature(b"k", body + b" ", header, now=1_700_000_000)
    assert not verify_signature(b"k", body, None)


# -- spool -------------------------------------------------------------------------------------------

def test_spool_order_dedup_leftovers_and_limits(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = Spool(directory, max_files=3)
    assert spool.put("aaaaaaaa", b"1") and spool.put("cccccccc", b"2") and spool.put("bbbbbbbb", b"3")
    assert not spool.put("aaaaaaaa", b"again")  # same key: not stored twice
    with pytest.raises(SpoolFull, match="is full \\(3 files\\)"):
        spool.put("dddddddd", b"4")
    with pytest.raises(ValueError, match="hex"):
        spool.put("../../etc", b"x")
    assert [spool.read(e) for e in spool.entries()] == [b"1", b"2", b"3"]  # send order, not key order
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    assert all(oct(e.path.stat().st_mode & 0o777) == "0o600" for e in spool.entries())
    spool.close()
    (directory / ".tmp-00000000000000000001-eeeeeeee").write_bytes(b"half")  # a crash mid-write
    (directory / "notes.txt").write_text("not ours")
    reopened = Spool(directory, max_files=3)
    assert not list(directory.glob(".tmp-*")) and len(reopened) == 3 and "cccccccc" in reopened
    first = reopened.entries()[0]
    reopened.remove(first)
    moved = reopened.move_to_failed(reopened.entries()[0], "rejected")
    assert len(reopened) == 1 and moved.exists() and (directory / "notes.txt").exists()
    reopened.close()


def test_spool_unwritable_directory_is_a_sink_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SinkError, match="cannot create alert spool directory"):
        Spool(blocker / "spool")


# -- webhook sink ------------------------------------------------------------------------------------

def test_webhook_retries_then_delivers_with_growing_backoff(tmp_path: Path) -> None:
    transport = ScriptedTransport(ConnectionRefusedError(111, "Connection refused"), TimeoutError("timed out"), 503,
                                  (429, {"retry-after": "0.02"}), 200)
    registry = CollectorRegistry()
    sink = _webhook(tmp_path, transport, registry)
    try:
        sink.send(_alert(1))
        assert sink.flush(5)
    finally:
        sink.close(1)
    assert len(transport.calls) == 5
    keys = {c[2]["Idempotency-Key"] for c in transport.calls}
    bodies = {c[1] for c in transport.calls}
    assert keys == {idempotency_key(_alert(1))} and len(bodies) == 1  # identical on every retry
    gaps = [b[4] - a[4] for a, b in zip(transport.calls, transport.calls[1:], strict=False)]
    assert gaps[0] >= 0.009 and gaps[1] >= 0.019 and gaps[3] >= 0.019  # 0.01, 0.02, 0.04, Retry-After
    assert _sent(registry, "webhook", "retry") == 4 and _sent(registry, "webhook", "success") == 1
    assert _sent(registry, "webhook", "spooled") == 1
    assert AlertMetrics.on(registry).spool_depth._value.get() == 0


def test_webhook_rejections_expiry_and_full_spool(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    transport = ScriptedTransport(404, 301, default=200)
    registry = CollectorRegistry()
    sink = _webhook(tmp_path, transport, registry, max_spool_files=2)
    try:
        sink.send(_alert(1))
        sink.send(_alert(2))
        sink.send(_alert(3))  # may be refused if the worker has not emptied the spool yet
        assert sink.flush(5)
    finally:
        sink.close(1)
    failed = sorted((tmp_path / "spool" / "failed").glob("*.json"))
    assert len(failed) == 2
    assert _sent(registry, "webhook", "failed") == 2
    assert _sent(registry, "webhook", "success") + _sent(registry, "webhook", "dropped") == 1
    assert "token=abc" not in caplog.text  # the query string (possibly a token) is not logged

    old = tmp_path / "old"
    registry2 = CollectorRegistry()
    spool = Spool(old / "spool")
    spool.put("ffffffff", b"{}")
    entry = spool.entries()[0]
    aged = entry.path.with_name(f"{time.time_ns() - 7_200 * 10**9:020d}-ffffffff.json")
    os.replace(entry.path, aged)
    spool.close()
    sink = _webhook(old, ScriptedTransport(), registry2, max_age_s=3600)
    try:
        assert sink.flush(5)
    finally:
        sink.close(1)
    assert _sent(registry2, "webhook", "expired") == 1 and len(list((old / "spool" / "failed").glob("*.json"))) == 1


def test_webhook_close_does_not_wait_out_a_long_backoff(tmp_path: Path) -> None:
    transport = ScriptedTransport(default=503)
    sink = _webhook(tmp_path, transport, CollectorRegistry(), backoff_initial_s=30, backoff_max_s=30)
    sink.send(_alert(1))
    deadline = time.monotonic() + 5
    while not transport.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    sink.close(5)
    assert time.monotonic() - started < 1.0
    assert len(list((tmp_path / "spool").glob("*.json"))) == 1  # kept for the next start


def test_webhook_disk_full_is_counted_and_recovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    transport = ScriptedTransport()
    sink = _webhook(tmp_path, transport, registry)
    real_fsync = os.fsync

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    try:
        monkeypatch.setattr(os, "fsync", disk_full)
        sink.send(_alert(1))  # must not raise into the pipeline
        assert _sent(registry, "webhook", "dropped") == 1
        assert "No space left on device" in caplog.text
        assert not [p for p in (tmp_path / "spool").iterdir() if p.name.startswith(".tmp-")]  # no debris
        monkeypatch.setattr(os, "fsync", real_fsync)  # space is back
        sink.send(_alert(2))
        assert sink.flush(5)
    finally:
        sink.close(1)
    assert [json.loads(c[1])["alert"]["labels"]["n"] for c in transport.calls] == ["2"]


# -- alertmanager sink -------------------------------------------------------------------------------

def test_alertmanager_payload() -> None:
    firing = alertmanager_payload(_alert(1), now=1_700_000_010.0, generator_url="http://x/")
    assert firing == {"labels": {"alertname": "CountLow", "statistic": "particle_count", "n": "1"},
                      "annotations": {"summary": "low"}, "startsAt": "2023-11-14T22:13:21.000Z",
                      "generatorURL": "http://x/"}
    with_ttl = alertmanager_payload(_alert(1), now=1_700_000_010.0, firing_ttl_s=300)
    assert with_ttl["endsAt"] == "2023-11-14T22:18:30.000Z" and "generatorURL" not in with_ttl
    resolved = alertmanager_payload(_alert(1, "resolved"), now=1_700_000_999.0, firing_ttl_s=300)
    assert resolved["endsAt"] == "2023-11-14T22:14:10.000Z"
    stepped_back = Alert(name="X", state="resolved", labels={}, annotations={}, starts_at=1_700_000_000.0,
                         ends_at=1_699_999_990.0)  # the wall clock went back 10 s in between
    assert alertmanager_payload(stepped_back, now=0.0)["endsAt"] == "2023-11-14T22:13:20.000Z"


def _am(transport: ScriptedTransport, registry: CollectorRegistry, **extra: Any) -> AlertmanagerSink:
    config = AlertmanagerSinkConfig.model_validate({"type": "alertmanager", "url": "http://am.local:9093/",
                                                    "backoff_initial_s": 0.01, "jitter": 0.0, **extra})
    return AlertmanagerSink(config, metrics=AlertMetrics.on(registry), transport=transport)  # type: ignore[arg-type]


def test_alertmanager_batches_retries_and_gives_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WW_AM_TOKEN", "am-token")
    transport = ScriptedTransport(500, OSError("reset"), 200, 503, 503, 503)
    registry = CollectorRegistry()
    sink = _am(transport, registry, max_attempts=3, bearer_token={"env": "WW_AM_TOKEN"})
    try:
        sink.send(_alert(1))
        sink.send(_alert(2))
        assert sink.flush(5)
        sink.send(_alert(1, "resolved"))
        assert sink.flush(5)
    finally:
        sink.close(1)
    assert transport.calls[0][0] == "http://am.local:9093/api/v2/alerts"
    assert transport.calls[0][2]["Authorization"] == "Bearer am-token"
    first_batch = json.loads(transport.calls[0][1])
    assert [a["labels"]["n"] for a in first_batch] in (["1", "2"], ["1"])  # batched when both were queued
    delivered = sum(len(json.loads(c[1])) for c in transport.calls[2:3])
    assert _sent(registry, "alertmanager", "success") == delivered
    assert _sent(registry, "alertmanager", "failed") >= 1  # the 503 x3 batch is given up after max_attempts
    assert "am-token" not in repr(sink)


def test_alertmanager_resends_active_alerts_until_resolved() -> None:
    transport = ScriptedTransport()
    sink = _am(transport, CollectorRegistry(), resend_interval_s=0.1)
    try:
        sink.send(_alert(1))
        time.sleep(0.45)
        sink.send(_alert(1, "resolved"))
        assert sink.flush(2)
        n = len(transport.calls)
        time.sleep(0.3)
        assert len(transport.calls) == n  # nothing active: no more posts
    finally:
        sink.close(1)
    posted = [json.loads(c[1]) for c in transport.calls]
    assert 3 <= len(posted) <= 7
    assert all("endsAt" not in batch[0] for batch in posted[:-1]) and "endsAt" in posted[-1][0]


# -- publisher, metrics --------------------------------------------------------------------------------

class ExplodingSink:
    name = "broken"

    def send(self, alert: Alert) -> None:
        raise RuntimeError("boom")

    def close(self, timeout: float = 5.0) -> None:
        pass


def test_publisher_counts_changepoints_and_survives_a_broken_sink(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    config = AlertsConfig.model_validate({"rules": [{"kind": "changepoint", "name": "Changed"}]})
    publisher = build_publisher(config, registry)
    assert isinstance(ExplodingSink(), AlertSink)
    publisher.sinks.append(ExplodingSink())
    cp = ChangePoint(frame=1, detected_at=3, statistics=("a", "b"), before={}, after={}, effect_size=2.0,
                     detector="pelt")
    alerts = publisher.publish(FrameStats(3, 3.0, {}), [cp], now=3.0)
    assert len(alerts) == 2
    metrics = AlertMetrics.on(registry)
    assert metrics.changepoints.labels(statistic="a", detector="pelt")._value.get() == 1
    assert metrics.changepoints.labels(statistic="b", detector="pelt")._value.get() == 1
    assert _sent(registry, "broken", "failed") == 2
    publisher.close(1)


def test_publisher_ticker_fires_time_based_rules() -> None:
    config = AlertsConfig.model_validate({"rules": [{"kind": "no_frames", "name": "NoFrames", "after_s": 0.1}],
                                          "tick_interval_s": 0.02})
    publisher = build_publisher(config, CollectorRegistry())
    received: list[Alert] = []

    class Collect:
        name = "collect"

        def send(self, alert: Alert) -> None:
            received.append(alert)

        def close(self, timeout: float = 5.0) -> None:
            pass

    publisher.sinks.append(Collect())
    publisher.start()
    try:
        deadline = time.monotonic() + 3
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        publisher.close(1)
    assert [a.name for a in received] == ["NoFrames"]


def test_metric_names_and_one_instance_per_registry() -> None:
    registry = CollectorRegistry()
    assert AlertMetrics.on(registry) is AlertMetrics.on(registry)
    assert AlertMetrics.on(CollectorRegistry()) is not AlertMetrics.on(registry)
    metrics = AlertMetrics.on(registry)
    metrics.sent("am", "success")
    metrics.set_spool_depth("a", 3)
    metrics.set_spool_depth("b", 2)
    metrics.set_spool_depth("a", 1)
    text = generate_latest(registry).decode()
    for name in ("wirewatch_changepoints_total", "wirewatch_alerts_sent_total", "wirewatch_alert_spool_depth",
                 "wirewatch_alerts_total", "wirewatch_alerts_suppressed_total", "wirewatch_zmq_published_total"):
        assert f"# HELP {name} " in text
    assert 'wirewatch_alerts_sent_total{result="success",sink="am"} 1.0' in text
    assert "wirewatch_alert_spool_depth 3.0" in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool absent (Debian package prometheus)")
def test_promtool_check_metrics_is_clean() -> None:
    registry = CollectorRegistry()
    metrics = AlertMetrics.on(registry)
    metrics.count_changepoints([ChangePoint(frame=1, detected_at=2, statistics=("a",), before={}, after={},
                                            effect_size=1.0, detector="cusum")])
    metrics.sent("webhook", "success")
    metrics.set_spool_depth("webhook", 2)
    metrics.alerts.labels(alertname="X", state="firing").inc()
    metrics.suppressed.labels(alertname="X").inc()
    metrics.published.labels(topic="alert", result="sent").inc()
    result = subprocess.run(["promtool", "check", "metrics"], input=generate_latest(registry),
                            capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.strip() == b"" and result.stderr.strip() == b""


def test_alertmanager_send_never_blocks_on_a_hanging_receiver() -> None:
    class Hanging:
        def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResponse:
            time.sleep(timeout)
            raise TimeoutError("timed out")

    registry = CollectorRegistry()
    config = AlertmanagerSinkConfig(type="alertmanager", url="http://am.local:9093", timeout_s=0.5,
                                    queue_size=10, max_batch=1, max_attempts=1)
    sink = AlertmanagerSink(config, metrics=AlertMetrics.on(registry), transport=Hanging())  # type: ignore[arg-type]
    try:
        started = time.perf_counter()
        for i in range(100):
            sink.send(_alert(i))
        assert time.perf_counter() - started < 0.2  # the pipeline thread is never held up
        assert 89 <= _sent(registry, "alertmanager", "dropped") <= 90  # bounded queue: 10 (+1 being posted) kept
    finally:
        sink.close(0.2)


def test_alertmanager_rejected_batch_is_split_to_find_the_bad_alert() -> None:
    transport = ScriptedTransport(400, 200, 400)
    registry = CollectorRegistry()
    sink = _am(transport, registry)
    try:
        rejected = sink._post([_alert(1), _alert(2)])
    finally:
        sink.close(0.5)
    assert [a.labels["n"] for a in rejected] == ["2"]
    assert [len(json.loads(c[1])) for c in transport.calls] == [2, 1, 1]
    assert _sent(registry, "alertmanager", "success") == 1 and _sent(registry, "alertmanager", "failed") == 1
