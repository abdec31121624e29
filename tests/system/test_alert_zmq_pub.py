"""ZeroMQ PUB topics on loopback: a real SUB socket receives stats, changepoint and alert messages."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth
from prometheus_client import CollectorRegistry

from wirewatch.errors import ConfigError
from wirewatch.publish import AlertsConfig, Publisher, build_publisher
from wirewatch.publish.config import ZmqPublishConfig
from wirewatch.types import ChangePoint, FrameStats


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.term()


def _recv(sub: zmq.Socket, timeout_ms: int = 3000) -> tuple[str, Any]:
    if not sub.poll(timeout_ms):
        raise AssertionError("no message within the timeout")
    topic, body = sub.recv_multipart()
    return topic.decode(), json.loads(body)


def _connected_sub(context: zmq.Context, publisher: Publisher, topics: list[bytes]) -> zmq.Socket:
    """SUB connected and subscribed; warmed up with stats frames so nothing later is lost (slow joiner)."""
    assert publisher.zmq is not None
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for topic in [*topics, b"stats"]:
        sub.setsockopt(zmq.SUBSCRIBE, topic)
    sub.connect(publisher.zmq.endpoint)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        publisher.zmq.publish_stats(FrameStats(-1, 0.0, {}))
        if sub.poll(50):
            while sub.poll(50):
                sub.recv_multipart()
            sub.setsockopt(zmq.UNSUBSCRIBE, b"stats")
            if b"stats" in topics:
                sub.setsockopt(zmq.SUBSCRIBE, b"stats")
            return sub
    raise AssertionError("SUB never received the warm-up messages")


def _stream(**config: Any) -> ZmqPublishConfig:
    """The daemon's ``publish.zmq``: the ZeroMQ stream of stats, change points and alerts."""
    return ZmqPublishConfig.model_validate(config)


def test_sub_receives_stats_changepoint_and_alert(context: zmq.Context) -> None:
    config = AlertsConfig.model_validate({
        "rules": [{"kind": "changepoint", "name": "WireLengthChanged", "statistics": ["length_px_mean"]}],
    })
    publisher = build_publisher(config, CollectorRegistry(), zmq_config=_stream(bind="tcp://127.0.0.1:*"),
                                context=context)
    sub = _connected_sub(context, publisher, [b"stats", b"changepoint", b"alert"])
    try:
        assert publisher.zmq is not None and publisher.zmq.endpoint.startswith("tcp://127.0.0.1:")
        cp = ChangePoint(frame=40, detected_at=52, statistics=("length_px_mean", "particle_count"),
                         before={"length_px_mean": 30.0, "particle_count": 12.0},
                         after={"length_px_mean": 45.5, "particle_count": math.nan},
                         effect_size=4.25, detector="window", severity="critical")
        alerts = publisher.publish(FrameStats(52, 1_700_000_052.0, {"length_px_mean": 45.0, "width_px_mean": math.nan}),
                                   [cp], now=1_700_000_052.5)
        assert [a.name for a in alerts] == ["WireLengthChanged"]
        messages = [_recv(sub) for _ in range(3)]
    finally:
        sub.close()
        publisher.close(1)
    assert [topic for topic, _ in messages] == ["stats", "changepoint", "alert"]
    stats, change, alert = (body for _, body in messages)
    assert stats == {"frame": 52, "time": 1_700_000_052.0, "stats": {"length_px_mean": 45.0, "width_px_mean": None}}
    assert change == {"frame": 40, "detected_at": 52, "delay": 12, "statistics": ["length_px_mean", "particle_count"],
                      "before": {"length_px_mean": 30.0, "particle_count": 12.0},
                      "after": {"length_px_mean": 45.5, "particle_count": None},
                      "effect_size": 4.25, "detector": "window", "severity": "critical",
                     "kind": "level", "penalty": None, "attribution": "sample", "suspect": False}
    assert alert["name"] == "WireLengthChanged" and alert["state"] == "firing"
    assert alert["labels"] == {"statistic": "length_px_mean", "severity": "critical"}
    assert alert["frame"] == 40 and alert["starts_at"] == "2023-11-14T22:14:12.500Z"


def test_topic_filter_and_disabled_topics(context: zmq.Context) -> None:
    config = AlertsConfig.model_validate({
        "rules": [{"kind": "threshold", "name": "CountLow", "statistic": "particle_count", "min": 5}],
    })
    publisher = build_publisher(config, CollectorRegistry(), context=context,
                                zmq_config=_stream(bind="tcp://127.0.0.1:*", topics=["stats", "alert"]))
    sub = _connected_sub(context, publisher, [b"alert"])
    try:
        cp = ChangePoint(frame=1, detected_at=2, statistics=("particle_count",), before={}, after={},
                         effect_size=1.0, detector="cusum")
        publisher.publish(FrameStats(2, 2.0, {"particle_count": 1.0}), [cp], now=2.0)
        publisher.publish(FrameStats(3, 3.0, {"particle_count": 9.0}), [], now=3.0)
        got = [_recv(sub) for _ in range(2)]
        assert not sub.poll(200)  # no stats (not subscribed), no changepoint (topic disabled)
    finally:
        sub.close()
        publisher.close(1)
    assert [(topic, body["state"]) for topic, body in got] == [("alert", "firing"), ("alert", "resolved")]


