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
        self.sinks = list(sinks)  # add more with add_sink (the list is only ever replaced under the lock)
        self.zmq = zmq
        self._lock = threading.Lock()
        self._unpausable: list[AlertSink] = []  # still sent alerts while paused
        self._paused = False
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

    def add_sink(self, sink: AlertSink, *, pausable: bool = True) -> None:
        """One more alert destination; ``pausable=False``: it keeps getting alerts while paused."""
        with self._lock:
            self.sinks = [*self.sinks, sink]
            if not pausable:
                self._unpausable.append(sink)

    def pause(self, paused: bool) -> None:
        """Hold back alerts from the pausable sinks (Alertmanager, webhooks, ZeroMQ ``alert``) or send them
        again; the rules keep running meanwhile. Safe from any thread (e.g. a PV write)."""
        with self._lock:
            changed, self._paused = self._paused != paused, paused
        if changed:
            log.info("alerts %s", "paused: only the unpausable sinks are sent alerts" if paused else "resumed")

    @property
    def paused(self) -> bool:
        return self._paused

    def _targets(self) -> list[AlertSink]:
        with self._lock:
            if not self._paused:
                return self.sinks
            return [s for s in self.sinks if any(s is u for u in self._unpausable)]

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
        with self._lock:
            sinks = self.sinks
        for sink in sinks:
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
        targets = self._targets() if alerts else []
        for alert in alerts:
            log.info("alert %s %s %s", alert.state, alert.name, dict(alert.labels))
            for sink in targets:
                try:
                    sink.send(alert)
                except Exception:
                    self._metrics.sent(sink.name, "failed")
                    log.exception("alert sink %s raised on send", sink.name)
