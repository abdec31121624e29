"""A small HTTP server for ``/metrics``, ``/healthz`` and ``/readyz`` (and whatever else mounts on it).

Routes are a plain dict of path -> handler, so another part (e.g. a web view) adds pages with
``server.add_route("/view", handler)`` on the same port. Binds 127.0.0.1 by default; an optional
bearer token protects every route. Runs in daemon threads; ``close()`` stops it.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import Field

from wirewatch.config.base import StrictModel
from wirewatch.web.config import WebConfig

log = logging.getLogger(__name__)


class HttpConfig(StrictModel):
    """The ``http`` section. ``port: 0`` picks a free port; ``enabled: false`` runs no server."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)
    bearer_token_file: str | None = None  # a file whose first line is the token; never logged
    web: WebConfig = Field(default_factory=WebConfig)  # the web view on the same port (wirewatch.web)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Handler = Callable[[], Response]


class HttpServer:
    """``/metrics`` from ``registry``; ``/healthz`` 200 while ``healthy()``; ``/readyz`` 200 while ``ready()``."""

    def __init__(self, registry: CollectorRegistry, *, host: str = "127.0.0.1", port: int = 0,
                 healthy: Callable[[], bool] = lambda: True, ready: Callable[[], bool] = lambda: True,
                 bearer_token: str | None = None) -> None:
        self.routes: dict[str, Handler] = {
            "/metrics": lambda: Response(200, generate_latest(registry), CONTENT_TYPE_LATEST),
            "/healthz": lambda: Response(200, b"ok\n") if healthy() else Response(503, b"unhealthy\n"),
            "/readyz": lambda: Response(200, b"ready\n") if ready() else Response(503, b"not ready\n"),
        }
        token = bearer_token.encode() if bearer_token else None
        routes = self.routes

        class _Handler(BaseHTTPRequestHandler):
            server_version = "wirewatch"

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                handler = routes.get(path)
                if token is not None and not _authorised(self.headers.get("Authorization"), token):
                    self._send(Response(401, b"unauthorised\n"), {"WWW-Authenticate": "Bearer"})
                elif handler is None:
                    self._send(Response(404, f"not found; try {', '.join(sorted(routes))}\n".encode()))
                else:
                    try:
                        self._send(handler())
                    except Exception:  # a failing page must not take the server down
                        log.exception("HTTP handler for %s failed", path)
                        self._send(Response(500, b"internal error\n"))

            def _send(self, response: Response, headers: dict[str, str] | None = None) -> None:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(response.body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: no per-request log lines
                log.debug("http: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self.host = str(self._server.server_address[0])
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="wirewatch-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add_route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _authorised(header: str | None, token: bytes) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token)
