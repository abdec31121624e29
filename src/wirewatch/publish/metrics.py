"""Prometheus metrics of change points, alerts and their delivery.

Registered on the ``CollectorRegistry`` the caller passes (the daemon's private
one; a fresh one per test), never the global default. ``AlertMetrics.on(registry)``
returns the one instance per registry, so the engine, each sink and the
publisher can all ask for it without registering a name twice.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import ClassVar

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from wirewatch.types import ChangePoint

# wirewatch_alerts_sent_total{result}: what happened to one delivery attempt or alert.
RESULTS = ("success", "retry", "failed", "dropped", "expired", "spooled")


class AlertMetrics:
    _instances: ClassVar[weakref.WeakKeyDictionary[CollectorRegistry, AlertMetrics]] = weakref.WeakKeyDictionary()
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, registry: CollectorRegistry) -> None:
        self.changepoints = Counter(
            "wirewatch_changepoints_total", "Change points detected, per statistic and detector.",
            ["statistic", "detector"], registry=registry)
        self.alerts_sent = Counter(
            "wirewatch_alerts_sent_total",
            "Alert deliveries per sink and result: success (receiver accepted), retry (attempt failed, will "
            "retry), failed (given up: rejected or out of attempts), dropped (queue or spool full), "
            "expired (spooled longer than max_age_s), spooled (written to the on-disk spool).",
            ["sink", "result"], registry=registry)
        self.spool_depth = Gauge(
            "wirewatch_alert_spool_depth", "Alerts waiting in the on-disk webhook spools (all webhook sinks).",
            registry=registry)
        self.alerts = Counter(
            "wirewatch_alerts_total", "Alert transitions raised by the rules, per alert name and state.",
            ["alertname", "state"], registry=registry)
        self.suppressed = Counter(
            "wirewatch_alerts_suppressed_total",
            "Firing alerts held back by the rate limit (sent later if still firing).", ["alertname"],
            registry=registry)
        self.published = Counter(
            "wirewatch_zmq_published_total", "ZeroMQ PUB messages per topic and result (sent, dropped, error).",
            ["topic", "result"], registry=registry)
        self.sink_errors = Counter(
            "wirewatch_alert_sink_errors",
            "Unexpected errors caught in a sink's delivery loop (a bug or an unforeseen failure: the loop "
            "logs the traceback, counts it here, waits its backoff and goes on).", ["sink"], registry=registry)
        self.failed_files = Gauge(
            "wirewatch_alert_spool_failed_files",
            "Undeliverable alerts kept in a webhook spool's failed/ directory (bounded by max_failed_files; "
            "the oldest are deleted beyond it).", ["sink"], registry=registry)
        self.failed_dropped = Counter(
            "wirewatch_alert_spool_failed_dropped",
            "Alerts deleted from a webhook spool's failed/ directory to keep it within max_failed_files.",
            ["sink"], registry=registry)
        self._depths: dict[str, int] = {}
        self._depth_lock = threading.Lock()
        self._liveness: dict[str, Callable[[], bool]] = {}
        self._liveness_lock = threading.Lock()
        registry.register(_SinkUpCollector(self))

    @classmethod
    def on(cls, registry: CollectorRegistry) -> AlertMetrics:
        """The AlertMetrics registered on ``registry`` (created on first use)."""
        with cls._instances_lock:
            metrics = cls._instances.get(registry)
            if metrics is None:
                metrics = cls(registry)
                cls._instances[registry] = metrics
            return metrics

    def count_changepoints(self, changepoints: Iterable[ChangePoint]) -> None:
        for cp in changepoints:
            for statistic in cp.statistics:
                self.changepoints.labels(statistic=statistic, detector=cp.detector).inc()

    def sent(self, sink: str, result: str, n: int = 1) -> None:
        self.alerts_sent.labels(sink=sink, result=result).inc(n)

    def watch(self, sink: str, alive: Callable[[], bool]) -> None:
        """Report ``alive()`` as ``wirewatch_alert_sink_up{sink}`` and in ``sinks_up`` (the daemon's health).

        ``alive`` is True while the sink's worker thread runs, and also once the sink was closed on
        purpose (a shutdown is not a fault); False when the thread ended by itself.
        """
        with self._liveness_lock:
            self._liveness[sink] = alive

    def sinks_up(self) -> dict[str, bool]:
        """Each watched sink's liveness now; a check that raises counts as down."""
        with self._liveness_lock:
            checks = dict(self._liveness)
        out = {}
        for sink, alive in checks.items():
            try:
                out[sink] = bool(alive())
            except Exception:
                out[sink] = False
        return out

    def error(self, sink: str) -> None:
        self.sink_errors.labels(sink=sink).inc()

    def set_spool_depth(self, sink: str, depth: int) -> None:
        """The gauge is the sum over webhook sinks, each reporting its own depth."""
        with self._depth_lock:
            self._depths[sink] = depth
            self.spool_depth.set(sum(self._depths.values()))


class _SinkUpCollector(Collector):
    """``wirewatch_alert_sink_up{sink}``: 1 while the sink's worker runs, read at scrape time."""

    def __init__(self, metrics: AlertMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("wirewatch_alert_sink_up", "1 while an alert sink's delivery worker "
                                   "(thread, ZeroMQ socket, PV Access heartbeat) is running, 0 once it died.",
                                   labels=["sink"])
        for sink, up in sorted(self._metrics.sinks_up().items()):
            family.add_metric([sink], 1.0 if up else 0.0)
        yield family
