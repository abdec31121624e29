"""What the pipeline hands between its threads. The protocols of its pluggable ends (``ChangeDetector``,
``ResultSink``) and ``FrameResult`` are the extension interface's (``wirewatch.extension``), re-exported here."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from wirewatch.extension import ChangeDetector, FrameResult, ResultSink, SeriesEvent
from wirewatch.types import Detections, Frame

__all__ = ["ChangeDetector", "FrameResult", "ResultSink", "Segmented", "SeriesEvent", "StageClock", "Stop",
           "ThrottledLog"]


@dataclass(frozen=True)
class Segmented:
    """A frame after decode -> preprocess -> segment (segment thread -> measure thread)."""

    frame: Frame
    image: np.ndarray  # the segmenter's input (0..1) in frame coordinates
    signal: np.ndarray  # what the od_* statistics are measured on
    detections: Detections
    timings: Mapping[str, float]


@dataclass(frozen=True)
class Stop:
    """End of stream marker passed down the queues."""


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
