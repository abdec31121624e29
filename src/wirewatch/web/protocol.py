"""``GuardedH11Protocol``: uvicorn's h11 connection protocol plus the connection timeouts uvicorn lacks.

Request parsing, keep-alive, pipelining and bodies come from uvicorn and h11 unchanged (a GET whose body
looks like a second request is a body, never a second request). Written here, because uvicorn has no
option for them:

- a *request-head deadline*: the request line and headers must be complete within ``head_timeout_s`` of
  the connection opening or of the previous response, so a client that sends nothing, stops half-way
  through its headers or trickles them a byte at a time (slowloris) is closed; an idle keep-alive
  connection is closed the same way;
- a *linger* after an early answer (413, 400, 408 while the client still sends its body): uvicorn reads
  and discards the rest, and the connection is closed after ``linger_s`` if the body has not ended, so the
  client reads the answer instead of a connection reset, and nobody can keep a connection by sending a
  body nobody reads;
- a ``wirewatch.connection`` ASGI extension (``ConnectionControl``): the event stream shrinks its socket's
  send buffer and aborts a page that stopped reading, which plain ASGI cannot do.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class ConnectionControl:
    """What an ASGI handler may do to its own connection (``scope["extensions"]["wirewatch.connection"]``)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def set_send_buffer(self, size: int) -> None:
        """A small kernel send buffer: a peer that stops reading blocks writes after ``size`` bytes, not
        megabytes of autotuned buffer."""
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        self._transport.set_write_buffer_limits(high=size, low=size // 4)

    def abort(self) -> None:
        """Close at once, dropping what is buffered (a peer that stopped reading)."""
        self._transport.abort()


class GuardedH11Protocol(H11Protocol):
    head_timeout_s: float = 10.0
    linger_s: float = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            scope["extensions"] = {**scope.get("extensions", {}), "wirewatch.connection": self._control}
            await inner(scope, receive, send)

        self.app = app
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn writes a response's head and body separately: without TCP_NODELAY, Nagle's algorithm holds
        # the body until the client's delayed ACK, 40 ms per response (asyncio sets it only for sockets it
        # created itself with proto IPPROTO_TCP).
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._control = ConnectionControl(transport)
        self._arm_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before and self._head_timer is not None:  # a new request's headers are complete
            self._head_timer.cancel()
            self._head_timer = None

    def on_response_complete(self) -> None:
        # Armed before uvicorn starts a pipelined request (which cancels it again in handle_events).
        self._arm_head()
        if self.conn.their_state is h11.SEND_BODY:
            if self._linger_timer is not None:
                self._linger_timer.cancel()
            self._linger_timer = self.loop.call_later(self.linger_s, self._linger_over, self.cycle)
        super().on_response_complete()

    # -- timers ---------------------------------------------------------------------------------------------
    def _arm_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_over, self.cycle)

    def _head_over(self, cycle: Any) -> None:
        self._head_timer = None
        if self.cycle is cycle and not self.transport.is_closing():  # no new request since: close, no answer
            self.transport.close()

    def _linger_over(self, cycle: Any) -> None:
        self._linger_timer = None
        if self.cycle is cycle and self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            self.transport.close()  # still sending a body nobody will read

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._linger_timer = None
