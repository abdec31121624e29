"""End to end: frames over ZeroMQ -> daemon (watershed) -> statistics -> alert rule -> a real Alertmanager,
a webhook receiver and a ZeroMQ SUB, all on loopback. Frames without wires make the particle count drop,
which fires the alert; frames with wires again resolve it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from tests.system.alert_receiver import AlertReceiver
from tests.system.helpers import ALERTMANAGER_BINARY, Alertmanager, daemon_config, wait_for
from wirewatch.daemon.service import Daemon
from wirewatch.ingest import encode_series

pytestmark = pytest.mark.skipif(
    ALERTMANAGER_BINARY is None,
    reason="Alertmanager binary absent: apt-get install prometheus-alertmanager (.ci/run does)")


def _frame(i: int, wires: bool, size: int = 96) -> np.ndarray:
    img = np.zeros((size, size), np.uint8)
    if wires:
        img[10 + i % 5:16 + i % 5, 8:70] = 200
        img[30:90, 60:66] = 180
    return img


def test_daemon_alert_reaches_alertmanager_webhook_and_zmq_then_resolves(
        tmp_path: Path, pusher: tuple[zmq.Socket, str], alertmanager: Alertmanager) -> None:
    sock, endpoint = pusher
    hook = AlertReceiver()
    config = daemon_config(
        endpoint, "array-1.0", ingest={"policy": "queue"}, changepoint={"enabled": False},
        pipeline={"shutdown_timeout_s": 3},  # the stream never ends on its own here
        alerts={
            "labels": {"instance": "e2e"},
            "rules": [{"kind": "threshold", "name": "NoWiresSeen", "statistic": "particle_count", "min": 1,
                       "for_frames": 3, "clear_frames": 2, "severity": "critical"}],
            "sinks": [{"type": "alertmanager", "url": alertmanager.url, "backoff_initial_s": 0.05},
                      {"type": "webhook", "url": hook.url + "/hook", "spool_dir": str(tmp_path / "spool"),
                       "backoff_initial_s": 0.05}],
        },
        publish={"zmq": {"bind": "tcp://127.0.0.1:*", "topics": ["alert"]}})
    daemon = Daemon(config).start()
    sub_ctx = zmq.Context()
    sub = sub_ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"alert")
    try:
        publisher = daemon.built.publisher
        assert publisher is not None and publisher.zmq is not None
        sub.connect(publisher.zmq.endpoint)
        time.sleep(0.3)  # let the subscription reach the PUB socket before anything is published
        frames = [_frame(i, wires=True) for i in range(4)] + [_frame(i, wires=False) for i in range(4, 9)]
        for parts in encode_series("array-1.0", frames, first_frame=0):
            sock.send_multipart(parts)
        found = wait_for(lambda: alertmanager.alerts(alertname="NoWiresSeen"), what="the alert in Alertmanager")
        assert found[0]["labels"] == {"alertname": "NoWiresSeen", "instance": "e2e", "statistic": "particle_count",
                                      "severity": "critical"}
        assert "particle_count = 0 at frame 6" in found[0]["annotations"]["description"]

        for parts in encode_series("array-1.0", [_frame(i, wires=True) for i in range(9, 13)], first_frame=9):
            sock.send_multipart(parts)
        wait_for(lambda: alertmanager.alerts(alertname="NoWiresSeen") == [], what="the alert to resolve")
        hook.wait_for(2, timeout=15)
        assert sub.poll(5000)
        zmq_msgs = [json.loads(sub.recv_multipart()[1])]
        assert sub.poll(5000)
        zmq_msgs.append(json.loads(sub.recv_multipart()[1]))
    finally:
        daemon.close()
        sub.close()
        sub_ctx.term()
        hook.close()
    bodies = [r.json() for r in hook.accepted()]
    assert [(b["alert"]["name"], b["status"], b["alert"]["frame"]) for b in bodies] == [
        ("NoWiresSeen", "firing", 6), ("NoWiresSeen", "resolved", 10)]
    assert [(m["state"], m["frame"]) for m in zmq_msgs] == [("firing", 6), ("resolved", 10)]
