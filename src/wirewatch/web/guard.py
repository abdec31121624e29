"""``Guard``: the browser-facing protections of the HTTP port, as one ASGI middleware in front of every route.

In order, for each request:

0. a request with both ``Content-Length`` and ``Transfer-Encoding`` (request smuggling) gets 400 and the
   connection is closed;
1. a request id (``X-Request-Id`` on every answer; an unexpected error is logged with it server side and
   the client gets only ``internal error (request id ...)``, never exception text);
2. the connection cap (``http.max_connections``): one more connection gets ``503 too many connections``;
3. the Host allowlist (``HostPolicy``): a Host that is not a loopback name, the bound address or one of
   ``http.allowed_hosts`` gets **421**, so a page that rebinds its DNS name to this address (DNS
   rebinding) cannot read the API through a victim's browser;
4. the Origin check on state-changing methods (anything but GET, HEAD, OPTIONS): an ``Origin`` other than
   this server's own address or one of ``http.allowed_origins`` gets **403**, so a web page cannot make the
   daemon segment uploads (or log a browser in) cross-site;
5. the bearer token (``Authorization: Bearer``, compared in constant time) or, where the web view is
   mounted, a login session cookie (``Sessions``: a random value, never the token; ``HttpOnly;
   SameSite=Strict``, ``Secure`` behind TLS), else **401**.

Tokens are never read from URLs; the DEBUG request log masks ``token=`` values anyway
(``wirewatch.security.redact``). Starlette has none of these as middleware of its own (its
``TrustedHostMiddleware`` answers 400 and knows nothing of the bound address), hence this module.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from wirewatch.security import redact

log = logging.getLogger("wirewatch.web.server")

SESSION_COOKIE = "wirewatch_session"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})

ASGIApp = Any  # an ASGI 3 application (scope, receive, send)


def host_name(host_header: str) -> str:
    """``Host`` header -> lower-case name or address without port or brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8080
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """Which ``Host`` headers the server answers: loopback names, the bound address, ``allowed`` (exact names,
    ``.example.org`` for a domain and its subdomains, ``*`` for any). Bound to a wildcard address (0.0.0.0,
    ::) it also answers this machine's host name and any IP address (a DNS-rebinding page always sends its
    own *name*, never an address)."""

    def __init__(self, bound_host: str, allowed: Iterable[str] = ()) -> None:
        self.any_host = False
        self.names = {n.lower() for n in LOOPBACK_NAMES}
        self.suffixes: list[str] = []
        self.any_ip = bound_host in WILDCARD_HOSTS
        if self.any_ip:
            self.names.add(socket.gethostname().lower())
        else:
            self.names.add(host_name(bound_host))
        for entry in allowed:
            entry = entry.strip().lower()
            if entry == "*":
                self.any_host = True
            elif entry.startswith("."):
                self.suffixes.append(entry)
            elif entry:
                self.names.add(host_name(entry))

    def allows(self, host_header: str | None) -> bool:
        if host_header is None:  # HTTP/1.0 without a Host: no browser sends that
            return True
        name = host_name(host_header)
        return (self.any_host or name in self.names or any(name.endswith(s) or name == s[1:] for s in self.suffixes)
                or (self.any_ip and _is_ip(name)))


def origin_allowed(origin: str | None, host_header: str | None, allowed_origins: Iterable[str]) -> bool:
    """True for no ``Origin`` (not a browser's cross-site request: browsers send it with every POST), for this
    server's own origin (same host and port as the request's ``Host``) and for ``allowed_origins``."""
    if origin is None:
        return True
    value = origin.strip().lower().rstrip("/")
    if value in {o.strip().lower().rstrip("/") for o in allowed_origins}:
        return True
    parts = urlsplit(value)
    return (parts.scheme in ("http", "https") and host_header is not None
            and parts.netloc == host_header.strip().lower())


class Sessions:
    """Browser login sessions: random 256-bit values (never the token) valid for ``ttl_s``; at most ``limit``
    kept (the oldest is forgotten first)."""

    def __init__(self, ttl_s: float = 12 * 3600.0, limit: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def create(self) -> str:
        value = secrets.token_urlsafe(32)
        with self._lock:
            self._expiry[value] = time.monotonic() + self.ttl_s
            while len(self._expiry) > self.limit:
                self._expiry.popitem(last=False)
        return value

    def valid(self, value: str | None) -> bool:
        if not value:
            return False
        with self._lock:
            expiry = self._expiry.get(value)
            if expiry is None:
                return False
            if expiry < time.monotonic():
                del self._expiry[value]
                return False
            return True


def cookie_value(cookie_header: str | None, name: str) -> str | None:
    jar = SimpleCookie()
    try:
        jar.load(cookie_header or "")
    except Exception:  # a malformed Cookie header is no session
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def session_cookie(value: str, *, secure: bool, max_age_s: int) -> str:
    return (f"{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}"
            + ("; Secure" if secure else ""))


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    # The last value wins for repeated headers; names are lower case in ASGI.
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}


