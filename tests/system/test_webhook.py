"""The webhook sink against a real local HTTP receiver (stdlib http.server on loopback).

Covers: payload and HMAC signature checked by the receiver, bearer token,
receiver down (connection refused) -> spooled -> delivered when it returns,
503 and slow (timeout) receivers retried, 4xx moved to failed/, and a
"daemon restart" (a new sink over the same spool) delivering each spooled
alert exactly once by idempotency key. Secrets never reach the logs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.system.alert_receiver import AlertReceiver, free_port
from wirewatch.errors import SinkError
from wirewatch.publish.config import WebhookSinkConfig
from wirewatch.publish.metrics import AlertMetrics
from wirewatch.publish.sinks.webhook import WebhookSink, idempotency_key, verify_signature
from wirewatch.types import Alert

HMAC_SECRET = "s3cr3t-hmac-key-7f1d"
TOKEN = "tok-9a8b7c6d5e"


def _alert(i: int = 0, state: str = "firing") -> Alert:
    return Alert(name="ParticleCountLow", state=state,  # type: ignore[arg-type]
                 labels={"statistic": "particle_count", "severity": "critical", "n": str(i)},
                 annotations={"summary": f"count low #{i}"}, starts_at=1_700_000_000.0 + i,
                 ends_at=1_700_000_100.0 + i if state == "resolved" else None, frame=100 + i)


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    key_file = tmp_path / "hmac.key"
    key_file.write_text(HMAC_SECRET + "\n")
    key_file.chmod(0o600)
    monkeypatch.setenv("WW_TEST_WEBHOOK_TOKEN", TOKEN)
    return {"hmac_secret": {"file": str(key_file)}, "bearer_token": {"env": "WW_TEST_WEBHOOK_TOKEN"}}


def _sink(url: str, spool: Path, registry: CollectorRegistry, **extra: object) -> WebhookSink:
    config = WebhookSinkConfig.model_validate({
        "type": "webhook", "url": url, "spool_dir": str(spool), "timeout_s": 1.0,
        "backoff_initial_s": 0.05, "backoff_max_s": 0.2, **extra})
    return WebhookSink(config, metrics=AlertMetrics.on(registry))


def _sent(registry: CollectorRegistry, result: str, sink: str = "webhook") -> float:
    return AlertMetrics.on(registry).alerts_sent.labels(sink=sink, result=result)._value.get()


def _depth(registry: CollectorRegistry) -> float:
    return AlertMetrics.on(registry).spool_depth._value.get()


@pytest.fixture
def receiver() -> Iterator[AlertReceiver]:
    r = AlertReceiver()
    yield r
    r.close()


def test_payload_signature_token_and_key(tmp_path: Path, receiver: AlertReceiver, secrets: dict[str, object],
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    registry = CollectorRegistry()
    sink = _sink(receiver.url + "/hook?source=test", tmp_path / "spool", registry, **secrets)
    try:
        sink.send(_alert(1))
        sink.send(_alert(1, "resolved"))
        got = receiver.wait_for(2)
    finally:
        sink.close(2)
    first, second = got
    assert first.path == "/hook?source=test"
    assert verify_signature(HMAC_SECRET.encode(), first.body, first.headers["x-wirewatch-signature-256"])
    assert not verify_signature(b"wrong", first.body, first.headers["x-wirewatch-signature-256"])
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["content-type"] == "application/json"
    body = first.json()
    assert body["version"] == 1 and body["status"] == "firing"
    assert body["idempotency_key"] == first.headers["idempotency-key"] == idempotency_key(_alert(1))
    assert body["alert"] == {
        "name": "ParticleCountLow", "state": "firing",
        "labels": {"statistic": "particle_count", "severity": "critical", "n": "1"},
        "annotations": {"summary": "count low #1"}, "starts_at": "2023-11-14T22:13:21.000Z", "ends_at": None,
        "frame": 101, "fingerprint": "ParticleCountLow|n=1|severity=critical|statistic=particle_count"}
    assert second.json()["alert"]["ends_at"] == "2023-11-14T22:15:01.000Z"
    assert second.headers["idempotency-key"] != first.headers["idempotency-key"]
    assert _sent(registry, "success") == 2 and _depth(registry) == 0
    assert not list((tmp_path / "spool").glob("*.json"))
    logged = caplog.text + repr(sink)
    assert HMAC_SECRET not in logged and TOKEN not in logged


def test_receiver_down_then_back_delivers_from_spool(tmp_path: Path, secrets: dict[str, object],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()  # nothing listens here yet: connection refused
    registry = CollectorRegistry()
    sink = _sink(f"http://127.0.0.1:{port}/hook", tmp_path / "spool", registry, **secrets)
    receiver = None
    try:
        sink.send(_alert(1))
        sink.send(_alert(2))
        time.sleep(0.5)
        assert len(list((tmp_path / "spool").glob("*.json"))) == 2  # waiting on disk
        assert _depth(registry) == 2
        assert _sent(registry, "retry") >= 2 and _sent(registry, "success") == 0
        receiver = AlertReceiver(port=port)
        got = receiver.wait_for(2, timeout=5)
        assert sink.flush(5)
    finally:
        sink.close(2)
        if receiver:
            receiver.close()
    assert [r.json()["alert"]["labels"]["n"] for r in got] == ["1", "2"]  # in the order raised
    assert all(verify_signature(HMAC_SECRET.encode(), r.body, r.headers["x-wirewatch-signature-256"]) for r in got)
    assert _depth(registry) == 0 and _sent(registry, "success") == 2
    assert "Connection refused" in caplog.text or "ConnectionRefusedError" in caplog.text
    assert HMAC_SECRET not in caplog.text and TOKEN not in caplog.text


def test_restart_delivers_spooled_alerts_exactly_once(tmp_path: Path, secrets: dict[str, object]) -> None:
    port = free_port()
    spool = tmp_path / "spool"
    first = _sink(f"http://127.0.0.1:{port}/hook", spool, CollectorRegistry(), **secrets)
    alerts = [_alert(i) for i in range(5)]
    for alert in alerts:
        first.send(alert)
    first.send(alerts[0])  # the same transition again is not spooled twice
    first.close(0.5)  # "daemon stops" with the receiver still down
    assert len(list(spool.glob("*.json"))) == 5

    receiver = AlertReceiver(port=port)
    try:
        registry = CollectorRegistry()
        second = _sink(f"http://127.0.0.1:{port}/hook", spool, registry, **secrets)  # "daemon restarted"
        assert _depth(registry) == 5
        try:
            receiver.wait_for(5, timeout=5)
            assert second.flush(5)
        finally:
            second.close(2)
        third = _sink(f"http://127.0.0.1:{port}/hook", spool, CollectorRegistry(), **secrets)  # and again
        time.sleep(0.3)
        third.close(1)
        keys = receiver.keys()
    finally:
        receiver.close()
    assert sorted(keys) == sorted(idempotency_key(a) for a in alerts)
    assert set(keys.values()) == {1}  # each alert exactly once
    assert not list(spool.glob("*.json")) and _depth(registry) == 0


def test_unhealthy_receiver_503_is_retried_until_it_recovers(tmp_path: Path, receiver: AlertReceiver) -> None:
    receiver.status = 503
    registry = CollectorRegistry()
    sink = _sink(receiver.url, tmp_path / "spool", registry)
    try:
        sink.send(_alert(7))
        deadline = time.monotonic() + 5
        while _sent(registry, "retry") < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _sent(registry, "retry") >= 3 and not receiver.accepted()
        receiver.status = 200
        receiver.wait_for(1)
        assert sink.flush(5)
    finally:
        sink.close(2)
    assert receiver.keys() == {idempotency_key(_alert(7)): 1}


def test_slow_receiver_times_out_and_the_retry_carries_the_same_key(tmp_path: Path,
                                                                     receiver: AlertReceiver) -> None:
    receiver.delay_s = 1.5  # longer than the sink's 1 s timeout
    registry = CollectorRegistry()
    sink = _sink(receiver.url, tmp_path / "spool", registry)
    try:
        sink.send(_alert(3))
        deadline = time.monotonic() + 5
        while _sent(registry, "retry") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _sent(registry, "retry") >= 1
        receiver.delay_s = 0.0
        assert sink.flush(8)
    finally:
        sink.close(2)
    # the slow receiver may have acted on the timed-out request too: same key, so it can tell
    keys = receiver.keys()
    assert list(keys) == [idempotency_key(_alert(3))]
    assert _sent(registry, "success") == 1


def test_rejected_alert_moves_to_failed_and_does_not_block_the_rest(tmp_path: Path,
                                                                     receiver: AlertReceiver) -> None:
    receiver.status = 400
    registry = CollectorRegistry()
    sink = _sink(receiver.url, tmp_path / "spool", registry)
    try:
        sink.send(_alert(1))
        assert sink.flush(5)
        receiver.status = 200
        sink.send(_alert(2))
        receiver.wait_for(1)
        assert sink.flush(5)
    finally:
        sink.close(2)
    failed = list((tmp_path / "spool" / "failed").glob("*.json"))
    assert len(failed) == 1 and json.loads(failed[0].read_bytes())["alert"]["labels"]["n"] == "1"
    reason = failed[0].with_name(failed[0].name + ".reason").read_text()
    assert "HTTP 400" in reason
    assert _sent(registry, "failed") == 1 and _sent(registry, "success") == 1 and _sent(registry, "retry") == 0


def test_one_spool_directory_one_sink(tmp_path: Path, receiver: AlertReceiver) -> None:
    sink = _sink(receiver.url, tmp_path / "spool", CollectorRegistry())
    try:
        with pytest.raises(SinkError, match="in use"):
            _sink(receiver.url, tmp_path / "spool", CollectorRegistry())
    finally:
        sink.close(1)
    _sink(receiver.url, tmp_path / "spool", CollectorRegistry()).close(1)  # free again after close


def test_cli_alerts_test_delivers_or_reports_not_delivered(tmp_path: Path, receiver: AlertReceiver) -> None:
    import yaml
    from typer.testing import CliRunner

    from wirewatch.cli.app import app

    def config(url: str) -> Path:
        path = tmp_path / "alerts.yaml"
        path.write_text(yaml.safe_dump({"labels": {"instance": "rig"}, "sinks": [
            {"type": "webhook", "url": url, "spool_dir": str(tmp_path / "spool"), "timeout_s": 0.5,
             "backoff_initial_s": 0.05, "backoff_max_s": 0.1}]}))
        return path

    runner = CliRunner()
    result = runner.invoke(app, ["alerts", "test", str(config(receiver.url + "/hook"))])
    assert result.exit_code == 0, result.output
    assert "webhook: OK (success 2, spooled 2)" in result.output
    states = [(r.json()["alert"]["name"], r.json()["status"], r.json()["alert"]["labels"]["instance"])
              for r in receiver.accepted()]
    assert states == [("WirewatchTestAlert", "firing", "rig"), ("WirewatchTestAlert", "resolved", "rig")]

    down = f"http://127.0.0.1:{free_port()}/hook"
    result = runner.invoke(app, ["alerts", "test", str(config(down)), "--timeout", "0.5", "--no-resolve"])
    assert result.exit_code == 1 and "webhook: NOT DELIVERED" in result.output
    assert len(list((tmp_path / "spool").glob("*.json"))) == 1  # kept for the daemon to deliver


CRASHING_DAEMON = """
import sys, time
from pathlib import Path
from prometheus_client import CollectorRegistry
from wirewatch.publish.config import WebhookSinkConfig
from wirewatch.publish.metrics import AlertMetrics
from wirewatch.publish.sinks.webhook import WebhookSink
from wirewatch.types import Alert

