#!/usr/bin/env python3
"""A stand-in for a process-control system: receives Alertmanager webhook posts and logs each alert.

Alertmanager (deploy/alertmanager/alertmanager.yml) posts its webhook JSON
(``{"version": "4", "status": ..., "alerts": [...]}``) to ``POST /alerts``. This receiver checks the
body, writes one JSON line per alert to stdout (and to ``--log FILE`` when given), and answers 200;
a body that is not such a document gets 400 and a message naming the problem. Replace it with the
real hook of your process-control system; the payload it receives is the same.

Standard library only, so it runs in the wirewatch image or on any host with Python 3.9+::

    python receiver.py --host 0.0.0.0 --port 9095 [--log alerts.jsonl] [--token-file FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import signal
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

MAX_BODY_BYTES = 1 << 20  # Alertmanager caps a post at max_alerts; 1 MiB is plenty
DISCARD_BYTES, DISCARD_TIMEOUT_S = 16 << 20, 5.0  # what an oversized post may still send before its 413


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook document."""


def parse_webhook(body: bytes) -> list[dict[str, Any]]:
    """The alerts of an Alertmanager webhook body, each flattened to one log record."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(doc, Mapping):
        raise PayloadError(f"body must be a JSON object, got {type(doc).__name__}")
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
                 log_path: Path | None = None, token: str | None = None) -> None:
        self.received: list[dict[str, Any]] = []
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
                try:
                    records = parse_webhook(self.rfile.read(length))
                except PayloadError as exc:
                    self._reply(400, {"error": str(exc)})
                    return
                receiver._accept(records)
                self._reply(200, {"accepted": len(records)})

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

    def _accept(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            self.received.extend(records)
            lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
            self._out.write(lines)
            self._out.flush()
            if self._log_path is not None:
                with self._log_path.open("a", encoding="utf-8") as f:
                    f.write(lines)

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
    args = parser.parse_args(argv)
    token = args.token_file.read_text(encoding="utf-8").splitlines()[0].strip() if args.token_file else None
    receiver = Receiver(args.host, args.port, log_path=args.log, token=token)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `docker stop`: exit at once, nothing to flush
    print(f"process-control receiver on http://{args.host}:{receiver.port}/alerts", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        receiver.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
