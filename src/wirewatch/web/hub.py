"""``PushHub``: fan-out of server-sent events to browsers through bounded per-client queues.

The pipeline's thread only ever calls ``publish``, which never blocks: each client has its own
small queue and a client whose queue is full (a slow or stuck browser) is dropped, not waited
for. Each SSE connection (a coroutine on the HTTP server's event loop) drains its queue and writes to its
socket; ``Client.waker`` lets the thread that offers an event wake that coroutine without polling.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """One server-sent event, encoded once (JSON and SSE framing) and shared by every client's queue: what
    each watching page adds is a queue slot and its socket write, never another encoding."""

    name: str
    data: bytes  # UTF-8 JSON
    _wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_wire", b"event: " + self.name.encode() + b"\ndata: " + self.data + b"\n\n")

    def wire(self) -> bytes:
        return self._wire


def encode_event(name: str, payload: Any) -> Event:
    return Event(name, json.dumps(payload, separators=(",", ":"), allow_nan=False).encode())


class Client:
    """One browser's queue; ``closed`` once the hub dropped it (too slow) or it disconnected."""

    def __init__(self, capacity: int) -> None:
        self.queue: queue.Queue[Event] = queue.Queue(maxsize=capacity)
        self.closed = threading.Event()
        # Called (from any thread) after an event is queued or the client is closed: the event-stream
        # coroutine sets it to ``loop.call_soon_threadsafe(wake.set)``. Must not block.
        self.waker: Callable[[], None] | None = None

    def offer(self, event: Event) -> bool:
        """Queue ``event`` without blocking; False when the queue is full."""
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            return False
        self._wake()
        return True

    def close(self) -> None:
        self.closed.set()
        self._wake()

    def _wake(self) -> None:
        waker = self.waker
        if waker is not None:
            with contextlib.suppress(RuntimeError):  # its event loop has closed: nobody to wake
                waker()

    def drain(self) -> list[Event]:
        """Every event waiting now, without blocking."""
        out: list[Event] = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out

    def next(self, timeout: float) -> Event | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


class PushHub:
    """Subscribers come and go; ``publish`` offers an event to each without blocking."""

    def __init__(self, *, queue_size: int = 64, max_clients: int = 16) -> None:
        self.queue_size = queue_size
        self.max_clients = max_clients
        self._clients: list[Client] = []
        self._lock = threading.Lock()
        self.dropped_clients = 0  # clients disconnected for being too slow
        self.published = 0  # events offered (once each, whatever the number of clients; tests read it)
        self.watching = threading.Event()  # set while at least one client is connected

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def subscribe(self) -> Client | None:
        """A new client, or None when ``max_clients`` are already connected."""
        with self._lock:
            if len(self._clients) >= self.max_clients:
                return None
            client = Client(self.queue_size)
            self._clients.append(client)
            self.watching.set()
            return client

    def unsubscribe(self, client: Client) -> None:
        client.close()
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
            if not self._clients:
                self.watching.clear()

    def publish(self, event: Event) -> None:
        """Offer ``event`` to every client; a client whose queue is full is dropped (never waited for)."""
        self.published += 1
        for client in list(self._clients):  # a copy: no lock held while touching queues
            if not client.offer(event):
                self.dropped_clients += 1
                self.unsubscribe(client)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
            self.watching.clear()
        for client in clients:
            client.close()
