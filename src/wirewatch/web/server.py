"""``HttpServer``: the one HTTP server of wirewatch, on one stdlib ``ThreadingHTTPServer`` port.

It always serves ``/metrics`` (prometheus-client, from the registry given), ``/healthz`` and ``/readyz``
(200/503 from two callables) and any page another part adds with ``add_route(path, handler)``; with a
``WebApp`` mounted (the daemon's ``http.web.enabled``, ``wirewatch serve``) it also serves the web view's
pages, static files, JSON API, uploads and event stream. Binds 127.0.0.1 unless told otherwise; an optional
bearer token protects every route.

- One thread per connection. A connection that sends nothing, stops half-way through a request, or
  trickles its request line and headers so that they are not complete within ``request_timeout_s``
  (``http.request_timeout_s``) is closed, so idle, stuck or slowloris clients cannot pile up threads
  forever. A request body (an upload) may take longer while it keeps moving: each byte read moves its
  deadline on by 1 / ``BODY_MIN_RATE`` s (500 bytes/s, Apache mod_reqtimeout's ``MinRate``), so a large
  file on a slow link gets through and a body trickled a byte at a time is closed. A live page's event
  stream (long-lived by design) switches its socket to ``write_timeout_s``, so a stuck browser's write
  gives up instead of blocking.
- At most ``max_connections`` (``http.max_connections``, 256) connections are served at once, event streams
  included; one more is answered ``503 too many connections`` (``Retry-After: 1``) by the accepting thread
  and closed, so a flood of clients costs no more threads than that.
- Browsers cannot send an Authorization header with a page load or ``EventSource``, so with a token and the
  web view mounted the server also accepts a ``wirewatch_token`` cookie, set by opening ``/?token=TOKEN``
  once (303 to the same address without the token). Without the web view a token in a URL is refused (401).
- The DEBUG request log masks ``token=`` values (``wirewatch.security.redact``) itself, so a program that
  embeds the server with its own logging never writes a token out.
"""

from __future__ import annotations

import hmac
import io
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from wirewatch.security import redact

from .app import EventStream, Request, Response, WebApp
from .upload import HttpError

__all__ = ["DEFAULT_MAX_CONNECTIONS", "DEFAULT_REQUEST_TIMEOUT_S", "TOKEN_COOKIE", "Handler", "HttpServer", "Response"]

log = logging.getLogger(__name__)

TOKEN_COOKIE = "wirewatch_token"
DEFAULT_REQUEST_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 256
# A request body must arrive at this rate on average (after the first request timeout's grace): Apache
# mod_reqtimeout's default MinRate. A 2 MB frame on a 1 Mbit/s link needs 16 s, allowed; a byte a second is not.
BODY_MIN_RATE = 500.0
KEEPALIVE_S = 15.0
SSE_SNDBUF = 64 * 1024

Handler = Callable[[], Response]


_BUSY_BODY = b"too many connections\n"
BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


