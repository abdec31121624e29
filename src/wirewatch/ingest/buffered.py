"""``BufferedSource``: what every live source shares (ZeroMQ socket, EPICS PV Access monitor).

A background thread (the ZeroMQ drain thread, the p4p monitor callback) receives messages and hands
them to a bounded ``MessageBuffer``; the pipeline takes them with ``get()``. This base keeps the
counters both sources need, under one lock, and reports them as ``SourceStats``, so the two sources
cannot count differently: ``received == delivered + sum(dropped) + sum(rejected) + buffered``.

Subclasses call ``_received_message(nbytes)`` for each message taken off the wire, ``_reject(kind,
detail)`` for one refused before buffering (counted as received too when ``counted=False``), and
``_offer(msg, stop)`` to buffer it (numbered by ``_next_seq()``); they override ``reconnects`` and
``describe_input``.

``on_drop`` / ``on_reject`` are plain attributes read at call time, so a daemon may attach its
counters after the source was built (``wirewatch.epics`` does).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from wirewatch.ingest.base import RawMessage, SourceStats
from wirewatch.ingest.buffer import MessageBuffer, Policy


class BufferedSource:
    """Counters, ``get``, ``finished`` and ``stats`` of a live source feeding a ``MessageBuffer``."""

    format_name: str

    def __init__(self, *, buffer: int, policy: Policy, on_drop: Callable[[str, RawMessage], None] | None = None,
                 on_reject: Callable[[str, str], None] | None = None) -> None:
        self.on_drop = on_drop
        self.on_reject = on_reject
        self._buffer = MessageBuffer(buffer, policy, on_drop=self._dropped)
        self._lock = threading.Lock()
        self._received = 0
        self._received_bytes = 0
        self._rejected: Counter[str] = Counter()
        self._seq = 0

    # -- consumer side (Source protocol)
    def get(self, timeout: float | None = None) -> RawMessage | None:
        return self._buffer.get(timeout)

    @property
    def finished(self) -> bool:
        return False  # a live input never ends by itself

    @property
    def reconnects(self) -> int:
        """Times a lost connection was re-established (``SourceStats.reconnects``)."""
        return 0

    def stats(self) -> SourceStats:
        with self._lock:
            received, rejected, nbytes = self._received, dict(self._rejected), self._received_bytes
        buf = self._buffer
        return SourceStats(received=received, delivered=buf.get_count, buffered=len(buf), max_buffered=buf.max_len,
                           dropped=dict(buf.dropped), rejected=rejected, received_bytes=nbytes,
                           reconnects=self.reconnects)

    def describe_input(self) -> str:
        """One line for the daemon's start-up log: where messages come from, in which format."""
        return f"{type(self).__name__}, format {self.format_name}"

    # -- producer side (the receiving thread)
    def _received_message(self, nbytes: int) -> None:
        """Count one message taken off the wire (before it is checked)."""
        with self._lock:
            self._received += 1
            self._received_bytes += nbytes

    def _next_seq(self) -> int:
        """The sequence number of the next message handed to the buffer (``RawMessage.seq``)."""
        with self._lock:
            seq = self._seq
            self._seq += 1
        return seq

    def _offer(self, msg: RawMessage, stop: threading.Event) -> None:
        """Buffer ``msg`` (under ``queue``, wait for room until ``stop``; a message still waiting then is
        counted as rejected ``shutdown``, so the totals stay exact)."""
        if not self._buffer.put(msg, stop):
            self._reject("shutdown", "source closed while the message waited for room")

    def _reject(self, kind: str, detail: str, *, counted: bool = True) -> None:
        """Count a message refused before buffering; ``counted=False``: it was not counted as received yet."""
        with self._lock:
            if not counted:
                self._received += 1
            self._rejected[kind] += 1
        if self.on_reject is not None:
            self.on_reject(kind, detail)

    def _dropped(self, reason: str, msg: RawMessage) -> None:
        if self.on_drop is not None:
            self.on_drop(reason, msg)
