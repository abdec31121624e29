"""PV Access as two extensions of the daemon (``wirewatch.extension``; no ``wirewatch.daemon`` import).

- ``PvaInput(epics, pv=...)``: the input (format ``pva``; the decoder is registered with
  ``wirewatch.ingest.make_decoder``): a ``PvaSource`` whose drops and rejects count in the daemon's
  metrics, plus ``wirewatch_pva_disconnects_total`` and ``wirewatch_pva_missed_updates_total``.
- ``PvaOutput(epics, prefix=...)``: a ``PvaServer`` fed by a result listener and an unpausable alert sink
  (the ``alert_<rule>`` PVs follow every transition, also the ticker's), whose control PVs pause alerts
  and reset the change detector through the daemon's controls (writable only by the clients
  ``epics.writers`` lists; refused writes in ``wirewatch_pva_writes_refused_total{pv}``); its heartbeat
  thread's liveness is ``wirewatch_alert_sink_up{sink="pva"}`` and part of the daemon's ``/healthz``.
- ``make_pva_source(config, epics)``: the source alone, e.g. for ``Daemon(config, source=...)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from wirewatch.config.daemon import DaemonConfig
from wirewatch.epics.config import EpicsConfig
from wirewatch.epics.server import Controls, PvaServer
from wirewatch.epics.source import PvaSource
from wirewatch.extension import BaseExtension, Hooks, SourceCounters
from wirewatch.publish.metrics import AlertMetrics
from wirewatch.types import Alert

log = logging.getLogger(__name__)


def make_pva_source(config: DaemonConfig, epics: EpicsConfig, *, pv: str | None = None) -> PvaSource:
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


class PvaInput(BaseExtension):
    """The daemon's input from an areaDetector NTNDArray PV (``epics.input``, ``pv`` overriding its name).

    Also counts a ``PvaSource`` given to the daemon directly (``source=``) once."""

    name = "pva-input"

    def __init__(self, epics: EpicsConfig, *, pv: str | None = None) -> None:
        self.epics = epics
        self.pv = pv
        self.made: PvaSource | None = None

    def source(self, config: DaemonConfig, counters: SourceCounters) -> PvaSource:
        self.made = make_pva_source(config, self.epics, pv=self.pv)
        self.made.on_drop, self.made.on_reject = counters.on_drop, counters.on_reject
        return self.made

    def attach(self, hooks: Hooks) -> None:
        source = hooks.source
        if not isinstance(source, PvaSource):
            return  # the daemon was given another input
        if source is not self.made:
            if source.on_drop is not None:
                return  # already counted (another PvaInput): the collector must not be doubled
            counters = hooks.source_counters()
            source.on_drop, source.on_reject = counters.on_drop, counters.on_reject
        hooks.registry.register(PvaSourceCollector(source))


class PvaOutput(BaseExtension):
    """The daemon's results as PVs named ``<prefix><statistic>``, ``<prefix>status``, ... (``epics.server``;
    ``prefix`` overrides its prefix). The server starts with the daemon and stops after its last frame."""

    name = "pva-server"

    def __init__(self, epics: EpicsConfig, *, prefix: str | None = None) -> None:
        prefix = prefix or epics.server.prefix
        if prefix is None:
            raise ValueError("PvaOutput needs a PV prefix (epics.server.prefix or prefix=)")
        self.epics = epics
        self.prefix = prefix
        self._server: PvaServer | None = None
        self._alert_metrics: AlertMetrics | None = None
        self._started = False

    @property
    def server(self) -> PvaServer:
        if self._server is None:
            raise RuntimeError("PvaOutput.server exists once the extension is attached to a daemon")
        return self._server

    def attach(self, hooks: Hooks) -> None:
        from wirewatch.stats.aggregates import aggregate_names

        source = hooks.source

        def counters() -> tuple[int, int]:
            c = hooks.counters()
            return c.processed, c.dropped

        def state() -> str:
            if not hooks.started:
                return "starting"
            if not hooks.healthy:
                return "FAULT: a pipeline stage stopped"
            if isinstance(source, PvaSource) and not source.connected:
                return f"running; input {source.pv} disconnected"
            return "running"

        alert_metrics = self._alert_metrics = AlertMetrics.on(hooks.registry)
        server = PvaServer(self.epics.server.model_copy(update={"prefix": self.prefix}),
                           statistics=aggregate_names(True), rules=[r.name for r in hooks.config.alerts.rules],
                           pva_conf=self.epics.pva,
                           controls=Controls(pause_alerts=hooks.pause_alerts,
                                             reset_changepoints=hooks.reset_changepoints),
                           counters=counters, state=state, writers=self.epics.writers,
                           on_error=lambda: alert_metrics.error("pva"))
        self._server = server
        hooks.registry.register(PvaServerCollector(server))
        hooks.on_result(server.publish)
        if hooks.add_alert_sink(PvAlertSink(server), pausable=False):  # the alarm PVs follow the rules
            server.alerts_from_results = False  # the sink sees them all (also the ticker's)

    def start(self) -> None:
        server = self.server
        server.start()
        self._started = True
        if self._alert_metrics is not None:
            self._alert_metrics.watch("pva", server.heartbeat_alive)
        log.info("PV Access server: PVs %s<statistic>, %sstatus, ... (%s)", server.prefix, server.prefix,
                 server.conf().get("EPICS_PVAS_SERVER_PORT", "?"))

    def close(self) -> None:
        if self._server is not None and self._started:
            self._started = False
            self._server.close()