class _ThreadingServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: a burst of connections (a few browsers opening pages,
    # scrapers, stuck clients) then waits for TCP SYN retransmits, 1-3 s each, before even being accepted.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 max_connections: int) -> None:
        # One thread per connection: without a cap, a flood of connections is a flood of threads.
        self.max_connections = max_connections
        self.open = 0  # connections being served, each on its own thread
        self._open_lock = threading.Lock()
        self.refused = 0
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            busy = self.open >= self.max_connections
            if not busy:
                self.open += 1
        if busy:
            self.refused += 1
            if self.refused == 1 or self.refused % 100 == 0:
                log.warning("http: connection limit reached, %d connection(s) refused with 503 so far",
                            self.refused)
            self._refuse_busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: give the slot back
            self._release_slot()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release_slot()

    def _release_slot(self) -> None:
        with self._open_lock:
            self.open -= 1

    def _refuse_busy(self, request: socket.socket) -> None:
        """Answer 503 without a thread (this runs on the accepting thread, so nothing here may wait)."""
        try:
            request.setblocking(False)
            request.send(BUSY_RESPONSE)  # fits any fresh socket's send buffer
            # Drop what the client already sent (a request line and headers), so that closing does not
            # reset the connection before the 503 arrives. One read only: a client that keeps sending
            # must not hold the accepting thread.
            request.recv(1 << 16)
        except OSError:
            pass
        self.shutdown_request(request)


class HttpServer:
    """``/metrics`` from ``registry``; ``/healthz`` 200 while ``healthy()``; ``/readyz`` 200 while ``ready()``;
    pages added with ``add_route``; ``app``'s pages and API when given. Serves from daemon threads at once;
    ``close()`` stops it."""

    def __init__(self, registry: CollectorRegistry, *, host: str = "127.0.0.1", port: int = 0,
                 healthy: Callable[[], bool] = lambda: True, ready: Callable[[], bool] = lambda: True,
                 bearer_token: str | None = None, app: WebApp | None = None,
                 request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        if request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be positive, got {request_timeout_s}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self.app = app
        self.request_timeout_s = request_timeout_s
        self.routes: dict[str, Handler] = {
            "/metrics": lambda: Response(200, generate_latest(registry), CONTENT_TYPE_LATEST),
            "/healthz": lambda: Response(200, b"ok\n") if healthy() else Response(503, b"unhealthy\n"),
            "/readyz": lambda: Response(200, b"ready\n") if ready() else Response(503, b"not ready\n"),
        }
        self._closing = threading.Event()
        handler = _make_handler(self, bearer_token.encode() if bearer_token else None)
        self._server = _ThreadingServer((host, port), handler, max_connections)
        self.host = str(self._server.server_address[0])
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="wirewatch-http", daemon=True)
        self._thread.start()

    @property
    def open_connections(self) -> int:
        """Connections being served now (each holds a thread)."""
        return self._server.open

    @property
    def refused_connections(self) -> int:
        """Connections answered 503 because ``max_connections`` were open."""
        return self._server.refused

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add_route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def close(self) -> None:
        self._closing.set()  # event streams end within a second
        if self.app is not None:
            self.app.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _DeadlineSocketIO(socket.SocketIO):
    """A socket reader whose reads also end at ``deadline`` (monotonic seconds; None: per read only).

    ``head()`` starts a request line and headers: a fixed deadline. ``body()`` starts a request body: the
    deadline moves on by 1 / ``min_rate`` s for every byte read, so only a body slower than ``min_rate``
    on average runs out of time."""

    def __init__(self, sock: socket.socket, per_read_s: float, min_rate: float) -> None:
        super().__init__(sock, "rb")
        self.per_read_s = per_read_s
        self.min_rate = min_rate
        self.deadline: float | None = None
        self._in_body = False

    def head(self) -> None:
        self.deadline, self._in_body = time.monotonic() + self.per_read_s, False

    def body(self) -> None:
        self.deadline, self._in_body = time.monotonic() + self.per_read_s, True

    def readinto(self, b: Any) -> int | None:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"request body slower than {self.min_rate:g} bytes/s" if self._in_body
                                   else "request line and headers not complete within the request timeout")
            self._sock.settimeout(min(self.per_read_s, left))  # type: ignore[attr-defined]
        try:
            n = super().readinto(b)
        finally:  # the response's writes get the whole per-read timeout, not what was left of the deadline
            self._sock.settimeout(self.per_read_s)  # type: ignore[attr-defined]
        if n and self._in_body and self.deadline is not None:
            self.deadline += n / self.min_rate
        return n


def _authorised(headers: Any, token: bytes, *, cookie_ok: bool) -> bool:
    header = headers.get("Authorization") or ""
    if header.startswith("Bearer ") and hmac.compare_digest(header[len("Bearer "):].strip().encode(), token):
        return True
    if not cookie_ok:
        return False
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("Cookie") or "")
    except Exception:
        return False
    morsel = cookie.get(TOKEN_COOKIE)
    return morsel is not None and hmac.compare_digest(morsel.value.encode(), token)


