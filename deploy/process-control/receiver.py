#!/usr/bin/env python3
"""A stand-in for a process-control system: receives Alertmanager webhook posts and logs each alert.

Alertmanager (deploy/alertmanager/alertmanager.yml) posts its webhook JSON
(``{"version": "4", "status": ..., "alerts": [...]}``) to ``POST /alerts``. This receiver checks the
body, writes one JSON line per alert to stdout (and to ``--log FILE`` when given), and answers 200;
a body that is not such a document gets 400 and a message naming the problem. Replace it with the
real hook of your process-control system; the payload it receives is the same.

It also takes wirewatch's own webhook (an ``alerts.sinks`` entry of ``type: webhook``: ``{"version": 1,
"source": "wirewatch", "idempotency_key", "status", "alert"}``). With ``--hmac-secret-file`` every post must
carry a valid ``X-Wirewatch-Signature-256: t=<unix s>,v1=<hex HMAC-SHA256 of "<t>." + body>`` whose time is
within ``--tolerance-s`` (default 300 s) of ours, compared in constant time; anything else (missing,
malformed, non-ASCII, stale, wrong) gets 401. A wirewatch post whose idempotency key was already accepted is
answered 200 and not logged again, so a copy replayed within the window is harmless.

Standard library only, so it runs in the wirewatch image or on any host with Python 3.9+ (which is why the
signature check is a copy of ``wirewatch.publish.sinks.signature.verify_signature``, not an import)::

    python receiver.py --host 0.0.0.0 --port 9095 [--log alerts.jsonl] [--token-file FILE]
                       [--hmac-secret-file FILE [--tolerance-s 300]]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import re
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

MAX_BODY_BYTES = 1 << 20  # Alertmanager caps a post at max_alerts; 1 MiB is plenty
DISCARD_BYTES, DISCARD_TIMEOUT_S = 16 << 20, 5.0  # what an oversized post may still send before its 413
SIGNATURE_HEADER = "X-Wirewatch-Signature-256"
DEFAULT_TOLERANCE_S = 300.0
SEEN_KEYS = 100_000  # idempotency keys remembered (oldest forgotten first)
_T, _V1 = re.compile(r"[0-9]{1,15}"), re.compile(r"[0-9a-f]{64}")


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook document."""


