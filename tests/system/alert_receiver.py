"""A real HTTP receiver for alert tests: stdlib ``http.server`` on loopback in a thread.

Records every request (path, headers, raw body), answers with a status the
test chooses (e.g. 503 to play "receiver unhealthy"), and counts deliveries
per idempotency key the way a well-behaved receiver would deduplicate.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AlertReceiver:
    def __init__(self, port: int = 0, status: int = 200, delay_s: float = 0.0, fail_first: int = 0) -> None:
        self.status = status
        self.delay_s = delay_s
        self.fail_first = fail_first  # answer 503 to this many posts first (a receiver that is down, then back)
        self.attempts = 0  # every POST, answered 2xx or not
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                with receiver._lock:
                    receiver.attempts += 1
                    status = 503 if receiver.attempts <= receiver.fail_first else receiver.status
                    if 200 <= status < 300:
                        receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                          body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def accepted(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def keys(self) -> Counter[str]:
        """Accepted deliveries per Idempotency-Key header."""
        return Counter(r.headers.get("idempotency-key", "") for r in self.accepted())

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.accepted()
            if len(got) >= n:
                return got
            time.sleep(0.02)
        raise AssertionError(f"receiver got {len(self.accepted())} request(s), expected {n} within {timeout} s")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
