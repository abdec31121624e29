"""Alert delivery never stops silently (issue 39): backoff without overflow, a catch-all in every sink
worker (webhook, Alertmanager, ZeroMQ PUB, PV Access heartbeat), each worker's liveness in
``wirewatch_alert_sink_up{sink}`` and in the daemon's ``/healthz``. Real loopback receivers and sockets.
"""

from __future__ import annotations

import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import zmq
from prometheus_client import CollectorRegistry

from tests.system.alert_receiver import AlertReceiver
from tests.system.helpers import daemon_config, wait_for
from wirewatch.daemon.service import Daemon
from wirewatch.publish.config import AlertmanagerSinkConfig, WebhookSinkConfig
from wirewatch.publish.metrics import AlertMetrics
from wirewatch.publish.sinks.alertmanager import AlertmanagerSink
from wirewatch.publish.sinks.transport import HttpResponse, HttpTransport
from wirewatch.publish.sinks.webhook import WebhookSink
from wirewatch.publish.zmq_pub import ZmqPublisher
from wirewatch.types import Alert


def _alert(i: int = 0) -> Alert:
    return Alert(name="ParticleCountLow", state="firing", labels={"n": str(i)}, annotations={"summary": "low"},
                 starts_at=1_700_000_000.0 + i, frame=i)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_webhook_survives_2000_failures_then_delivers_exactly_once(tmp_path: Path) -> None:
    # 2000 answers of 503, then 200: at a 2x multiplier, 2.0 ** 1024 overflowed a float before, killing the thread
    receiver = AlertReceiver(fail_first=2000)
    registry = CollectorRegistry()
    config = WebhookSinkConfig.model_validate({
        "type": "webhook", "url": receiver.url + "/hook", "spool_dir": str(tmp_path / "spool"), "timeout_s": 2.0,
        "backoff_initial_s": 1e-6, "backoff_max_s": 1e-4, "backoff_multiplier": 2.0, "jitter": 0.0})
    sink = WebhookSink(config, metrics=AlertMetrics.on(registry))
    up_samples: list[float | None] = []
    try:
        sink.send(_alert(1))
        deadline = time.monotonic() + 60
        while not receiver.accepted() and time.monotonic() < deadline:
            up_samples.append(_sample(registry, "wirewatch_alert_sink_up", sink="webhook"))
            assert sink.alive(), f"the delivery thread died after {receiver.attempts} attempts"
            time.sleep(0.02)
        assert sink.flush(5)
        time.sleep(0.2)  # nothing more may arrive
        assert receiver.attempts == 2001  # 2000 refused, 1 accepted, none after
        assert receiver.keys() == {receiver.accepted()[0].headers["idempotency-key"]: 1}
        assert sink.alive() and up_samples and set(up_samples) == {1.0}
        assert _sample(registry, "wirewatch_alerts_sent_total", sink="webhook", result="retry") == 2000
        assert _sample(registry, "wirewatch_alerts_sent_total", sink="webhook", result="success") == 1
        assert _sample(registry, "wirewatch_alert_spool_depth") == 0
        assert sink._backoff.attempt == 0  # reset by the success
    finally:
        sink.close(2)
        receiver.close()
    assert not list((tmp_path / "spool").glob("*.json"))
    assert _sample(registry, "wirewatch_alert_sink_up", sink="webhook") == 1.0  # closed on purpose: not a fault


class FlakyTransport(HttpTransport):
    """The real transport, raising an unexpected (non-OSError) exception on the first ``n`` posts."""

    def __init__(self, n: int, exc: type[Exception] = RuntimeError) -> None:
        super().__init__()
        self.left = n
        self.exc = exc

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResponse:
        if self.left > 0:
            self.left -= 1
            raise self.exc("unexpected failure inside the transport")
        return super().post(url, body, headers, timeout)