def verify_signature(secret: bytes, body: bytes, header_value: Any, *, tolerance_s: float = DEFAULT_TOLERANCE_S,
                     now: float | None = None) -> bool:
    """``t=<unix s>,v1=<hex>`` over ``"<t>." + body``, within ``tolerance_s``; False (never an exception) for
    anything malformed. A copy of ``wirewatch.publish.sinks.signature.verify_signature`` (without the
    body-only legacy form)."""
    try:
        if not isinstance(header_value, str) or not header_value.isascii() or len(header_value) > 2048:
            return False
        stamps, candidates = [], []
        for item in header_value.strip().split(","):
            name, sep, field = item.strip().partition("=")
            if not sep:
                return False
            if name == "t":
                stamps.append(field)
            elif name == "v1":
                candidates.append(field)
        if len(stamps) != 1 or not _T.fullmatch(stamps[0]) or not candidates:
            return False
        if not all(_V1.fullmatch(c) for c in candidates):
            return False
        if not abs((time.time() if now is None else now) - int(stamps[0])) <= tolerance_s:
            return False
        expected = hmac.new(secret, stamps[0].encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
        matched = False
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
        return matched
    except Exception:
        return False


def parse_wirewatch(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """wirewatch's own webhook body (``version`` 1) as one log record."""
    alert = doc.get("alert")
    if not isinstance(alert, Mapping) or not isinstance(alert.get("name"), str):
        raise PayloadError("field 'alert' must be an object with a name")
    if doc.get("status") not in ("firing", "resolved"):
        raise PayloadError(f"status must be firing or resolved, got {doc.get('status')!r}")
    if not isinstance(doc.get("idempotency_key"), str):
        raise PayloadError("field 'idempotency_key' must be a string")
    labels = alert.get("labels") if isinstance(alert.get("labels"), Mapping) else {}
    return [{
        "status": doc["status"],
        "alertname": alert["name"],
        "severity": labels.get("severity"),
        "labels": dict(labels),
        "annotations": dict(alert.get("annotations") or {}),
        "startsAt": alert.get("starts_at"),
        "endsAt": alert.get("ends_at"),
        "fingerprint": alert.get("fingerprint"),
        "receiver": "wirewatch-webhook",
        "idempotency_key": doc["idempotency_key"],
    }]


def parse_webhook(body: bytes) -> list[dict[str, Any]]:
    """The alerts of an Alertmanager (or wirewatch) webhook body, each flattened to one log record."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(doc, Mapping):
        raise PayloadError(f"body must be a JSON object, got {type(doc).__name__}")
    if doc.get("source") == "wirewatch" and doc.get("version") == 1:
        return parse_wirewatch(doc)
    if doc.get("version") != "4":
        raise PayloadError(f"unsupported webhook version {doc.get('version')!r} (expected '4')")
    alerts = doc.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("field 'alerts' must be a list")
    records = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, Mapping):
            raise PayloadError(f"alerts[{i}] must be an object")
        labels = alert.get("labels")
        if not isinstance(labels, Mapping) or "alertname" not in labels:
            raise PayloadError(f"alerts[{i}].labels must be an object with an alertname")
        if alert.get("status") not in ("firing", "resolved"):
            raise PayloadError(f"alerts[{i}].status must be firing or resolved, got {alert.get('status')!r}")
        records.append({
            "status": alert["status"],
            "alertname": labels["alertname"],
            "severity": labels.get("severity"),
            "labels": dict(labels),
            "annotations": dict(alert.get("annotations") or {}),
            "startsAt": alert.get("startsAt"),
            "endsAt": alert.get("endsAt"),
            "fingerprint": alert.get("fingerprint"),
            "receiver": doc.get("receiver"),
        })
    return records


class Receiver:
    """The HTTP server; ``received`` keeps every record (for tests and ``GET /alerts``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9095, *, out: TextIO = sys.stdout,
                 log_path: Path | None = None, token: str | None = None, hmac_secret: bytes | None = None,
                 tolerance_s: float = DEFAULT_TOLERANCE_S) -> None:
        self.received: list[dict[str, Any]] = []
        self.refused_signatures = 0
        self._seen: OrderedDict[str, None] = OrderedDict()  # idempotency keys already accepted
        self._lock = threading.Lock()
        self._out = out
        self._log_path = log_path
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "wirewatch-process-control"

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._reply(200, {"status": "ok"})
                elif self.path == "/alerts":
                    with receiver._lock:
                        self._reply(200, {"alerts": list(receiver.received)})
                else:
                    self._reply(404, {"error": "try POST /alerts, GET /alerts or GET /healthz"})

            def do_POST(self) -> None:
                if self.path != "/alerts":
                    self._reply(404, {"error": "POST to /alerts"})
                    return
                if token is not None and not hmac.compare_digest(
                        self.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()):
                    self._reply(401, {"error": "missing or wrong bearer token"})
                    return
                try:
                    length = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    self._reply(411, {"error": "Content-Length required"})
                    return
                if length < 0 or length > MAX_BODY_BYTES:
                    # Let the client finish sending (read and dropped, never kept) so it reads the 413
                    # instead of a connection reset; a body beyond DISCARD_BYTES is cut off with the close.
                    self.close_connection = True
                    self.connection.settimeout(DISCARD_TIMEOUT_S)
                    left = min(max(length, 0), DISCARD_BYTES)
                    try:
                        while left > 0 and (chunk := self.rfile.read(min(left, 1 << 16))):
                            left -= len(chunk)
                    except OSError:
                        pass
                    self._reply(413, {"error": f"body of {length} bytes exceeds {MAX_BODY_BYTES}"})
                    return
                body = self.rfile.read(length)
                if hmac_secret is not None and not verify_signature(
                        hmac_secret, body, self.headers.get(SIGNATURE_HEADER), tolerance_s=tolerance_s):
                    with receiver._lock:
                        receiver.refused_signatures += 1
                    self._reply(401, {"error": f"missing, malformed, stale or wrong {SIGNATURE_HEADER}"})
                    return
                try:
                    records = parse_webhook(body)
                except PayloadError as exc:
                    self._reply(400, {"error": str(exc)})
                    return
                accepted = receiver._accept(records)
                self._reply(200, {"accepted": accepted})

            def _reply(self, status: int, doc: Mapping[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # one line per alert instead
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])

    def _accept(self, records: list[dict[str, Any]]) -> int:
        with self._lock:
            fresh = []
            for record in records:
                key = record.get("idempotency_key")
                if key is not None:
                    if key in self._seen:
                        continue  # delivered before (a retry whose reply was lost, or a replayed copy)
                    self._seen[key] = None
                    while len(self._seen) > SEEN_KEYS:
                        self._seen.popitem(last=False)
                fresh.append(record)
            records = fresh
            self.received.extend(records)
            lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
            self._out.write(lines)
            self._out.flush()
            if self._log_path is not None:
                with self._log_path.open("a", encoding="utf-8") as f:
                    f.write(lines)
            return len(records)

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def start(self) -> Receiver:
        threading.Thread(target=self.serve_forever, name="process-control", daemon=True).start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Log Alertmanager webhook alerts (a process-control stand-in).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9095)
    parser.add_argument("--log", type=Path, help="also append the JSON lines to this file")
    parser.add_argument("--token-file", type=Path, help="require 'Authorization: Bearer <first line>'")
    parser.add_argument("--hmac-secret-file", type=Path,
                        help=f"require a valid {SIGNATURE_HEADER} made with this key (first line)")
    parser.add_argument("--tolerance-s", type=float, default=DEFAULT_TOLERANCE_S,
                        help="how far the signature's time may be from ours (default %(default)s s)")
    args = parser.parse_args(argv)
    token = args.token_file.read_text(encoding="utf-8").splitlines()[0].strip() if args.token_file else None
    secret = (args.hmac_secret_file.read_text(encoding="utf-8").splitlines()[0].strip().encode("utf-8")
              if args.hmac_secret_file else None)
    receiver = Receiver(args.host, args.port, log_path=args.log, token=token, hmac_secret=secret,
                        tolerance_s=args.tolerance_s)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `docker stop`: exit at once, nothing to flush
    print(f"process-control receiver on http://{args.host}:{receiver.port}/alerts", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        receiver.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
