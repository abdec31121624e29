"""Plugging PV Access into the daemon: the input source and the PV server, through public hooks only.

- ``make_pva_source(config, epics)``: a ``PvaSource`` for ``Daemon(config, source=...)`` (format ``pva``;
  the decoder is registered with ``wirewatch.ingest.make_decoder``).
- ``attach_epics(daemon, epics)``: after ``Daemon(...)`` and before ``start()``: counts the source's
  drops and rejects in the daemon's metrics, exports ``wirewatch_pva_disconnects_total`` and
  ``wirewatch_pva_missed_updates_total``, and, with a PV prefix, starts a ``PvaServer`` fed by a pipeline
  listener, whose control PVs pause alerts and reset the change detector (writable only by the clients
  ``epics.writers`` lists; refused writes in ``wirewatch_pva_writes_refused_total{pv}``); its heartbeat
  thread's liveness is ``wirewatch_alert_sink_up{sink="pva"}`` and part of the daemon's ``/healthz``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from wirewatch.daemon.build import source_counters
from wirewatch.epics.config import EpicsConfig
from wirewatch.epics.server import Controls, PvaServer
from wirewatch.epics.source import PvaSource
from wirewatch.types import Alert, ChangePoint

log = logging.getLogger(__name__)


def make_pva_source(config: Any, epics: EpicsConfig, *, pv: str | None = None) -> PvaSource:
    """The PV Access source for ``DaemonConfig`` ``config`` (policy, buffer, limits from ``ingest``)."""
    inp = epics.input if pv is None else epics.input.model_copy(update={"pv": pv})
    policy = epics.policy or config.ingest.policy
    return PvaSource(inp, policy=policy, buffer=config.ingest.buffer, limits=config.ingest.limits(),
                     pva_conf=epics.pva)


class PvaSourceCollector(Collector):
    """Disconnects and missed updates of the PV Access input, read at scrape time."""

    def __init__(self, source: PvaSource) -> None:
        self.source = source

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily("wirewatch_pva_disconnects", "Times the PV Access input lost its IOC.",
                                  value=self.source.disconnects)
        yield CounterMetricFamily("wirewatch_pva_missed_updates", "NTNDArray updates never received "
                                  "(gaps in uniqueId).", value=self.source.missed)


class PvaServerCollector(Collector):
    """Writes to the control PVs refused because the client is not in ``epics.writers``."""

    def __init__(self, server: PvaServer) -> None:
        self.server = server

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("wirewatch_pva_writes_refused", "Writes to the control PVs refused: the "
                                     "client's host / account is not in epics.writers.", labels=["pv"])
        for suffix in ("alerts_paused", "reset_changepoints"):
            family.add_metric([suffix], self.server.refused_writes.get(suffix, 0))
        yield family


class ResettableDetector:
    """Wraps the change detector so a reset asked for from another thread (a PV write) happens in the
    measure thread, before the next update."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._pending = threading.Event()

    def request_reset(self) -> None:
        self._pending.set()

    def update(self, frame_id: int, stats: Mapping[str, float]) -> list[ChangePoint]:
        if self._pending.is_set():
            self._pending.clear()
            self.inner.reset()
        result: list[ChangePoint] = self.inner.update(frame_id, stats)
        return result

    def reset(self) -> None:
        self.inner.reset()


class PvAlertSink:
    """An alert sink of the publisher that sets the ``alert_<rule>`` PVs: it sees every transition,
    also those of time-based rules (``no_frames``) raised by the publisher's ticker between frames."""

    name = "pva"

    def __init__(self, server: PvaServer) -> None:
        self.server = server

    def send(self, alert: Alert) -> None:
        self.server.post_alert(alert)

    def close(self, timeout: float = 5.0) -> None:
        pass


class AlertPause:
    """Pause/resume sending alerts: the publisher keeps evaluating its rules and the alarm PVs stay
    true, but the other sinks (Alertmanager, webhook) get nothing while paused."""

    def __init__(self, publisher: Any) -> None:
        self.publisher = publisher
        self._sinks: Sequence[Any] | None = None

    def __call__(self, paused: bool) -> None:
        if self.publisher is None:
            return
        if paused and self._sinks is None:
            self._sinks = [s for s in self.publisher.sinks if not isinstance(s, PvAlertSink)]
            self.publisher.sinks = [s for s in self.publisher.sinks if isinstance(s, PvAlertSink)]
        elif not paused and self._sinks is not None:
            self.publisher.sinks = [*self.publisher.sinks, *self._sinks]
            self._sinks = None


def _dropped_total(metrics: Any) -> int:
    total = 0.0
    for family in metrics.frames_dropped.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                total += sample.value
    return int(total)


def attach_epics(daemon: Any, epics: EpicsConfig, *, pv_prefix: str | None = None) -> PvaServer | None:
    """Wire the PV Access parts into a built, not yet started ``wirewatch.daemon.service.Daemon``.

    Returns the started ``PvaServer`` (None without a prefix); the caller closes it after the daemon.
    """
    built = daemon.built
    pipeline = built.pipeline
    metrics = built.metrics
    source = pipeline.source
    if isinstance(source, PvaSource) and source.on_drop is None:  # once: the collector must not be doubled
        source.on_drop, source.on_reject = source_counters(metrics)
        built.registry.register(PvaSourceCollector(source))
    prefix = pv_prefix or epics.server.prefix
    if prefix is None:
        return None
    server_cfg = epics.server.model_copy(update={"prefix": prefix})
    detector = pipeline.detector
    if detector is not None and not isinstance(detector, ResettableDetector):
        detector = ResettableDetector(detector)
        pipeline.detector = detector
    controls = Controls(pause_alerts=AlertPause(built.publisher),
                        reset_changepoints=detector.request_reset if detector is not None else None)

    def counters() -> tuple[int, int]:
        return pipeline.processed, _dropped_total(metrics)

    def state() -> str:
        if not pipeline.started:
            return "starting"
        if not pipeline.healthy:
            return "FAULT: a pipeline stage stopped"
        if isinstance(source, PvaSource) and not source.connected:
            return f"running; input {source.pv} disconnected"
        return "running"

    from wirewatch.stats.aggregates import aggregate_names

    rules = [r.name for r in getattr(daemon.config.alerts, "rules", [])]
    from wirewatch.publish.metrics import AlertMetrics

    alert_metrics = AlertMetrics.on(built.registry)
    server = PvaServer(server_cfg, statistics=aggregate_names(True), rules=rules, pva_conf=epics.pva,
                       controls=controls, counters=counters, state=state, writers=epics.writers,
                       on_error=lambda: alert_metrics.error("pva"))
    server.start()
    alert_metrics.watch("pva", server.heartbeat_alive)
    built.registry.register(PvaServerCollector(server))
    pipeline.listeners.append(server.publish)
    if built.publisher is not None:
        built.publisher.sinks.append(PvAlertSink(server))
        server.alerts_from_results = False  # the sink sees them all (also the ticker's)
    return server