class Guard:
    """ASGI middleware applying the protections above in front of ``inner``."""

    def __init__(self, inner: ASGIApp, *, hosts: HostPolicy, allowed_origins: Iterable[str] = (),
                 token: str | None = None, sessions: Sessions | None = None, login_path: str | None = None,
                 connections: Callable[[], int] = lambda: 0, max_connections: int = 256) -> None:
        self.inner = inner
        self.hosts = hosts
        self.allowed_origins = tuple(allowed_origins)
        self._token = token.encode() if token else None
        self.sessions = sessions
        self.login_path = login_path
        self.connections = connections
        self.max_connections = max_connections
        self.refused_connections = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        status = 0

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
                if log.isEnabledFor(logging.DEBUG):  # before the answer leaves: the line is never missing
                    _log_request(scope, status, request_id)
            await send(message)

        method, path = scope["method"], scope["path"]
        try:
            refusal = self.refusal(scope)
            if refusal is not None:
                await _answer(send_with_id, *refusal)
            else:
                await self.inner(scope, receive, send_with_id)
        except Exception:  # a failing page must not take the server down, nor tell the client why
            if not scope["state"].get("error_logged"):
                log.exception("HTTP %s %s failed (request id %s)", method, redact(path), request_id)
            if status == 0:
                await _answer(send_with_id, 500, json.dumps(
                    {"error": f"internal error (request id {request_id})", "status": 500,
                     "request_id": request_id}).encode(), "application/json", [])

    def refusal(self, scope: dict[str, Any]) -> tuple[int, bytes, str, list[tuple[bytes, bytes]]] | None:
        """(status, body, content type, headers) of the answer refusing this request, or None to serve it."""
        if self.connections() > self.max_connections:
            self.refused_connections += 1
            if self.refused_connections == 1 or self.refused_connections % 100 == 0:
                log.warning("http: connection limit reached, %d request(s) refused with 503 so far",
                            self.refused_connections)
            return 503, b"too many connections\n", "text/plain; charset=utf-8", [
                (b"retry-after", b"1"), (b"connection", b"close")]
        headers = _headers(scope)
        if "transfer-encoding" in headers and "content-length" in headers:
            # h11 lets Transfer-Encoding win (RFC 9112 6.3), but a proxy in front may have used the length:
            # the classic request-smuggling disagreement. Refused, and the connection closed.
            return 400, b"both Content-Length and Transfer-Encoding given\n", "text/plain; charset=utf-8", [
                (b"connection", b"close")]
        host = headers.get("host")
        if not self.hosts.allows(host):
            shown = (host or "")[:100].encode("ascii", "replace").decode()
            return 421, (f"misdirected request: this server does not answer for Host {shown!r} "
                         "(add the name to http.allowed_hosts)\n").encode(), "text/plain; charset=utf-8", []
        if scope["method"] not in SAFE_METHODS and not origin_allowed(headers.get("origin"), host,
                                                                      self.allowed_origins):
            shown = headers.get("origin", "")[:100].encode("ascii", "replace").decode()
            return 403, (f"cross-origin request refused: Origin {shown!r} is not this server "
                         "(add it to http.allowed_origins for a reverse proxy's public name)\n").encode(), \
                "text/plain; charset=utf-8", []
        if self._token is not None and not self._authorised(headers, scope["path"]):
            hint = f", or log in at {self.login_path}" if self.login_path else ""
            return 401, f"unauthorised: send Authorization: Bearer TOKEN{hint}\n".encode(), \
                "text/plain; charset=utf-8", [(b"www-authenticate", b"Bearer")]
        return None

    def _authorised(self, headers: dict[str, str], path: str) -> bool:
        assert self._token is not None
        header = headers.get("authorization", "")
        if header[:7].lower() == "bearer " and hmac.compare_digest(header[7:].strip().encode(), self._token):
            return True
        if self.sessions is None:
            return False
        if path == self.login_path or path.startswith("/static/"):  # the login form and its stylesheet
            return True
        return self.sessions.valid(cookie_value(headers.get("cookie"), SESSION_COOKIE))


def _log_request(scope: dict[str, Any], status: int, request_id: str) -> None:
    """One DEBUG line per request (none by default), ``token=`` values masked whatever logging is set up."""
    query = scope.get("query_string", b"").decode("latin-1")
    client = scope.get("client") or ("-", 0)
    log.debug("http: %s", redact(f'{client[0]} "{scope["method"]} {scope["path"]}{"?" + query if query else ""} '
                                 f'HTTP/{scope.get("http_version", "1.1")}" {status} id={request_id}'))


async def _answer(send: Any, status: int, body: bytes, content_type: str,
                  headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"), *headers]})
    await send({"type": "http.response.body", "body": body, "more_body": False})
