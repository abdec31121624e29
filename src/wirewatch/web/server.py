"""``HttpServer``: the one HTTP server of wirewatch: Starlette routes on uvicorn, in-process.

It always serves ``/metrics`` (prometheus-client, from the registry given), ``/healthz`` and ``/readyz``
(200/503 from two callables) and any page another part adds with ``add_route(path, handler)``; with a
``WebApp`` mounted (the daemon's ``http.web.enabled``, ``wirewatch serve``) it also serves the web view's
pages, static files, JSON API, uploads, event stream and (with a token) the ``/login`` form. Binds
127.0.0.1 unless told otherwise.

- uvicorn runs on its own thread and event loop (``wirewatch-http``); request parsing, keep-alive,
  pipelining and bodies are uvicorn's and h11's. Handlers that do work (``/metrics``, the API, overlays,
  segmentation) run on Starlette's worker threads; the pipeline is reached only through the web view's
  bounded queues (``LiveState``, ``PushHub``), never waited for.
- ``Guard`` (``guard.py``) applies the protections in front of every route: connection cap, Host
  allowlist (421), Origin check on state-changing routes (403), bearer token or login session (401),
  request ids instead of exception text.
- ``GuardedH11Protocol`` (``protocol.py``) adds what uvicorn lacks: the request line and headers must be
  complete within ``request_timeout_s`` (idle, half-sent and slowloris connections are closed), and a
  body nobody reads is discarded for ``linger_s`` at most. Upload bodies must keep moving at
  ``BODY_MIN_RATE`` on average (after one request timeout's grace) or get 408.
- Uploads stream through ``MultipartReader`` (python-multipart) with per-part limits: an unknown, repeated
  or oversized form field is refused while it streams, so a large body is never held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.routing import BaseRoute, Route

from wirewatch.security import redact

from .app import EventStream, Request, Response, WebApp, error_response
from .guard import SESSION_COOKIE, Guard, HostPolicy, Sessions, session_cookie
from .protocol import GuardedH11Protocol
from .sse import event_stream
from .upload import HttpError, MultipartReader

__all__ = ["BODY_MIN_RATE", "DEFAULT_MAX_CONNECTIONS", "DEFAULT_REQUEST_TIMEOUT_S", "SESSION_COOKIE", "Handler",
           "HttpServer", "Response"]

log = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 256
# A request body must arrive at this rate on average (after the first request timeout's grace): Apache
# mod_reqtimeout's default MinRate. A 2 MB frame on a 1 Mbit/s link needs 16 s, allowed; a byte a second is not.
BODY_MIN_RATE = 500.0
LOGIN_PATH = "/login"
MAX_LOGIN_BODY = 4096

Handler = Callable[[], Response]

LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>wirewatch: log in</title>
<link rel="stylesheet" href="/static/app.css"></head><body><main style="max-width:28em;margin:4em auto">
<h1>wirewatch</h1><p>{message}</p><form method="post" action="/login">
<label>Token <input type="password" name="token" autocomplete="current-password" autofocus required></label>
<button type="submit">Log in</button></form></main></body></html>"""


def to_starlette(response: Response, *, close: bool = False) -> StarletteResponse:
    headers = dict(response.headers)
    if close:
        headers["Connection"] = "close"
    return StarletteResponse(response.body, response.status, headers=headers, media_type=response.content_type)