url, spool, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sink = WebhookSink(WebhookSinkConfig(type="webhook", url=url, spool_dir=Path(spool), backoff_initial_s=0.05,
                                     backoff_max_s=0.1, timeout_s=0.5), metrics=AlertMetrics.on(CollectorRegistry()))
for i in range(n):
    sink.send(Alert(name="Crash", state="firing", labels={"n": str(i)}, annotations={}, starts_at=1.7e9 + i))
print("spooled", flush=True)
time.sleep(60)  # retrying against a dead receiver until SIGKILL
"""


def test_sigkill_then_restart_delivers_each_spooled_alert_once(tmp_path: Path) -> None:
    """A real crash (SIGKILL, no close()) while the receiver is down loses nothing and duplicates nothing."""
    import subprocess
    import sys

    port = free_port()
    spool = tmp_path / "spool"
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_DAEMON, f"http://127.0.0.1:{port}/hook", str(spool), "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == b"spooled", proc.stderr.read().decode() if proc.stderr else line
        time.sleep(0.3)  # a few failed attempts happen
    finally:
        proc.kill()
        proc.wait(10)
    assert len(list(spool.glob("*.json"))) == 4
    receiver = AlertReceiver(port=port)
    try:
        registry = CollectorRegistry()
        sink = _sink(f"http://127.0.0.1:{port}/hook", spool, registry)  # the lock died with the process
        try:
            receiver.wait_for(4, timeout=5)
            assert sink.flush(5)
        finally:
            sink.close(2)
        keys = receiver.keys()
        labels = sorted(r.json()["alert"]["labels"]["n"] for r in receiver.accepted())
    finally:
        receiver.close()
    assert labels == ["0", "1", "2", "3"] and set(keys.values()) == {1}
    assert not list(spool.glob("*.json")) and not list(spool.glob(".tmp-*"))


def test_trickling_receiver_is_cut_off_at_the_deadline() -> None:
    """A receiver that sends its reply one byte at a time cannot hold the sink beyond timeout_s."""
    import socket
    import threading

    from wirewatch.publish.sinks.transport import HttpTransport

    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.1)  # every read succeeds well within the per-read timeout

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match=r"no complete reply within 0\.8 s"):
            HttpTransport().post(f"http://127.0.0.1:{server.getsockname()[1]}/x", b"{}", {}, timeout=0.8)
        assert time.monotonic() - started < 1.5
    finally:
        stop.set()
        server.close()
        thread.join(2)
