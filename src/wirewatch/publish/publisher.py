"""The pipeline's publish stage for events: change point metrics, ZeroMQ topics, rules and sinks.

The daemon calls ``publish(stats, changepoints)`` once per processed frame and
``start()`` once (a ticker thread runs the time-based rules, e.g. "no frames
for T seconds", even when no frame arrives). Nothing here blocks on the
network: HTTP sinks queue or spool, ZeroMQ sends with NOBLOCK. A sink that
raises is logged and counted, never allowed to stop the pipeline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from wirewatch.publish.engine import AlertEngine
from wirewatch.publish.metrics import AlertMetrics
from wirewatch.publish.sinks.base import AlertSink
from wirewatch.publish.zmq_pub import ZmqPublisher
from wirewatch.types import Alert, ChangePoint, FrameStats

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, *, engine: AlertEngine, sinks: Sequence[AlertSink], metrics: AlertMetrics,
                 zmq: ZmqPublisher | None = None, tick_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.sinks = list(sinks)
        self.zmq = zmq
        self.tick_interval_s = tick_interval_s
        self._metrics = metrics
        self._clock = clock
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def publish(self, stats: FrameStats, changepoints: Sequence[ChangePoint] = (),
                now: float | None = None) -> list[Alert]:
        """One processed frame: count and publish its change points and stats, run the rules, send alerts."""
        now = self._clock() if now is None else now
        self._metrics.count_changepoints(changepoints)
        if self.zmq is not None:
            self.zmq.publish_stats(stats)
            for cp in changepoints:
                self.zmq.publish_changepoint(cp)
        alerts = self.engine.observe(stats, changepoints, now)
        self._dispatch(alerts)
        return alerts

    def tick(self, now: float | None = None) -> list[Alert]:
        alerts = self.engine.tick(self._clock() if now is None else now)
        self._dispatch(alerts)
        return alerts

    def start(self) -> None:
        """Start the ticker thread (idempotent)."""
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick_loop, name="alert-ticker", daemon=True)
            self._ticker.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop ticking, give each sink up to ``timeout`` s to deliver, close the ZeroMQ socket."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout)
        for sink in self.sinks:
            try:
                sink.close(timeout)
            except Exception:
                log.exception("closing alert sink %s failed", sink.name)
        if self.zmq is not None:
            self.zmq.close()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_interval_s):
            try:
                self.tick()
            except Exception:  # a rule bug must not kill the ticker
                log.exception("alert rule tick failed")

    def _dispatch(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            log.info("alert %s %s %s", alert.state, alert.name, dict(alert.labels))
            for sink in self.sinks:
                try:
                    sink.send(alert)
                except Exception:
                    self._metrics.sent(sink.name, "failed")
                    log.exception("alert sink %s raised on send", sink.name)
