"""The webhook sink's signed posts against deploy/process-control/receiver.py on loopback (issue 39):
fresh signatures accepted once, stale / wrong / malformed / non-ASCII ones answered 401, an in-window
replay not logged twice."""

from __future__ import annotations

import http.client
import io
import json
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from tests.unit.test_webhook_signature import RECEIVER
from wirewatch.publish.config import WebhookSinkConfig
from wirewatch.publish.encode import dumps
from wirewatch.publish.metrics import AlertMetrics
from wirewatch.publish.sinks.signature import sign
from wirewatch.publish.sinks.webhook import WebhookSink, idempotency_key, webhook_body
from wirewatch.types import Alert

SECRET = "hmac-key-for-the-receiver-test"


def _alert(i: int) -> Alert:
    return Alert(name="WidthHigh", state="firing", labels={"n": str(i), "severity": "warning"},
                 annotations={"summary": "wide"}, starts_at=1_700_000_000.0 + i, frame=i)


def _post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/alerts", body=body, headers={"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def _sink(tmp_path: Path, port: int, key_file: Path, **extra: Any) -> WebhookSink:
    config = WebhookSinkConfig.model_validate({
        "type": "webhook", "url": f"http://127.0.0.1:{port}/alerts", "spool_dir": str(tmp_path / "spool"),
        "hmac_secret": {"file": str(key_file)}, "backoff_initial_s": 0.05, "backoff_max_s": 0.1, **extra})
    return WebhookSink(config, metrics=AlertMetrics.on(CollectorRegistry()))


def test_receiver_accepts_signed_alerts_once_and_refuses_the_rest(tmp_path: Path) -> None:
    key_file = tmp_path / "hmac.key"
    key_file.write_text(SECRET + "\n")
    key_file.chmod(0o600)
    receiver = RECEIVER.Receiver("127.0.0.1", 0, out=io.StringIO(), hmac_secret=SECRET.encode()).start()
    sink = _sink(tmp_path, receiver.port, key_file)
    try:
        sink.send(_alert(1))
        assert sink.flush(10)
        assert [r["alertname"] for r in receiver.received] == ["WidthHigh"]
        assert receiver.received[0]["idempotency_key"] == idempotency_key(_alert(1))
        key = idempotency_key(_alert(2))
        body = dumps(webhook_body(_alert(2), key))
        now = int(time.time())
        good = sign(SECRET.encode(), body, timestamp=now)
        assert _post(receiver.port, body, {"X-Wirewatch-Signature-256": good}) == (200, {"accepted": 1})
        # the same request replayed within the window: answered, not acted on twice
        assert _post(receiver.port, body, {"X-Wirewatch-Signature-256": good}) == (200, {"accepted": 0})
        refused = {
            "stale (captured an hour ago)": sign(SECRET.encode(), body, timestamp=now - 3600),
            "from the future": sign(SECRET.encode(), body, timestamp=now + 3600),
            "wrong key": sign(b"guess", body, timestamp=now),
            "body-only (old form)": "sha256=" + good.split("v1=")[1],
            "non-ASCII": "t=\u00e9,v1=\u00e9",
            "garbage": "t=1,v1=zz",
        }
        for what, header in refused.items():
            status, doc = _post(receiver.port, body, {"X-Wirewatch-Signature-256": header})
            assert status == 401, what
            assert "X-Wirewatch-Signature-256" in doc["error"], what
        assert _post(receiver.port, body, {})[0] == 401
        assert receiver.refused_signatures == len(refused) + 1
        assert [r["labels"]["n"] for r in receiver.received] == ["1", "2"]
    finally:
        sink.close(2)
        receiver.close()


def test_body_only_signatures_are_sent_only_when_configured(tmp_path: Path) -> None:
    key_file = tmp_path / "hmac.key"
    key_file.write_text(SECRET + "\n")
    key_file.chmod(0o600)
    receiver = RECEIVER.Receiver("127.0.0.1", 0, out=io.StringIO(), hmac_secret=SECRET.encode()).start()
    sink = _sink(tmp_path, receiver.port, key_file, signature_version="body-only")
    try:
        sink.send(_alert(3))
        assert sink.flush(10)  # 401 is final: moved to failed/
        assert receiver.received == [] and receiver.refused_signatures == 1
        assert len(list((tmp_path / "spool" / "failed").glob("*.json"))) == 1
    finally:
        sink.close(2)
        receiver.close()
