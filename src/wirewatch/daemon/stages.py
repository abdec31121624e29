"""What the pipeline hands between its threads, and the small protocols of its pluggable ends."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from wirewatch.types import Alert, ChangePoint, Detections, Frame, FrameStats, SeriesEnd, SeriesStart


@dataclass(frozen=True)
class Segmented:
    """A frame after decode -> preprocess -> segment (segment thread -> measure thread)."""

    frame: Frame
    image: np.ndarray  # the segmenter's input (0..1) in frame coordinates
    signal: np.ndarray  # what the od_* statistics are measured on
    detections: Detections
    timings: Mapping[str, float]


@dataclass(frozen=True)
class FrameResult:
    """Everything known about one processed frame (measure thread -> publish thread -> listeners)."""

    frame: Frame
    stats: FrameStats
    changepoints: tuple[ChangePoint, ...]
    image: np.ndarray
    detections: Detections
    timings: Mapping[str, float]
    alerts: tuple[Alert, ...] = ()
    published_at: float = 0.0

    @property
    def frame_id(self) -> int:
        return self.frame.frame_id

    @property
    def latency_s(self) -> float:
        """From receipt of the message to publication."""
        return max(0.0, self.published_at - self.frame.received_at)


SeriesEvent = SeriesStart | SeriesEnd


@dataclass(frozen=True)
class Stop:
    """End of stream marker passed down the queues."""


@runtime_checkable
class ChangeDetector(Protocol):
    """Streaming change detection (``wirewatch.changepoint.build_detector``)."""

    def update(self, frame_id: int, stats: Mapping[str, float]) -> list[ChangePoint]: ...

    def reset(self) -> None: ...


@runtime_checkable
class ResultSink(Protocol):
    """One way results leave the daemon (record file, ZeroMQ ``stats`` topic, alerts)."""

    name: str

    def publish(self, result: FrameResult) -> Sequence[Alert]:
        """Handle one frame; may return alerts it raised (shown to later sinks and listeners)."""
        ...

    def series(self, event: SeriesEvent) -> None: ...

    def close(self) -> None: ...


class ThrottledLog:
    """Logs a message at most once per ``interval_s`` per key, with the count suppressed meanwhile."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._log = logger
        self._interval = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, msg: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            n = self._suppressed.pop(key, 0)
            self._last[key] = now
        extra = f" ({n} more '{key}' since the last message)" if n else ""
        self._log.warning("%s%s", msg, extra)


@dataclass
class StageClock:
    """Collects per-stage durations of one frame."""

    timings: dict[str, float] = field(default_factory=dict)

    def timed(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        self.timings[stage] = now - start
        return now
