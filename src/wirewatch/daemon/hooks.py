"""``PipelineHooks``: the daemon's side of the extension interface (``wirewatch.extension.Hooks``).

Extensions reach the pipeline only through this object: they subscribe listeners, add sinks, wrap the
change detector and keep controls, but never replace or mutate the pipeline's parts themselves.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from wirewatch.config.daemon import DaemonConfig
from wirewatch.extension import (
    ChangeDetector,
    ChangePointListener,
    Counters,
    ResultListener,
    ResultSink,
    SourceCounters,
)
from wirewatch.ingest.base import Source
from wirewatch.publish.publisher import Publisher
from wirewatch.publish.sinks.base import AlertSink
from wirewatch.segment.base import Segmenter

from .metrics import DaemonMetrics
from .pipeline import Pipeline


class PipelineHooks:
    def __init__(self, pipeline: Pipeline, *, config: DaemonConfig, registry: CollectorRegistry,
                 metrics: DaemonMetrics, publisher: Publisher | None, backend: str, model: str | None,
                 source_counters: SourceCounters) -> None:
        self._pipeline = pipeline
        self._config = config
        self._registry = registry
        self._metrics = metrics
        self._publisher = publisher
        self._backend = backend
        self._model = model
        self._source_counters = source_counters
        self.result_sinks: list[ResultSink] = []  # added by extensions (closed by the builder if it fails)

    # -- facts -----------------------------------------------------------------------------------
    @property
    def config(self) -> DaemonConfig:
        return self._config

    @property
    def registry(self) -> CollectorRegistry:
        return self._registry

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def model(self) -> str | None:
        return self._model

    @property
    def source(self) -> Source:
        return self._pipeline.source

    @property
    def segmenter(self) -> Segmenter:
        return self._pipeline.segmenter

    @property
    def started(self) -> bool:
        return self._pipeline.started

    @property
    def healthy(self) -> bool:
        return self._pipeline.healthy

    @property
    def ready(self) -> bool:
        return self._pipeline.ready

    def counters(self) -> Counters:
        stats = self._pipeline.source.stats()
        return Counters(received=stats.received, processed=self._pipeline.processed,
                        dropped=_total(self._metrics.frames_dropped), errors=_total(self._metrics.frame_errors))

    def source_counters(self) -> SourceCounters:
        return self._source_counters

    # -- observe ---------------------------------------------------------------------------------
    def on_result(self, listener: ResultListener) -> None:
        self._before_start("a result listener")
        self._pipeline.listeners.append(listener)

    def on_changepoint(self, listener: ChangePointListener) -> None:
        self._before_start("a change-point listener")
        self._pipeline.changepoint_listeners.append(listener)

    # -- add -------------------------------------------------------------------------------------
    def add_result_sink(self, sink: ResultSink) -> None:
        self._before_start("a result sink")
        self._pipeline.sinks.append(sink)
        self.result_sinks.append(sink)

    def add_alert_sink(self, sink: AlertSink, *, pausable: bool = True) -> bool:
        self._before_start("an alert sink")
        if self._publisher is None:
            return False
        self._publisher.add_sink(sink, pausable=pausable)
        return True

    def wrap_detector(self, wrap: Callable[[ChangeDetector], ChangeDetector]) -> bool:
        self._before_start("a change-detector wrapper")
        if self._pipeline.detector is None:
            return False
        self._pipeline.detector = wrap(self._pipeline.detector)
        return True

    # -- controls --------------------------------------------------------------------------------
    def pause_alerts(self, paused: bool) -> None:
        if self._publisher is not None:
            self._publisher.pause(paused)

    @property
    def alerts_paused(self) -> bool:
        return self._publisher is not None and self._publisher.paused

    def reset_changepoints(self) -> None:
        self._pipeline.request_detector_reset()

    def _before_start(self, what: str) -> None:
        if self._pipeline.started:  # the pipeline's threads read these lists without a lock
            raise RuntimeError(f"{what} can only be added before the daemon starts")


def _total(counter: Counter) -> int:
    """The sum of a labelled Prometheus counter's ``_total`` samples."""
    total = 0.0
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                total += sample.value
    return int(total)