def _make_handler(server: HttpServer, token: bytes | None) -> type[BaseHTTPRequestHandler]:
    browser_auth = server.app is not None  # cookie and /?token= only where there are pages for a browser

    class _Handler(BaseHTTPRequestHandler):
        server_version = "wirewatch"
        protocol_version = "HTTP/1.1"
        # socketserver sets this on each connection: reading a request (line, headers, body) that stalls
        # this long raises TimeoutError and the connection is closed, freeing its thread.
        timeout = server.request_timeout_s

        def setup(self) -> None:
            super().setup()
            self.rfile.close()  # the stdlib's reader (releases its reference on the socket), replaced by:
            # The request line and headers must also arrive *in total* within the timeout: a client
            # trickling a byte every few seconds passes every per-read timeout but not this deadline.
            self._reader = _DeadlineSocketIO(self.connection, server.request_timeout_s, BODY_MIN_RATE)
            self.rfile = io.BufferedReader(self._reader)

        def handle_one_request(self) -> None:
            self._reader.head()
            super().handle_one_request()

        def parse_request(self) -> bool:
            parsed = super().parse_request()
            # Headers complete: a body (an upload) may take longer than the timeout while it keeps
            # moving at BODY_MIN_RATE or faster, so a large file on a slow link is not cut off.
            self._reader.body()
            return parsed

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_HEAD(self) -> None:
            self._dispatch("HEAD")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            parts = urlsplit(self.path)
            path = parts.path
            if token is not None and not _authorised(self.headers, token, cookie_ok=browser_auth):
                given = parse_qs(parts.query).get("token", [""])[-1].encode()
                if browser_auth and method == "GET" and given and hmac.compare_digest(given, token):
                    # A browser opened /?token=...: remember it in a cookie and drop it from the address bar.
                    rest = {k: v for k, v in parse_qs(parts.query).items() if k != "token"}
                    location = path + ("?" + urlencode(rest, doseq=True) if rest else "")
                    self._send(Response(303, b""), {"Location": location, "Set-Cookie":
                               f"{TOKEN_COOKIE}={given.decode()}; HttpOnly; SameSite=Strict; Path=/"})
                else:
                    self._refuse(method, Response(401, b"unauthorised\n"), {"WWW-Authenticate": "Bearer"})
                return
            try:
                result: Response | EventStream | None = None
                route = server.routes.get(path) if method in ("GET", "HEAD") else None
                if route is not None:
                    result = route()
                elif server.app is not None:
                    result = server.app.handle(Request(method, path, parts.query, self.headers, self.rfile))
                if isinstance(result, EventStream):
                    self._stream(result)
                elif result is None:
                    known = ", ".join(sorted([*server.routes, "/", "/segment", "/api/..."] if server.app
                                             else server.routes))
                    self._refuse(method, Response(404, f"not found; try {known}\n".encode()))
                elif method == "POST" or result.status >= 400:
                    self._refuse(method, result)
                else:
                    self._send(result, head=method == "HEAD")
            except HttpError as exc:
                self._refuse(method, Response(exc.status, f"{exc}\n".encode()))
            except OSError:  # the client left, or its request body stalled past the timeout
                self.close_connection = True
            except Exception:  # a failing page must not take the server down
                log.exception("HTTP handler for %s %s failed", method, path)
                self._refuse(method, Response(500, b"internal error\n"))

        def _refuse(self, method: str, response: Response, headers: dict[str, str] | None = None) -> None:
            """An answer after which the connection closes: a POST body may be left unread (e.g. 413)."""
            if method == "POST":
                self.close_connection = True
                headers = {**(headers or {}), "Connection": "close"}
            self._send(response, headers)
            if method == "POST":
                self._linger()

        def _linger(self, seconds: float = 2.0, max_bytes: int = 256 << 20) -> None:
            """After answering a POST early (413, 400), discard what the client still sends for a moment, so
            it reads the answer instead of a connection reset (the body is never stored)."""
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(0.2)
                deadline = time.monotonic() + seconds
                seen = 0
                while time.monotonic() < deadline and seen < max_bytes:
                    chunk = self.connection.recv(1 << 16)
                    if not chunk:
                        break
                    seen += len(chunk)
            except OSError:
                pass

        def _send(self, response: Response, headers: dict[str, str] | None = None, head: bool = False) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for k, v in {**response.headers, **(headers or {})}.items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(response.body)

        def _stream(self, stream: EventStream) -> None:
            """Server-sent events until the browser leaves, the hub drops it (too slow) or the server closes."""
            app = server.app
            assert app is not None
            client = stream.client
            self.close_connection = True
            try:
                # Long-lived by design: the request timeout no longer applies; a write that a stuck
                # browser blocks gives up after write_timeout_s instead.
                self.connection.settimeout(app.config.write_timeout_s)
                # A small kernel send buffer: a page that stops reading blocks our writes (and is dropped)
                # after ~100 kB instead of megabytes of autotuned buffer.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SSE_SNDBUF)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Connection", "close")
                self.send_header("X-Accel-Buffering", "no")
                self.end_headers()
                self.wfile.write(b"retry: 2000\n" + stream.hello)
                self.wfile.flush()
                idle = 0.0
                batch_s = app.config.push_interval_s
                while not client.closed.is_set() and not server._closing.is_set():
                    event = client.next(timeout=1.0)
                    if self._peer_gone():
                        break
                    if event is None:
                        idle += 1.0
                        if idle >= KEEPALIVE_S:
                            self.wfile.write(b": keepalive\n\n")
                            self.wfile.flush()
                            idle = 0.0
                        continue
                    idle = 0.0
                    if batch_s > 0:  # let a few more events gather: one write and one wake-up per batch
                        client.closed.wait(batch_s)
                    events = [event, *client.drain()]
                    self.wfile.write(b"".join(e.wire() for e in events))
                    self.wfile.flush()
            except OSError:  # includes socket timeouts
                pass  # the browser left or stopped reading
            finally:
                app.hub.unsubscribe(client)

        def _peer_gone(self) -> bool:
            """True once the browser closed its end (readable with nothing to read), so a page that left
            stops costing work before the next write fails."""
            try:
                readable, _, _ = select.select([self.connection], [], [], 0)
                return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
            except (OSError, ValueError):
                return True

        def log_message(self, format: str, *args: Any) -> None:
            # DEBUG only (no per-request lines by default); the request line may carry ?token=: masked here.
            if log.isEnabledFor(logging.DEBUG):
                log.debug("http: %s", redact(format % args))

    return _Handler
