"""The one builder: ``DaemonConfig`` -> a ready ``Pipeline`` (and what it owns).

Stages are built here and handed to ``Pipeline`` already made; tests may pass any of them in
(e.g. a segmenter) to override the config. Plug-ins (the web view, EPICS, your own) are passed as
``extensions`` and attach through ``wirewatch.extension`` (docs/CONTRACTS.md, "Writing an extension").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import zmq
from prometheus_client import CollectorRegistry

from wirewatch.config.daemon import DaemonConfig, SegmentConfig
from wirewatch.errors import BackendUnavailable, WirewatchError
from wirewatch.extension import Extension, SourceCounters
from wirewatch.extras import missing
from wirewatch.ingest.base import RawMessage, Source
from wirewatch.ingest.formats import make_decoder
from wirewatch.ingest.sources import make_source
from wirewatch.publish.publisher import Publisher
from wirewatch.publish.record import RecordWriter
from wirewatch.quality.monitor import QualityMonitor
from wirewatch.segment import load_segmenter
from wirewatch.segment.base import Segmenter
from wirewatch.segment.fit import FitSegmenter
from wirewatch.segment.scale import split_scale_options

from .hooks import PipelineHooks
from .metrics import DaemonMetrics
from .pipeline import Pipeline
from .sinks import AlertsResultSink, Closeable, RecordResultSink, SegmenterCloser
from .stages import ChangeDetector, ResultSink

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def packaged_model(name: str = "default") -> Path | None:
    """The shipped ONNX model file, when this install has it."""
    path = MODELS_DIR / f"{name}.onnx"
    return path if path.is_file() else None


def resolve_backend(config: SegmentConfig) -> tuple[str, dict[str, Any]]:
    """(backend name, keyword options) for ``load_segmenter``; ``auto`` falls back to watershed."""
    options = dict(config.options)
    backend = config.backend
    if backend == "auto":
        model_name = config.model or "default"
        has_model = Path(model_name).is_file() or packaged_model(model_name) is not None
        has_backend = find_spec("onnxruntime") is not None and find_spec("wirewatch.segment.onnx_backend") is not None
        if has_model and has_backend:
            backend = "onnxruntime"
        else:
            why = (f"no ONNX model {model_name!r} installed" if not has_model else
                   "onnxruntime is not installed (pip install 'wirewatch[cpu]', or 'wirewatch[gpu]')")
            log.warning("segmenter: %s; using the watershed baseline, which does not separate crossing wires", why)
            if options:  # with auto, segment.options are the model's (threads, spinning, ...): not watershed's
                log.warning("segmenter: ignoring segment.options %s, meant for the model backend", sorted(options))
            backend, options = "watershed", {}
    if backend != "watershed":
        options["model"] = config.model or "default"
    return backend, options


def build_segmenter(config: DaemonConfig) -> tuple[Segmenter, str, str | None]:
    backend, options = resolve_backend(config.segment)
    _, options = split_scale_options(backend, options)  # scale, scale_window, polarity: FitSegmenter's
    try:
        try:
            segmenter = load_segmenter(backend, **options)
        except ImportError as exc:  # e.g. the tensorrt backend without the tensorrt package
            extra = missing(exc.name or "", f"segmenter backend {backend!r}")  # names the pip extra, if one has it
            raise BackendUnavailable(str(extra) if extra is not None else
                                     f"segmenter backend {backend!r} cannot be loaded here: {exc}") from None
    except WirewatchError as exc:
        if config.segment.backend != "auto" or backend == "watershed":
            raise
        # auto: a model that is installed but cannot be loaded must not stop monitoring altogether
        log.warning("segmenter: cannot load %s (%s); using the watershed baseline instead", backend, exc)
        backend, options = "watershed", {}
        segmenter = load_segmenter(backend)
    return segmenter, backend, options.get("model")


def build_change_detector(config: DaemonConfig) -> ChangeDetector | None:
    """The pipeline's change detector (``changepoint.build_detector`` of ``config.changepoint``), or None."""
    if not config.changepoint.enabled:
        return None
    try:
        from wirewatch.changepoint.streaming import build_detector as build
    except ImportError:
        log.warning("change-point detection is not installed; running without it")
        return None
    detector: ChangeDetector = build(config.changepoint)
    return detector


@dataclass
class Built:
    pipeline: Pipeline
    metrics: DaemonMetrics
    registry: CollectorRegistry
    backend: str
    model: str | None
    record: RecordWriter | None = None
    publisher: Publisher | None = None
    segmenter: Segmenter | None = None  # the backend as built (before FitSegmenter), e.g. the ray backend's
    hooks: PipelineHooks | None = None  # what the extensions were given
    extensions: list[Extension] = field(default_factory=list)  # attached, in order

    def close_extensions(self) -> None:
        """Close every attached extension, last first (after the pipeline's sinks); each at most once."""
        close_extensions(self.extensions)


def close_extensions(extensions: list[Extension]) -> None:
    """Close and remove each extension of the list, last first."""
    while extensions:
        extension = extensions.pop()
        try:
            extension.close()
        except Exception:  # one extension failing to close must not keep the others open
            log.exception("closing extension %s failed", extension.name)


