"""The daemon's plug-in interface: what an extension may observe, add and control, and when.

An extension is one object handed to ``build_pipeline(config, extensions=[...])`` (or ``Daemon(config,
extensions=[...])``; ``wirewatch run`` picks them from its flags and config). The web view
(``wirewatch.web.mount.WebView``) and EPICS PV Access (``wirewatch.epics.daemon.PvaInput`` /
``PvaOutput``) are extensions. The daemon calls, in this order:

1. ``source(config, counters)``: once, before the pipeline is built, and only when no source was given:
   the first extension returning a ``Source`` supplies the input; ``counters`` count its drops and bad
   messages in the daemon's metrics.
2. ``attach(hooks)``: once, after the pipeline is built and before anything runs: subscribe listeners,
   add result or alert sinks, wrap the change detector, keep the controls it needs (``Hooks``).
3. ``start()``: when the daemon starts, before the first frame is taken.
4. ``close()``: after the last frame was published and the sinks were closed, or when building or
   starting failed after ``attach``; it must also work when ``start()`` was never called.

Listeners and result sinks run on the pipeline's publish thread, alert sinks on it and on the alert
ticker: they must return quickly and never wait on the network. One that raises is logged and
skipped; it never stops the daemon. The controls (``pause_alerts``, ``reset_changepoints``) may be
called from any thread at any time.

This module imports nothing of ``wirewatch.daemon``: web and EPICS depend on it, the daemon implements it.
``FrameResult``, ``ChangeDetector`` and ``ResultSink`` live here because they are what extensions see;
``wirewatch.daemon.stages`` re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from prometheus_client import CollectorRegistry

from wirewatch.config.daemon import DaemonConfig
from wirewatch.ingest.base import RawMessage, Source
from wirewatch.publish.sinks.base import AlertSink
from wirewatch.segment.base import Segmenter
from wirewatch.types import Alert, ChangePoint, Detections, Frame, FrameStats, SeriesEnd, SeriesStart

__all__ = ["AlertSink", "BaseExtension", "ChangeDetector", "ChangePointListener", "Counters", "Extension",
           "FrameResult", "Hooks", "Observer", "ResultListener", "ResultSink", "SeriesEvent", "SourceCounters"]


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

ResultListener = Callable[[FrameResult], None]  # each frame's final result, with every sink's alerts
ChangePointListener = Callable[[ChangePoint], None]  # each change point, before the frame's result listeners


@runtime_checkable
class ChangeDetector(Protocol):
    """Streaming change detection (``wirewatch.changepoint.build_detector``)."""

    def update(self, frame_id: int, stats: Mapping[str, float]) -> list[ChangePoint]: ...

    def reset(self) -> None: ...


@runtime_checkable
class ResultSink(Protocol):
    """One way results leave the daemon (record file, ZeroMQ ``stats`` topic, alerts, data products)."""

    name: str

    def publish(self, result: FrameResult) -> Sequence[Alert]:
        """Handle one frame; may return alerts it raised (shown to later sinks and listeners)."""
        ...

    def series(self, event: SeriesEvent) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SourceCounters:
    """A source's callbacks that count into the daemon's metrics: ``on_drop(reason, message)``
    (``wirewatch_frames_dropped_total``) and ``on_reject(kind, detail)`` (``wirewatch_frame_errors_total``)."""

    on_drop: Callable[[str, RawMessage], None]
    on_reject: Callable[[str, str], None]


@dataclass(frozen=True)
class Counters:
    """Frames so far, read from the pipeline's own objects (cheap enough for a status poll)."""

    received: int
    processed: int
    dropped: int
    errors: int

    def as_dict(self) -> dict[str, float]:
        return {"received": float(self.received), "processed": float(self.processed),
                "dropped": float(self.dropped), "errors": float(self.errors)}


class Hooks(Protocol):
    """What the daemon offers an extension in ``attach``: read-only facts, things to observe, things to add,
    and controls. Adding (listeners, sinks, a detector wrapper) is allowed only before the daemon starts."""

    @property
    def config(self) -> DaemonConfig: ...

    @property
    def registry(self) -> CollectorRegistry:
        """The daemon's private Prometheus registry (collectors go here, never to the global one)."""
        ...

    @property
    def backend(self) -> str: ...

    @property
    def model(self) -> str | None: ...

    @property
    def source(self) -> Source: ...

    @property
    def segmenter(self) -> Segmenter:
        """What the pipeline segments with (fitting included); onnxruntime and watershed may be called from
        a second thread (the web view's uploads)."""
        ...

    @property
    def started(self) -> bool: ...

    @property
    def healthy(self) -> bool:
        """Every pipeline stage alive (``/healthz`` adds the alert sinks' workers)."""
        ...

    @property
    def ready(self) -> bool: ...

    def counters(self) -> Counters: ...

    def source_counters(self) -> SourceCounters:
        """Callbacks for a source the extension made or was given, counting into the daemon's metrics."""
        ...

    # -- observe ---------------------------------------------------------------------------------
    def on_result(self, listener: ResultListener) -> None: ...

    def on_changepoint(self, listener: ChangePointListener) -> None: ...

    # -- add -------------------------------------------------------------------------------------
    def add_result_sink(self, sink: ResultSink) -> None:
        """A sink closed with the others after the last frame (flush what it holds in ``close``)."""
        ...

    def add_alert_sink(self, sink: AlertSink, *, pausable: bool = True) -> bool:
        """Sees every alert transition, also those the ticker raises between frames. ``pausable=False``:
        it keeps getting them while alerts are paused (e.g. alarm PVs that must follow the rules).
        False (not added) when this daemon sends no alerts at all."""
        ...

    def wrap_detector(self, wrap: Callable[[ChangeDetector], ChangeDetector]) -> bool:
        """Replace the change detector by ``wrap(detector)``; False (nothing wrapped) when change
        detection is off."""
        ...

    # -- controls (any thread, any time) ---------------------------------------------------------
    def pause_alerts(self, paused: bool) -> None:
        """While paused the rules keep running but only unpausable alert sinks are sent alerts."""
        ...

    @property
    def alerts_paused(self) -> bool: ...

    def reset_changepoints(self) -> None:
        """Forget the change-point state; done in the measure thread before the next frame."""
        ...


class Extension(Protocol):
    """A plug-in of the daemon (see the module docstring for when each method is called)."""

    name: str

    def source(self, config: DaemonConfig, counters: SourceCounters) -> Source | None: ...

    def attach(self, hooks: Hooks) -> None: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class BaseExtension:
    """Do-nothing defaults: subclass it and override only what the extension needs."""

    name = "extension"

    def source(self, config: DaemonConfig, counters: SourceCounters) -> Source | None:
        return None

    def attach(self, hooks: Hooks) -> None:
        pass

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class Observer(BaseExtension):
    """An extension that only listens: ``Daemon(config, extensions=[Observer(on_result=fn)])`` (the demo's
    live table, the daemon bench's timings)."""

    name = "observer"

    def __init__(self, *, on_result: ResultListener | None = None,
                 on_changepoint: ChangePointListener | None = None) -> None:
        self.on_result = on_result
        self.on_changepoint = on_changepoint

    def attach(self, hooks: Hooks) -> None:
        if self.on_result is not None:
            hooks.on_result(self.on_result)
        if self.on_changepoint is not None:
            hooks.on_changepoint(self.on_changepoint)