class HttpServer:
    """``/metrics`` from ``registry``; ``/healthz`` 200 while ``healthy()``; ``/readyz`` 200 while ``ready()``;
    pages added with ``add_route``; ``app``'s pages and API when given. Serves from its own thread at once;
    ``close()`` stops it."""

    def __init__(self, registry: CollectorRegistry, *, host: str = "127.0.0.1", port: int = 0,
                 healthy: Callable[[], bool] = lambda: True, ready: Callable[[], bool] = lambda: True,
                 bearer_token: str | None = None, app: WebApp | None = None,
                 request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 allowed_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = (),
                 secure_cookie: bool = False) -> None:
        if request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be positive, got {request_timeout_s}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self.app = app
        self.request_timeout_s = request_timeout_s
        self.secure_cookie = secure_cookie
        self._token = bearer_token
        self._closing = threading.Event()
        self.routes: dict[str, Handler] = {
            "/metrics": lambda: Response(200, generate_latest(registry), CONTENT_TYPE_LATEST),
            "/healthz": lambda: Response(200, b"ok\n") if healthy() else Response(503, b"unhealthy\n"),
            "/readyz": lambda: Response(200, b"ready\n") if ready() else Response(503, b"not ready\n"),
        }
        # Browser login (a form, then a session cookie) only where there are pages for a browser.
        self.sessions = Sessions() if bearer_token and app is not None else None
        self._starlette = Starlette(routes=self._base_routes(), exception_handlers={
            404: self._not_found, Exception: _internal_error})
        self._sock = _listen(host, port)
        address = self._sock.getsockname()
        self.host, self.port = str(address[0]), int(address[1])
        self.guard = Guard(self._starlette, hosts=HostPolicy(host, allowed_hosts), allowed_origins=allowed_origins,
                           token=bearer_token, sessions=self.sessions,
                           login_path=LOGIN_PATH if self.sessions is not None else None,
                           connections=lambda: len(self._uvicorn.server_state.connections),
                           max_connections=max_connections)
        protocol = type("Protocol", (GuardedH11Protocol,), {"head_timeout_s": request_timeout_s})
        config = uvicorn.Config(self.guard, http=protocol, ws="none", lifespan="off", log_config=None,
                                log_level="warning", access_log=False, server_header=False,
                                timeout_keep_alive=int(max(1, request_timeout_s)) + 1,
                                timeout_graceful_shutdown=2, backlog=128)
        self._uvicorn = _QuietServer(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, name="wirewatch-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._uvicorn.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not self._uvicorn.started:
            self._sock.close()
            raise RuntimeError(f"the HTTP server on {self.url} did not start")

    # -- public surface -------------------------------------------------------------------------------------
    @property
    def open_connections(self) -> int:
        """Connections open now (idle keep-alive and event streams included)."""
        return len(self._uvicorn.server_state.connections)

    @property
    def refused_connections(self) -> int:
        """Requests answered 503 because ``max_connections`` were open."""
        return self.guard.refused_connections

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def add_route(self, path: str, handler: Handler) -> None:
        """Serve ``handler()`` (run on a worker thread) for GET and HEAD of ``path``; before the web view's own."""
        self.routes[path] = handler
        self._starlette.router.routes.insert(0, self._route(path, handler))

    def close(self) -> None:
        self._closing.set()  # event streams end within a second
        if self.app is not None:
            self.app.close()
        self._uvicorn.should_exit = True
        self._uvicorn.wake()
        self._thread.join(timeout=10)
        self._sock.close()

    # -- serving --------------------------------------------------------------------------------------------
    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._uvicorn.serve(sockets=[self._sock]))
        except Exception:
            log.exception("the HTTP server on %s stopped", self.url)
        finally:
            loop.close()

    def _route(self, path: str, handler: Handler) -> Route:
        async def endpoint(request: StarletteRequest) -> StarletteResponse:
            return to_starlette(await run_in_threadpool(handler))

        return Route(path, endpoint, methods=["GET"])

    def _base_routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [self._route(path, handler) for path, handler in self.routes.items()]
        if self.app is not None:
            if self.sessions is not None:
                routes.append(Route(LOGIN_PATH, self._login, methods=["GET", "POST"]))
            routes.append(Route("/api/segment", self._upload, methods=["POST"]))
            routes.append(Route("/{path:path}", self._web_get, methods=["GET"]))
        return routes

    async def _not_found(self, request: StarletteRequest, exc: Exception) -> StarletteResponse:
        known = sorted([*self.routes, "/", "/segment", "/api/..."] if self.app else self.routes)
        return StarletteResponse(f"not found; try {', '.join(known)}\n", 404, media_type="text/plain")

    async def _web_get(self, request: StarletteRequest) -> Any:
        app = self.app
        assert app is not None
        req = Request(request.method, request.url.path, request.url.query, request.headers, None)
        result = await run_in_threadpool(app.handle, req)
        if result is None:
            return await self._not_found(request, LookupError())
        if isinstance(result, EventStream):
            return _Asgi(lambda scope, receive, send: event_stream(
                scope, receive, send, client=result.client, hello=result.hello, hub=app.hub,
                batch_s=app.config.push_interval_s, write_timeout_s=app.config.write_timeout_s,
                closing=self._closing))
        return to_starlette(result)

    async def _upload(self, request: StarletteRequest) -> StarletteResponse:
        app = self.app
        assert app is not None
        try:
            return to_starlette(await self._segment(request, app))
        except HttpError as exc:  # 408: the client is too slow to keep; others: the rest of the body is discarded
            return to_starlette(error_response(exc.status, str(exc)), close=exc.status == 408)

    async def _segment(self, request: StarletteRequest, app: WebApp) -> Response:
        limit = app.config.max_upload_bytes
        declared = request.headers.get("content-length")
        chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
        length = None
        if declared is not None and not chunked:
            try:
                length = int(declared)
            except ValueError:
                raise HttpError(400, f"bad Content-Length {declared!r}") from None
            if length > limit:  # before a byte of the body is read
                raise HttpError(413, f"upload of {length} bytes exceeds the limit of {limit} bytes")
        elif not chunked:
            raise HttpError(411, "a Content-Length header (or chunked transfer encoding) is required")
        reader = MultipartReader(request.headers.get("content-type"), max_part_bytes=limit)
        app.begin_upload()
        try:
            total = await self._read_body(request, reader, limit)
            if length is not None and total != length:
                raise HttpError(400, f"body ended after {total} of {length} bytes")
            fields = reader.close()
            return await run_in_threadpool(app.segment_fields, fields, request.url.query)
        finally:
            app.end_upload()

    async def _read_body(self, request: StarletteRequest, reader: MultipartReader, limit: int) -> int:
        """Feed the body to ``reader`` as it arrives; 413 past ``limit``; 408 when it stalls for a request
        timeout or moves slower than ``BODY_MIN_RATE`` on average."""
        deadline = time.monotonic() + self.request_timeout_s
        chunks = request.stream().__aiter__()
        total = 0
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), max(0.0, deadline - time.monotonic()))
            except StopAsyncIteration:
                return total
            except TimeoutError:
                raise HttpError(408, f"request body stalled or slower than {BODY_MIN_RATE:g} bytes/s") from None
            except ClientDisconnect:
                raise HttpError(400, "the client left during the upload") from None
            total += len(chunk)
            if total > limit:
                raise HttpError(413, f"upload exceeds the limit of {limit} bytes")
            deadline += len(chunk) / BODY_MIN_RATE
            reader.feed(chunk)

    async def _login(self, request: StarletteRequest) -> StarletteResponse:
        """GET: the form. POST (form field ``token``, same origin only: ``Guard``): a new session cookie and
        303 to ``/``. The token travels in a POST body, never in a URL."""
        assert self.sessions is not None and self._token is not None
        if request.method == "GET":
            return _login_page("This server needs its access token.", 200)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_LOGIN_BODY:
                return _login_page("Login form too large.", 413)
        given = (parse_qs(body.decode("utf-8", "replace")).get("token") or [""])[-1]
        if not given or not hmac.compare_digest(given.encode(), self._token.encode()):
            log.warning("http: failed login from %s", request.client.host if request.client else "?")
            return _login_page("Wrong token; try again.", 401)
        secure = self.secure_cookie or request.url.scheme == "https"
        cookie = session_cookie(self.sessions.create(), secure=secure, max_age_s=int(self.sessions.ttl_s))
        return StarletteResponse(b"", 303, headers={"Location": "/", "Set-Cookie": cookie,
                                                    "Cache-Control": "no-store"})


