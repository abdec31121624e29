"""``event_stream``: one live page's server-sent events, as an ASGI coroutine on the server's event loop.

Written as a plain ASGI callable rather than Starlette's ``StreamingResponse`` or sse-starlette because a
page that stops reading must be *dropped*: each write has a deadline (``write_timeout_s``) and a missed
one aborts the connection (``wirewatch.connection`` extension of ``GuardedH11Protocol``), which neither of
them can do. It waits on the hub without polling (``Client.waker``) and notices at once when the page
closes (the ASGI ``http.disconnect`` message).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from .hub import Client, PushHub

KEEPALIVE_S = 15.0
SSE_SNDBUF = 64 * 1024
HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store"),
           (b"x-accel-buffering", b"no")]


async def event_stream(scope: dict[str, Any], receive: Any, send: Any, *, client: Client, hello: bytes,
                       hub: PushHub, batch_s: float, write_timeout_s: float, closing: threading.Event) -> None:
    """``hello`` then the client's events, batched every ``batch_s``, until the page leaves, the hub drops it
    (too slow), a write takes longer than ``write_timeout_s`` or the server closes (``closing``)."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    left = asyncio.Event()
    control = scope.get("extensions", {}).get("wirewatch.connection")
    if control is not None:
        control.set_send_buffer(SSE_SNDBUF)

    waiting = False  # only a coroutine waiting for events is woken: none during a batch's sleep or a write

    def waker() -> None:
        if waiting:
            loop.call_soon_threadsafe(wake.set)

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        left.set()
        wake.set()

    async def write(data: bytes) -> None:
        async with asyncio.timeout(write_timeout_s):  # (no task per write, unlike wait_for)
            await send({"type": "http.response.body", "body": data, "more_body": True})

    client.waker = waker
    watcher = asyncio.create_task(watch_disconnect())
    ended = False
    try:
        await asyncio.wait_for(send({"type": "http.response.start", "status": 200, "headers": HEADERS}),
                               write_timeout_s)
        await write(b"retry: 2000\n" + hello)
        idle = 0.0
        while not (client.closed.is_set() or left.is_set() or closing.is_set()):
            wake.clear()
            waiting = True  # set before looking at the queue: an event offered after the look wakes us
            try:
                if client.queue.empty():
                    async with asyncio.timeout(1.0):
                        await wake.wait()
            except TimeoutError:
                idle += 1.0
                if idle >= KEEPALIVE_S:
                    await write(b": keepalive\n\n")
                    idle = 0.0
                continue
            finally:
                waiting = False
            idle = 0.0
            if batch_s > 0 and not client.closed.is_set():  # let a few more events gather: one write per batch
                await asyncio.sleep(batch_s)
            events = client.drain()
            if events:
                await write(b"".join(e.wire() for e in events))
        if not left.is_set():
            await asyncio.wait_for(send({"type": "http.response.body", "body": b"", "more_body": False}),
                                   write_timeout_s)
        ended = True
    except TimeoutError:  # the page stopped reading: drop it
        pass
    finally:
        client.waker = None
        hub.unsubscribe(client)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if not ended and not left.is_set() and control is not None:
            control.abort()
            for _ in range(3):  # let the connection-lost callback run, so the server sees a page that left
                await asyncio.sleep(0)
