"""``Pipeline``: source -> decode -> preprocess -> segment -> measure -> detect changes -> publish.

A composition root: it is handed every stage already built and only wires them with threads and
bounded queues; it holds no science. Threads:

- the source's own drain thread (``wirewatch.ingest``): socket -> bounded raw buffer (policy
  ``latest`` drops the oldest frame, ``queue`` applies back-pressure); every drop is counted;
- ``segment``: takes one raw message, decodes it (only the frames inference takes are decoded),
  preprocesses and segments it;
- ``measure``: statistics and streaming change detection;
- ``publish``: record, ZeroMQ, alerts, metrics, listeners.

Each stage has one thread and the queues are FIFO, so results leave in arrival order. Series
start/end events travel the same queues, in order, and reset the change detector.

Stop: ``request_stop()`` stops intake (the socket is closed), frames already received (raw
buffer, queues) are still processed, sinks are flushed and closed; ``join(timeout)`` waits at
most ``timeout`` seconds before abandoning what is left (counted as dropped, reason
``shutdown``).
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import lru_cache, partial
from typing import Any

from wirewatch.errors import DecodeError, WirewatchError
from wirewatch.ingest.base import Decoder, RawMessage, Source
from wirewatch.preprocess.config import PreprocessConfig
from wirewatch.preprocess.normalise import prepare
from wirewatch.preprocess.valid import restrict_to_valid
from wirewatch.quality.monitor import QualityMonitor
from wirewatch.segment.base import Segmenter
from wirewatch.types import Alert, ChangePoint, Frame, FrameStats, SeriesEnd, SeriesStart

from .inflight import OrderedWindow
from .metrics import DaemonMetrics
from .stages import (
    ChangeDetector,
    FrameResult,
    ResultSink,
    Segmented,
    SeriesEvent,
    StageClock,
    Stop,
    ThrottledLog,
)

log = logging.getLogger(__name__)

Measurer = Callable[..., FrameStats]  # wirewatch.stats.measure signature
Listener = Callable[[FrameResult], None]
ReplayCheck = Callable[[str | None, int], bool]


class Pipeline:
    def __init__(self, *, source: Source, decoder: Decoder, preprocess: PreprocessConfig, segmenter: Segmenter,
                 measurer: Measurer, detector: ChangeDetector | None, sinks: Sequence[ResultSink],
                 metrics: DaemonMetrics, queue_size: int = 2, pixel_size_nm: float | None = None,
                 poll_interval_s: float = 0.1, error_log_interval_s: float = 10.0,
                 is_replay: ReplayCheck | None = None, take_latest: bool = False, max_in_flight: int = 1,
                 segmenter_ready: Callable[[], bool] | None = None, quality: QualityMonitor | None = None) -> None:
        self.source = source
        self.decoder = decoder
        self.preprocess = preprocess
        self.segmenter = segmenter
        self.measurer = measurer
        self.detector = detector
        self.quality = quality  # reliability and image quality per frame; attribution of change points
        self.sinks = list(sinks)
        self.metrics = metrics
        self.pixel_size_nm = pixel_size_nm
        self.poll = poll_interval_s
        self.is_replay = is_replay
        self.take_latest = take_latest
        # max_in_flight > 1 (a segmenter served elsewhere, e.g. the ray backend): frames segmented
        # concurrently in an OrderedWindow, results still handed on in frame order
        self.max_in_flight = max_in_flight
        self._window: OrderedWindow[Any] | None = None
        self.segmenter_ready = segmenter_ready  # e.g. "a replica is alive"; part of ``ready``
        self.listeners: list[Listener] = []
        self.changepoint_listeners: list[Callable[[ChangePoint], None]] = []
        self._q_measure: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._q_publish: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._intake_stop = threading.Event()
        self._abort = threading.Event()
        self._done = threading.Event()
        self._reset_detector = threading.Event()  # request_detector_reset(): done in the measure thread
        self._throttled = ThrottledLog(log, error_log_interval_s)
        self._threads: list[threading.Thread] = []
        self._started = False
        self._sinks_closed = False
        self._series_pixel_size: float | None = None
        self._pixel_size_logged: tuple[float | None, str] | None = None
        self._last_frame_id: int | None = None
        self.processed = 0
        self._stop_target: int | None = None  # messages received when intake stopped
        self._stop_deadline = 0.0
        self.error: BaseException | None = None  # an unexpected failure that stopped a stage
        metrics.source_collector.source = source

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            raise RuntimeError("pipeline already started")
        self._started = True
        if self.max_in_flight > 1:
            self._window = OrderedWindow(self.max_in_flight, self._deliver_in_order, name="wirewatch-segment")
        self.source.start()
        for name, target in (("segment", self._segment_loop), ("measure", self._measure_loop),
                             ("publish", self._publish_loop)):
            t = threading.Thread(target=self._guard(name, target), name=f"wirewatch-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def request_stop(self) -> None:
        """Stop intake; what was already received is still processed."""
        self._intake_stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the stream to drain (True) or ``timeout`` to pass (False: the rest is abandoned).
        Sinks are closed either way."""
        finished = self._done.wait(timeout)
        if not finished:
            log.warning("shutdown: timeout after %.1f s with frames still in flight; abandoning them", timeout)
            self._abort.set()
            self._intake_stop.set()
            self._done.wait(2.0)
        for t in self._threads:
            t.join(timeout=1.0)
        self.close_sinks()
        return finished

    def run_until_stopped(self, stop: threading.Event, shutdown_timeout_s: float) -> bool:
        """Start, run until ``stop`` is set or a finite source ends, then drain within the timeout."""
        self.start()
        while not stop.is_set() and not self._done.is_set():
            stop.wait(0.2)
        self.request_stop()
        return self.join(shutdown_timeout_s)

    def request_detector_reset(self) -> None:
        """Forget the change detector's state before the next frame (safe from any thread: the reset itself
        happens in the measure thread, which alone calls the detector)."""
        self._reset_detector.set()

    def abort(self) -> None:
        """Give up on frames in flight (counted as dropped, reason shutdown)."""
        self._abort.set()
        self._intake_stop.set()

    @property
    def started(self) -> bool:
        return self._started

    @property
    def running(self) -> bool:
        return self._started and not self._done.is_set()

    @property
    def healthy(self) -> bool:
        """Every stage thread alive (or finished cleanly) and the source without error."""
        if self.error is not None or getattr(self.source, "error", None) is not None:
            return False
        return all(t.is_alive() for t in self._threads) or self._done.is_set()

    @property
    def ready(self) -> bool:
        return (self._started and not self._intake_stop.is_set() and self.healthy
                and (self.segmenter_ready is None or self.segmenter_ready()))

    # -- threads ---------------------------------------------------------------------------------
    def _guard(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # a bug, not bad input: stop cleanly and say so
                log.exception("pipeline stage %s failed; stopping the pipeline", name)
                self.error = exc
                self._abort.set()
                self._intake_stop.set()
                self._done.set()
        return run

    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        """Blocking put that gives up when aborting (bounded queues: back-pressure upstream)."""
        while not self._abort.is_set():
            try:
                q.put(item, timeout=self.poll)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while not self._abort.is_set():
            try:
                return q.get(timeout=self.poll)
            except queue.Empty:
                continue
        return Stop()

    def _segment_loop(self) -> None:
        closed = False
        while not self._abort.is_set():
            if self._intake_stop.is_set() and not closed and self._received_before_stop_handled():
                self.source.close()  # stop intake; what is buffered stays readable
                closed = True
            if self._window is not None and not self._window.wait_for_slot(self.poll):
                continue  # every slot busy: frames wait in the raw buffer, where the ingest policy applies
            msg = self.source.get(timeout=0 if closed else self.poll)
            if msg is None:
                if closed or self.source.finished:
                    break
                continue
            for m in self._newest_first(msg):
                self._handle_message(m)
        if self._window is not None:
            left = self._window.finish(abort=self._abort.is_set)
            if left:
                self.metrics.frames_dropped.labels(reason="shutdown").inc(left)
        self._put(self._q_measure, Stop())

    def _newest_first(self, msg: RawMessage) -> list[RawMessage]:
        """With ``take_latest``, also take what else waits in the raw buffer and keep only the newest frame
        of each run of frames (series start/end messages all stay, in order): the frame segmented next is
        the freshest one, so latency stays near one inference. Skipped frames: ``dropped{superseded}``."""
        if not self.take_latest or msg.control:
            return [msg]
        batch = [msg]
        while self.source.stats().buffered > 0:
            more = self.source.get(timeout=0)
            if more is None:
                break
            batch.append(more)
        keep = [m for i, m in enumerate(batch)
                if m.control or i + 1 == len(batch) or batch[i + 1].control]
        if len(keep) < len(batch):
            self.metrics.frames_dropped.labels(reason="superseded").inc(len(batch) - len(keep))
        return keep

    def _received_before_stop_handled(self) -> bool:
        """True once every message received before the stop was taken, dropped or rejected. A message the
        drain thread holds while waiting for room (policy queue) counts as received: closing the source
        before it is in the buffer would lose it."""
        stats = self.source.stats()
        if self._stop_target is None:
            self._stop_target = stats.received
            self._stop_deadline = time.monotonic() + 5.0
        handled = stats.delivered + sum(stats.dropped.values()) + sum(stats.rejected.values())
        return handled >= self._stop_target or time.monotonic() > self._stop_deadline

    def _handle_message(self, msg: RawMessage) -> None:
        t0 = time.perf_counter()
        try:
            events = self.decoder.decode(msg.parts, msg.received_at)
        except DecodeError as exc:
            self._count_error(exc.kind, f"skipped a bad message ({exc.kind}): {exc}")
            return
        except Exception as exc:  # a decoder must never take the daemon down
            self._count_error("decoder_failure", f"decoder failed on a message: {exc!r}")
            return
        decode_s = time.perf_counter() - t0
        for event in events:
            if self._window is not None:
                self._to_window(event, decode_s)
            elif isinstance(event, Frame):
                clock = StageClock({"decode": decode_s})
                segmented = self._segment(event, clock)
                if segmented is not None and not self._put(self._q_measure, segmented):
                    return
            elif not self._put(self._q_measure, event):
                return

    def _to_window(self, event: Frame | SeriesEvent, decode_s: float) -> None:
        assert self._window is not None
        if isinstance(event, Frame):
            self._window.submit(partial(self._segment, event, StageClock({"decode": decode_s})))
        else:
            self._window.put_ready(event)  # keeps its place between the frames

    def _deliver_in_order(self, item: Segmented | SeriesEvent | None) -> None:
        if item is not None:  # None: the frame was skipped (error or replay), already counted
            self._put(self._q_measure, item)

    def _segment(self, frame: Frame, clock: StageClock) -> Segmented | None:
        if self.is_replay is not None and self.is_replay(frame.series_id, frame.frame_id):
            self.metrics.frames_dropped.labels(reason="replay").inc()
            self._throttled.warning("replay", f"frame {frame.frame_id} is already in the record; skipped")
            return None
        t = time.perf_counter()
        try:
            prepared = prepare(frame, self.preprocess)
            t = clock.timed("preprocess", t)
            detections = restrict_to_valid(self.segmenter.segment(prepared.image), prepared.valid)
            clock.timed("segment", t)
        except WirewatchError as exc:
            self._count_error("unusable_image", f"frame {frame.frame_id}: {exc}")
            return None
        except Exception as exc:
            log.debug("segmenter failure", exc_info=True)
            self._count_error("segment_failed", f"frame {frame.frame_id}: segmenter failed: {exc!r}")
            return None
        return Segmented(frame=frame, image=prepared.image, signal=prepared.signal, detections=detections,
                         timings=clock.timings)

    def _measure_loop(self) -> None:
        while True:
            item = self._get(self._q_measure)
            if isinstance(item, Stop):
                self._put(self._q_publish, item)
                return
            if isinstance(item, SeriesStart | SeriesEnd):
                self._on_series(item)
                self._put(self._q_publish, item)
                continue
            result = self._measure(item)
            if result is not None:
                self._put(self._q_publish, result)

    def _on_series(self, event: SeriesEvent) -> None:
        if isinstance(event, SeriesStart):
            self._series_pixel_size = event.pixel_size_nm
        else:
            self._series_pixel_size = None
        self._last_frame_id = None
        if self.detector is not None:
            self.detector.reset()
        if self.quality is not None:
            self.quality.reset()
        reset = getattr(self.measurer, "reset", None)  # a stateful measurer (tracking) starts afresh
        if reset is not None:
            reset()

    def _pixel_size(self, frame: Frame) -> float | None:
        """The sample pixel size (nm): the stream's sample-pixel field, else the config, else none.

        Decoders never put a detector's pixel here, so without either no ``*_nm`` statistic is
        published rather than a wrong one. The source is logged whenever it changes (series start).
        """
        if frame.pixel_size_nm:
            value, source = frame.pixel_size_nm, "the stream's sample pixel field"
        elif self._series_pixel_size:
            value, source = self._series_pixel_size, "the series start message's sample pixel field"
        elif self.pixel_size_nm:
            value, source = self.pixel_size_nm, "configuration (measure.pixel_size_nm)"
        else:
            value, source = None, "none"
        if (value, source) != self._pixel_size_logged:
            self._pixel_size_logged = (value, source)
            if value is None:
                log.info("sample pixel size: none known (no stream field, measure.pixel_size_nm unset); "
                         "*_nm statistics are not published")
            else:
                log.info("sample pixel size %.4g nm, from %s", value, source)
        return value

    def _with_quality(self, seg: Segmented, stats: FrameStats) -> FrameStats:
        assert self.quality is not None
        try:
            extra = self.quality.measure(seg.frame.image, seg.image, seg.detections, valid=seg.frame.valid)
        except Exception:  # a quality measure must never cost the frame its statistics
            log.exception("quality measures failed on frame %d", seg.frame.frame_id)
            return stats
        stats = replace(stats, aggregates={**stats.aggregates, **extra})
        self.quality.remember(seg.frame.frame_id, stats.aggregates)
        return stats

    def _measure(self, seg: Segmented) -> FrameResult | None:
        frame = seg.frame
        clock = StageClock(dict(seg.timings))
        if self._last_frame_id is not None and frame.frame_id <= self._last_frame_id:
            # Ids went backwards without a series start: a new series (e.g. the sender restarted).
            log.info("frame id %d after %d: treating it as a new series", frame.frame_id, self._last_frame_id)
            if self.detector is not None:
                self.detector.reset()
        self._last_frame_id = frame.frame_id
        pixel_size = self._pixel_size(frame)
        t = time.perf_counter()
        try:
            stats = self.measurer(seg.detections, seg.signal, pixel_size_nm=pixel_size, frame_id=frame.frame_id,
                                  time=frame.time)
        except WirewatchError as exc:
            self._count_error("unmeasurable", f"frame {frame.frame_id}: {exc}")
            return None
        except Exception as exc:  # a measuring bug on one odd frame must not stop the daemon
            log.debug("measure failure", exc_info=True)
            self._count_error("measure_failed", f"frame {frame.frame_id}: measuring failed: {exc!r}")
            return None
        t = clock.timed("measure", t)
        if self.quality is not None:
            stats = self._with_quality(seg, stats)
            t = clock.timed("quality", t)
        changepoints: list[ChangePoint] = []
        if self._reset_detector.is_set():
            self._reset_detector.clear()
            if self.detector is not None:
                self.detector.reset()
        if self.detector is not None:
            try:
                if _takes_time(type(self.detector)):  # slow-stream settings in seconds (changepoint.warmup_s)
                    timed: Callable[..., list[ChangePoint]] = self.detector.update
                    changepoints = timed(frame.frame_id, stats.aggregates, time=frame.time)
                else:
                    changepoints = self.detector.update(frame.frame_id, stats.aggregates)
            except Exception:  # a detector bug must not stop measuring
                log.exception("change-point detector failed on frame %d", frame.frame_id)
        if self.quality is not None:
            changepoints = [self.quality.judge(cp) for cp in changepoints]
            changepoints += self.quality.instrument_steps(frame.frame_id)  # a refocus that moved no statistic
        clock.timed("changepoint", t)
        return FrameResult(frame=frame, stats=stats, changepoints=tuple(changepoints), image=seg.image,
                           detections=seg.detections, timings=clock.timings)

    def _publish_loop(self) -> None:
        while True:
            item = self._get(self._q_publish)
            if isinstance(item, Stop):
                break
            if isinstance(item, SeriesStart | SeriesEnd):
                if isinstance(item, SeriesStart):
                    self.metrics.series_total.inc()
                for sink in self.sinks:
                    self._safely(sink.name, sink.series, item)
                continue
            self._publish(item)
        self._drain_abandoned()
        self._done.set()

    def _publish(self, result: FrameResult) -> None:
        t = time.perf_counter()
        alerts: list[Alert] = []
        for sink in self.sinks:
            raised = self._safely(sink.name, sink.publish, result)
            if raised:
                alerts.extend(raised)
        published_at = time.time()
        timings = dict(result.timings)
        timings["publish"] = time.perf_counter() - t
        done = FrameResult(frame=result.frame, stats=result.stats, changepoints=result.changepoints,
                           image=result.image, detections=result.detections, timings=timings,
                           alerts=tuple(alerts), published_at=published_at)
        timings["total"] = done.latency_s
        m = self.metrics
        for stage, seconds in timings.items():
            m.stage_latency.labels(stage=stage).observe(seconds)
        m.observe_stats(result.stats.aggregates)
        m.frames_processed.inc()
        m.last_frame_id.set(result.frame_id)
        m.last_frame_time.set(result.frame.time)
        m.queue_depth.labels(queue="measure").set(self._q_measure.qsize())
        m.queue_depth.labels(queue="publish").set(self._q_publish.qsize())
        self.processed += 1
        for cp in result.changepoints:
            log.info("change point at frame %d in %s (%s, detected at %d)", cp.frame, ", ".join(cp.statistics),
                     cp.detector, cp.detected_at)
            for cp_listener in self.changepoint_listeners:
                self._safely("listener", cp_listener, cp)
        for listener in self.listeners:
            self._safely("listener", listener, done)

    def _safely(self, name: str, call: Callable[..., Any], *args: Any) -> Any:
        """A failing sink or listener is logged (throttled) and skipped; the frame goes on to the others."""
        try:
            return call(*args)
        except Exception as exc:
            self._throttled.warning(f"sink:{name}", f"{name} failed: {exc!r}")
            return None

    def _drain_abandoned(self) -> None:
        """Count frames left in the queues when aborting, so the drop counter stays exact."""
        left = 0
        for q in (self._q_measure, self._q_publish):
            while True:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, Segmented | FrameResult):
                    left += 1
        if self._abort.is_set():
            while (msg := self.source.get(timeout=0)) is not None:
                if not msg.control:
                    left += 1
        if left:
            self.metrics.frames_dropped.labels(reason="shutdown").inc(left)

    def _count_error(self, kind: str, message: str) -> None:
        self.metrics.frame_errors.labels(kind=kind).inc()
        self._throttled.warning(kind, message)

    def close_sinks(self) -> None:
        """Close every sink (flushing the record) and the source; idempotent."""
        if self._sinks_closed:
            return
        self._sinks_closed = True
        for sink in self.sinks:
            self._safely(sink.name, sink.close)
        self._safely("source", self.source.close)  # closing twice is harmless


@lru_cache(maxsize=32)
def _takes_time(detector_type: type) -> bool:
    """Whether a change detector's ``update`` takes the frame's ``time`` (older detectors and wrappers do not)."""
    try:
        return "time" in inspect.signature(getattr(detector_type, "update")).parameters  # noqa: B009
    except (TypeError, ValueError, AttributeError):
        return False
