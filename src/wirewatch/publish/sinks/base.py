"""The ``AlertSink`` protocol every alert destination implements.

``send`` must never block the pipeline for network I/O: HTTP sinks hand the
alert to their own worker thread through a bounded queue (or the on-disk
spool) and return at once. ``close`` gives the worker up to ``timeout``
seconds to deliver what it holds, then stops it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from wirewatch.types import Alert


@runtime_checkable
class AlertSink(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Queue ``alert`` for delivery; returns immediately."""
        ...

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout`` seconds, then stop."""
        ...