def test_webhook_unexpected_error_is_counted_and_the_loop_goes_on(tmp_path: Path) -> None:
    receiver = AlertReceiver()
    registry = CollectorRegistry()
    config = WebhookSinkConfig.model_validate({
        "type": "webhook", "url": receiver.url, "spool_dir": str(tmp_path / "spool"),
        "backoff_initial_s": 0.01, "backoff_max_s": 0.02})
    sink = WebhookSink(config, metrics=AlertMetrics.on(registry), transport=FlakyTransport(3))
    try:
        sink.send(_alert(1))
        receiver.wait_for(1, timeout=10)
        assert sink.flush(5) and sink.alive()
        assert _sample(registry, "wirewatch_alert_sink_errors_total", sink="webhook") == 3
        assert receiver.attempts == 1 and len(receiver.keys()) == 1
    finally:
        sink.close(2)
        receiver.close()


def test_alertmanager_unexpected_error_is_counted_and_the_loop_goes_on() -> None:
    receiver = AlertReceiver()
    registry = CollectorRegistry()
    config = AlertmanagerSinkConfig.model_validate({
        "type": "alertmanager", "url": receiver.url, "backoff_initial_s": 0.01, "backoff_max_s": 0.02,
        "max_attempts": 3})
    sink = AlertmanagerSink(config, metrics=AlertMetrics.on(registry), transport=FlakyTransport(2, ValueError))
    try:
        sink.send(_alert(1))
        got = receiver.wait_for(1, timeout=10)  # two attempts failed unexpectedly, the third one delivered
        assert sink.flush(5) and sink.alive()
        assert _sample(registry, "wirewatch_alert_sink_errors_total", sink="alertmanager") == 2
        assert _sample(registry, "wirewatch_alerts_sent_total", sink="alertmanager", result="retry") == 2
        assert receiver.attempts == 1 and [a["labels"]["n"] for a in got[0].json()] == ["1"]
        # a failure outside the post (here: the clock) is caught by the loop's own catch-all
        sink._clock = _raise_once(sink._clock)
        sink.send(_alert(2))
        wait_for(lambda: receiver.attempts == 2, timeout=10, what="the second alert")
        assert sink.alive()
        assert _sample(registry, "wirewatch_alert_sink_errors_total", sink="alertmanager") == 3
        assert _sample(registry, "wirewatch_alert_sink_up", sink="alertmanager") == 1.0
    finally:
        sink.close(2)
        receiver.close()


def _raise_once(clock: Any) -> Any:
    state = {"raised": False}

    def tick() -> float:
        if not state["raised"]:
            state["raised"] = True
            raise OverflowError("clock failed")
        return float(clock())

    return tick


def test_zmq_publish_never_raises_and_reports_a_dead_socket() -> None:
    registry = CollectorRegistry()
    context = zmq.Context()
    publisher = ZmqPublisher("tcp://127.0.0.1:*", metrics=AlertMetrics.on(registry), context=context)
    try:
        # a NaN slipping into a payload made dumps() raise straight into the pipeline before
        assert publisher.publish("stats", {"x": math.nan}) is False
        assert _sample(registry, "wirewatch_zmq_published_total", topic="stats", result="error") == 1
        assert _sample(registry, "wirewatch_alert_sink_errors_total", sink="zmq") == 1
        assert publisher.alive() and _sample(registry, "wirewatch_alert_sink_up", sink="zmq") == 1.0
        assert publisher.publish("stats", {"x": 1.0}) is True
        publisher._socket.close()  # the socket vanishes under the publisher (as a terminated context does)
        assert publisher.publish("stats", {"x": 2.0}) is False
        assert _sample(registry, "wirewatch_alert_sink_up", sink="zmq") == 0.0 and not publisher.alive()
    finally:
        publisher.close()
        context.term()


