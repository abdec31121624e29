"""``MessageListSource``: a finite ``Source`` over messages already in memory (benches and tests that
run the daemon's pipeline without sockets, e.g. ``wirewatch.bench.quality_events``)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from wirewatch.ingest.base import RawMessage, SourceStats
from wirewatch.ingest.formats import is_control


class MessageListSource:
    """Hands out ``messages`` (each a list of parts) once, in order; series starts / ends are marked control."""

    def __init__(self, messages: Sequence[Sequence[bytes]], format_name: str = "array-1.0") -> None:
        self.format_name = format_name
        self._msgs = [RawMessage(parts=tuple(m), received_at=time.time(), seq=i,
                                 control=is_control(format_name, list(m)))
                      for i, m in enumerate(messages)]
        self._i = 0
        self.closed = False

    def start(self) -> None:
        pass

    def get(self, timeout: float | None = None) -> RawMessage | None:
        if self._i >= len(self._msgs):
            return None
        self._i += 1
        return self._msgs[self._i - 1]

    @property
    def finished(self) -> bool:
        return self._i >= len(self._msgs)

    def stats(self) -> SourceStats:
        return SourceStats(received=len(self._msgs), delivered=self._i, buffered=len(self._msgs) - self._i,
                           max_buffered=len(self._msgs))

    def close(self) -> None:
        self.closed = True
