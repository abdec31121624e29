"""Adapters that make the record file and the alert publisher ``ResultSink``s of the pipeline."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from wirewatch.publish.publisher import Publisher
from wirewatch.publish.record import RecordWriter
from wirewatch.types import Alert

from .metrics import DaemonMetrics
from .stages import FrameResult, SeriesEvent

log = logging.getLogger(__name__)


class RecordResultSink:
    """One JSON line per frame (``wirewatch.publish.record``); write errors counted, never raised."""

    name = "record"

    def __init__(self, record: RecordWriter, metrics: DaemonMetrics) -> None:
        self.record = record
        self.metrics = metrics

    def publish(self, result: FrameResult) -> Sequence[Alert]:
        before = self.record.write_errors
        self.record.write(result.stats, series=result.frame.series_id,
                          latency_s=max(0.0, _now() - result.frame.received_at))
        if self.record.write_errors != before:
            self.metrics.record_errors.inc(self.record.write_errors - before)
        self.metrics.record_backlog.set(self.record.backlog)
        return ()

    def series(self, event: SeriesEvent) -> None:
        pass

    def close(self) -> None:
        self.record.close()
        self.metrics.record_backlog.set(self.record.backlog)


class AlertsResultSink:
    """Change points and stats to ZeroMQ, alert rules to their sinks (``wirewatch.publish.Publisher``)."""

    name = "alerts"

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def publish(self, result: FrameResult) -> Sequence[Alert]:
        alerts: list[Alert] = self.publisher.publish(result.stats, result.changepoints)
        return alerts

    def series(self, event: SeriesEvent) -> None:
        pass

    def close(self) -> None:
        self.publisher.close()


def _now() -> float:
    import time

    return time.time()


@runtime_checkable
class Closeable(Protocol):
    def close(self) -> None: ...


class SegmenterCloser:
    """Releases a segmenter that holds resources (the ``ray`` backend's replicas and local Ray) when the
    pipeline closes its sinks: after the last frame, or when building the daemon fails half-way."""

    name = "segmenter"

    def __init__(self, segmenter: Closeable) -> None:
        self.segmenter = segmenter

    def publish(self, result: FrameResult) -> Sequence[Alert]:
        return ()

    def series(self, event: SeriesEvent) -> None:
        pass

    def close(self) -> None:
        self.segmenter.close()