def test_pva_heartbeat_survives_a_failing_callback() -> None:
    pytest.importorskip("p4p", reason="p4p (the epics extra) is not installed")
    from tests.system.test_epics_pva import pva_conf
    from wirewatch.epics.config import EpicsServerConfig
    from wirewatch.epics.server import PvaServer

    calls = {"n": 0}

    def state() -> str:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise KeyError("pipeline state not ready")  # not an OSError: ended the heartbeat before
        return "running"

    errors: list[int] = []
    cfg = EpicsServerConfig.model_validate({"prefix": "HB:WW:", "heartbeat_s": 0.02, "overlay": False})
    server = PvaServer(cfg, pva_conf=pva_conf(), state=state, on_error=lambda: errors.append(1)).start()
    try:
        wait_for(lambda: calls["n"] >= 8, timeout=10, what="heartbeats after the failures")
        assert server.heartbeat_alive() and server.heartbeat_errors == 3 and len(errors) == 3
        assert server.status.current().raw.value.startswith("running")
    finally:
        server.close()
    assert server.heartbeat_alive()  # stopped on purpose


class ThreadKilled(BaseException):
    """Escapes every ``except Exception``: the way a thread dies for good."""


class KillingTransport(HttpTransport):
    def __init__(self) -> None:
        super().__init__()
        self.kill = threading.Event()

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResponse:
        if self.kill.is_set():
            raise ThreadKilled()
        return super().post(url, body, headers, timeout)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_daemon_healthz_follows_the_sink_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the killed thread's traceback
    receiver = AlertReceiver()
    cfg = daemon_config("tcp://127.0.0.1:1", alerts={"sinks": [{
        "type": "webhook", "name": "hook", "url": receiver.url, "spool_dir": str(tmp_path / "spool"),
        "backoff_initial_s": 0.01, "backoff_max_s": 0.05}]})
    daemon = Daemon(cfg).start()
    try:
        assert daemon.http is not None
        sink: Any = next(s for s in daemon.built.publisher.sinks if s.name == "hook")
        transport = KillingTransport()
        sink._transport = transport
        sink.send(_alert(1))
        receiver.wait_for(1)
        for _ in range(5):  # true while the thread runs
            assert _status(daemon.http.url + "/healthz") == 200
            time.sleep(0.05)
        assert daemon.registry.get_sample_value("wirewatch_alert_sink_up", {"sink": "hook"}) == 1.0
        transport.kill.set()
        sink.send(_alert(2))  # its delivery kills the thread
        wait_for(lambda: not sink._thread.is_alive(), timeout=10, what="the sink thread to die")
        assert _status(daemon.http.url + "/healthz") == 503
        assert daemon.registry.get_sample_value("wirewatch_alert_sink_up", {"sink": "hook"}) == 0.0
        assert not daemon.healthy() and daemon.pipeline.healthy  # the pipeline itself is fine
    finally:
        daemon.stop()
        daemon.wait(20)
        receiver.close()


def test_rejected_alerts_fill_failed_only_up_to_its_bound_and_are_measured(tmp_path: Path) -> None:
    receiver = AlertReceiver(status=400)  # rejects everything for good
    registry = CollectorRegistry()
    config = WebhookSinkConfig.model_validate({
        "type": "webhook", "name": "pc", "url": receiver.url, "spool_dir": str(tmp_path / "spool"),
        "max_failed_files": 2})
    sink = WebhookSink(config, metrics=AlertMetrics.on(registry))
    try:
        for i in range(5):
            sink.send(_alert(i))
        assert sink.flush(10)
        assert receiver.attempts == 5
        assert _sample(registry, "wirewatch_alert_spool_failed_files", sink="pc") == 2
        assert _sample(registry, "wirewatch_alert_spool_failed_dropped_total", sink="pc") == 3
        assert len(list((tmp_path / "spool" / "failed").glob("*.json"))) == 2
        assert len(list((tmp_path / "spool" / "failed").glob("*.reason"))) == 2
    finally:
        sink.close(2)
        receiver.close()
