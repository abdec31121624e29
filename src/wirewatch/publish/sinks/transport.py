"""The HTTP transport seam: sinks post through a ``HttpTransport``; tests may pass their own.

The default uses ``http.client`` directly rather than ``urllib.request`` on
purpose: urllib follows redirects and would re-send the Authorization header
to wherever a redirect points. Here a 3xx is just a status the sink rejects.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import random
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from wirewatch import __version__

USER_AGENT = f"wirewatch/{__version__}"
MAX_ERROR_BODY_BYTES = 2048  # we need the status; an error body only for the log line


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


class HttpTransport:
    """POST with a deadline; connection problems raise ``OSError`` (timeouts included).

    ``timeout`` bounds the whole request, not just each socket operation: a receiver that
    trickles its reply byte by byte is cut off when the deadline passes.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResponse:
        parts = urlsplit(url)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            context = self._ssl_context or ssl.create_default_context()
            conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        expired = threading.Event()

        def cut_off() -> None:
            expired.set()
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv/send in the worker thread

        watchdog = threading.Timer(timeout, cut_off)
        watchdog.daemon = True
        watchdog.start()
        try:
            conn.request("POST", path, body=body, headers={"User-Agent": USER_AGENT, **headers})
            resp = conn.getresponse()
            # the body matters only for error messages; a 2xx reply is not read at all
            data = b"" if 200 <= resp.status < 300 else resp.read(MAX_ERROR_BODY_BYTES)
            if expired.is_set():
                raise TimeoutError(f"no complete reply within {timeout:g} s")
            return HttpResponse(status=resp.status, headers={k.lower(): v for k, v in resp.getheaders()},
                                body=data)
        except http.client.HTTPException as exc:  # malformed or cut-off reply: like a broken connection
            if expired.is_set():
                raise TimeoutError(f"no complete reply within {timeout:g} s") from None
            raise OSError(f"bad HTTP response: {type(exc).__name__}: {exc}") from None
        except OSError:
            if expired.is_set():
                raise TimeoutError(f"no complete reply within {timeout:g} s") from None
            raise
        finally:
            watchdog.cancel()
            conn.close()


def retryable(status: int) -> bool:
    """Worth another try later: timeouts, throttling and server errors. Other 4xx and 3xx are final."""
    return status in (408, 425, 429) or 500 <= status <= 599


def retry_after_s(response: HttpResponse) -> float | None:
    """Seconds from a numeric ``Retry-After`` header (HTTP dates are ignored)."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


@dataclass
class Backoff:
    """Exponential backoff with jitter: initial * multiplier**attempt, capped, +- jitter.

    The exponent is clamped (by hand rather than with tenacity's ``wait_exponential``: the sinks' own
    loops do the waiting, so only this arithmetic would be borrowed): once the delay has reached
    ``max_s`` the attempt count stops growing, so a receiver that stays down for days can never make
    ``multiplier ** attempt`` overflow (a float power raised ``OverflowError`` at attempt 1024 before).
    """

    initial_s: float
    max_s: float
    multiplier: float = 2.0
    jitter: float = 0.1
    attempt: int = 0

    def next_delay(self, hint_s: float | None = None) -> float:
        base = min(self.max_s, self.initial_s * self.multiplier ** min(self.attempt, self._cap_attempt()))
        if self.attempt < self._cap_attempt():
            self.attempt += 1
        if hint_s is not None and math.isfinite(hint_s):  # the server said when; honour it within our cap
            base = min(self.max_s, max(base, hint_s))
        elif hint_s is not None:
            base = self.max_s
        return max(0.0, base * (1.0 + self.jitter * random.uniform(-1.0, 1.0)))

    def _cap_attempt(self) -> int:
        """The first attempt whose delay reaches ``max_s`` (0 when the multiplier does not grow)."""
        if self.multiplier <= 1.0 or self.initial_s <= 0 or self.initial_s >= self.max_s:
            return 0
        return max(0, math.ceil(math.log(self.max_s / self.initial_s, self.multiplier)))

    def reset(self) -> None:
        self.attempt = 0


def display_url(url: str) -> str:
    """The URL without query or fragment, for logs (a query string may carry a token)."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname}"
    if parts.port:
        shown += f":{parts.port}"
    return shown + (parts.path or "/") + ("?..." if parts.query else "")