async def _internal_error(request: StarletteRequest, exc: Exception) -> StarletteResponse:
    """The answer to an unexpected error: its request id, never its text (``Guard`` logs it with the id)."""
    state = request.scope.setdefault("state", {})
    request_id = state.get("request_id", "?")
    log.error("HTTP %s %s failed (request id %s)", request.method, redact(request.url.path), request_id,
              exc_info=exc)
    state["error_logged"] = True  # before the answer leaves; Guard does not log it again
    return to_starlette(error_response(500, f"internal error (request id {request_id})"))


def _login_page(message: str, status: int) -> StarletteResponse:
    return StarletteResponse(LOGIN_PAGE.format(message=message), status, media_type="text/html",
                             headers={"Cache-Control": "no-store"})


class _QuietServer(uvicorn.Server):
    """uvicorn's main loop wakes every 0.1 s to look for a shutdown request (1.5 ms of CPU a second on an
    idle daemon here, a tenth of the live page's whole budget); once a second is enough for the ``Date``
    header, and ``wake()`` (from ``close()``) ends it at once."""

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while not await self.on_tick(0):  # tick 0: refresh the Date header, then look at should_exit
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()

    def wake(self) -> None:
        loop, event = self._loop, self._wake
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(event.set)


class _Asgi(StarletteResponse):
    """A Starlette endpoint answer that is a plain ASGI callable (the event stream)."""

    def __init__(self, call: Callable[[Any, Any, Any], Any]) -> None:
        self._call = call

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._call(scope, receive, send)


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a port in use is an error at once and port 0 is resolved."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