def _curve_sub(context: zmq.Context, endpoint: str, server_public: bytes | None, client_cert: Path | None) -> zmq.Socket:
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    if server_public is not None and client_cert is not None:
        public, secret = zmq.auth.load_certificate(client_cert)
        sub.curve_publickey, sub.curve_secretkey = public, secret  # type: ignore[assignment]
        sub.curve_serverkey = server_public
    sub.setsockopt(zmq.SUBSCRIBE, b"stats")
    sub.connect(endpoint)
    return sub


def _which_receive(publisher: Publisher, subs: dict[str, zmq.Socket], seconds: float = 1.5) -> dict[str, bool]:
    """Publish for ``seconds`` (or until all got one); which SUB sockets received anything."""
    assert publisher.zmq is not None
    got = dict.fromkeys(subs, False)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not all(got.values()):
        publisher.zmq.publish_stats(FrameStats(1, 1.0, {"particle_count": 3.0}))
        time.sleep(0.02)
        for name, sub in subs.items():
            got[name] = got[name] or bool(sub.poll(0))
    return got


@pytest.mark.parametrize("authenticate", [False, True])
def test_curve_encryption_and_client_authentication(tmp_path: Path, context: zmq.Context,
                                                    authenticate: bool) -> None:
    keys = tmp_path / "keys"
    allowed = tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    zmq.auth.create_certificates(keys, "server")
    client_public_file, client_secret_file = zmq.auth.create_certificates(keys, "client")
    _, stranger_secret_file = zmq.auth.create_certificates(keys, "stranger")
    (allowed / "client.key").write_bytes(Path(client_public_file).read_bytes())
    server_public, _ = zmq.auth.load_certificate(keys / "server.key")
    curve: dict[str, Any] = {"server_secret_file": str(keys / "server.key_secret")}
    if authenticate:
        curve["authorized_clients_dir"] = str(allowed)
    publisher = build_publisher(AlertsConfig(), CollectorRegistry(), context=context,
                                zmq_config=_stream(bind="tcp://127.0.0.1:*", curve=curve))
    assert publisher.zmq is not None
    subs = {
        "client": _curve_sub(context, publisher.zmq.endpoint, server_public, Path(client_secret_file)),
        "stranger": _curve_sub(context, publisher.zmq.endpoint, server_public, Path(stranger_secret_file)),
        "plaintext": _curve_sub(context, publisher.zmq.endpoint, None, None),
    }
    try:
        got = _which_receive(publisher, subs)
    finally:
        for sub in subs.values():
            sub.close()
        publisher.close(1)
    assert got == {"client": True, "stranger": not authenticate, "plaintext": False}


def test_curve_key_errors_name_the_file(tmp_path: Path, context: zmq.Context) -> None:
    zmq.auth.create_certificates(tmp_path, "server")
    for path, message in ((tmp_path / "server.key", "holds no secret key"),
                          (tmp_path / "missing.key_secret", "cannot read CURVE certificate")):
        stream = _stream(bind="tcp://127.0.0.1:*", curve={"server_secret_file": str(path)})
        with pytest.raises(ConfigError, match=message):
            build_publisher(AlertsConfig(), CollectorRegistry(), zmq_config=stream, context=context)


def test_a_stalled_subscriber_never_blocks_the_publisher(context: zmq.Context) -> None:
    publisher = build_publisher(AlertsConfig(), CollectorRegistry(), context=context,
                                zmq_config=_stream(bind="tcp://127.0.0.1:*", sndhwm=10))
    sub = _connected_sub(context, publisher, [b"stats"])
    sub.setsockopt(zmq.RCVHWM, 10)
    try:
        assert publisher.zmq is not None
        stats = FrameStats(1, 1.0, {f"statistic_{i}": float(i) for i in range(400)})  # ~9 KB
        started = time.perf_counter()
        for _ in range(1000):  # nobody reads: the HWMs fill, PUB drops, nothing waits
            publisher.zmq.publish_stats(stats)
        assert time.perf_counter() - started < 5.0
        received = 0
        while sub.poll(200):
            sub.recv_multipart()
            received += 1
        assert received < 1000  # most were dropped at the high-water marks
    finally:
        sub.close()
        publisher.close(1)