def source_counters(metrics: DaemonMetrics) -> tuple[Callable[[str, RawMessage], None],
                                                   Callable[[str, str], None]]:
    """A source's ``on_drop`` and ``on_reject`` callbacks, counting into the daemon's metrics (a frame refused
    because the daemon is shutting down is a drop, not a bad frame)."""
    def on_drop(reason: str, msg: RawMessage) -> None:
        metrics.frames_dropped.labels(reason=reason).inc()

    def on_reject(kind: str, detail: str) -> None:
        if kind == "shutdown":
            metrics.frames_dropped.labels(reason="shutdown").inc()
        else:
            metrics.frame_errors.labels(kind=kind).inc()

    return on_drop, on_reject


def build_pipeline(config: DaemonConfig, *, registry: CollectorRegistry | None = None,
                   segmenter: Segmenter | None = None, source: Source | None = None,
                   zmq_context: zmq.Context[zmq.Socket[bytes]] | None = None,
                   extensions: Sequence[Extension] = ()) -> Built:
    """Everything wired but not started. Resources are released again if a later part fails.

    ``extensions`` (``wirewatch.extension``): the first one whose ``source()`` gives a source supplies the
    input (unless ``source`` is given); each is then attached, in order, after the pipeline is built."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = DaemonMetrics(registry)
    backend, model = (getattr(segmenter, "name", "custom"), None) if segmenter is not None else ("", None)
    if segmenter is None:
        segmenter, backend, model = build_segmenter(config)
    metrics.set_backend(backend, model)
    pp = config.preprocess
    # segment.options.scale (auto for models): frames resized so wires match the model's training widths;
    # on a stream the median width of the last scale_window (default 9) frames sets the resize
    runtime, _ = split_scale_options(backend, config.segment.options, default_window=9)
    fitted = FitSegmenter(segmenter, max_side=pp.max_side, mode=pp.fit, tile_size=pp.tile_size,
                          tile_overlap=pp.tile_overlap, merge_overlap=pp.merge_overlap,
                          max_detections=config.segment.max_detections, scale=runtime.scale,
                          scale_window=runtime.scale_window, pixel_size_nm=config.measure.pixel_size_nm,
                          polarity=runtime.polarity)
    quality = QualityMonitor(config.quality) if config.quality.enabled else None
    # quality.fallback: e.g. watershed while the model is unreliable (docs/stats.md)
    staged: Segmenter = fitted if quality is None else quality.wrap_segmenter(fitted, max_side=pp.max_side)

    on_drop, on_reject = source_counters(metrics)
    from wirewatch.stats import measure

    record: RecordWriter | None = None
    publisher: Publisher | None = None
    sinks: list[ResultSink] = []
    attached: list[Extension] = []
    hooks: PipelineHooks | None = None
    try:
        if isinstance(segmenter, Closeable):  # e.g. the ray backend: replicas, a local Ray
            sinks.append(SegmenterCloser(segmenter))  # closed with the sinks, or here if building fails
        for extension in extensions if source is None else ():
            source = extension.source(config, SourceCounters(on_drop, on_reject))
            if source is not None:
                break
        if source is None:
            source = make_source(config.ingest, on_drop=on_drop, on_reject=on_reject, context=zmq_context,
                                 record_path=config.record.path)
        decoder = make_decoder(source.format_name, channel=config.ingest.channel, limits=config.ingest.limits(),
                               sample_pixel_key=config.ingest.sample_pixel_key,
                               sample_pixel_scale=config.ingest.sample_pixel_scale)
        if config.record.path is not None:
            record = RecordWriter.from_config(config.record)
            sinks.append(RecordResultSink(record, metrics))
        from wirewatch.publish.build import build_publisher

        publisher = build_publisher(config.alerts, registry, zmq_config=config.publish.zmq, context=zmq_context)
        sinks.append(AlertsResultSink(publisher))
        pipeline = Pipeline(
            source=source, decoder=decoder, preprocess=pp, segmenter=staged, measurer=measure,
            detector=build_change_detector(config), sinks=sinks, metrics=metrics,
            queue_size=config.pipeline.queue_size, pixel_size_nm=config.measure.pixel_size_nm,
            poll_interval_s=config.pipeline.poll_interval_s,
            error_log_interval_s=config.pipeline.error_log_interval_s,
            is_replay=record.is_replay if record is not None else None,
            take_latest=config.ingest.policy == "latest",
            max_in_flight=getattr(segmenter, "max_in_flight", 1), segmenter_ready=getattr(segmenter, "ready", None),
            quality=quality)
        from .products import attach_products  # particle tables, Tiled catalog (docs/products.md)

        sinks.extend(attach_products(pipeline, config, registry=registry, backend=backend, model=model))
        acknowledge = getattr(source, "acknowledge", None)  # a watched folder's resume point (ingest/folder.py)
        if acknowledge is not None:
            pipeline.listeners.append(lambda result: acknowledge(result.frame_id))
        from wirewatch.track import attach_tracking  # wraps the measurer when track.enabled (docs/stats.md)

        attach_tracking(pipeline, config.track)
        hooks = PipelineHooks(pipeline, config=config, registry=registry, metrics=metrics, publisher=publisher,
                              backend=backend, model=model, source_counters=SourceCounters(on_drop, on_reject))
        for extension in extensions:
            attached.append(extension)  # closed below if it (or a later one) fails to attach
            extension.attach(hooks)
    except BaseException:
        close_extensions(attached)
        for s in [*sinks, *(hooks.result_sinks if hooks is not None else [])]:
            s.close()
        raise
    return Built(pipeline=pipeline, metrics=metrics, registry=registry, backend=backend, model=model,
                 record=record, publisher=publisher, segmenter=segmenter, hooks=hooks,
                 extensions=attached)
