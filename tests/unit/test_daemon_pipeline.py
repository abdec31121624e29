"""The pipeline's wiring without sockets: an in-memory source, real decoders, preprocess, stats."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from wirewatch.config.daemon import DaemonConfig, load_daemon_config
from wirewatch.daemon.build import resolve_backend
from wirewatch.daemon.metrics import DaemonMetrics
from wirewatch.daemon.pipeline import Pipeline
from wirewatch.daemon.stages import FrameResult, ThrottledLog
from wirewatch.errors import WirewatchError
from wirewatch.ingest import encode_array10, encode_series, make_decoder
from wirewatch.ingest.memory import MessageListSource as ListSource
from wirewatch.preprocess import PreprocessConfig
from wirewatch.segment.watershed import WatershedSegmenter
from wirewatch.stats import measure
from wirewatch.types import ChangePoint

CONFIG = Path(__file__).resolve().parents[2] / "config"


class CountingDetector:
    def __init__(self) -> None:
        self.updates: list[int] = []
        self.resets = 0

    def update(self, frame_id: int, stats: Mapping[str, float]) -> list[ChangePoint]:
        self.updates.append(frame_id)
        if frame_id == 3:
            return [ChangePoint(frame=3, detected_at=3, statistics=("particle_count",), before={}, after={},
                                effect_size=2.0, detector="test")]
        return []

    def reset(self) -> None:
        self.resets += 1


class ListSink:
    name = "list"

    def __init__(self, fail: bool = False) -> None:
        self.results: list[FrameResult] = []
        self.events: list[object] = []
        self.fail = fail
        self.closed = False

    def publish(self, result: FrameResult) -> list:
        if self.fail:
            raise RuntimeError("sink down")
        self.results.append(result)
        return []

    def series(self, event: object) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True


def rods(i: int) -> np.ndarray:
    img = np.zeros((64, 64), np.uint8)
    img[5:10, 5:50] = 200
    if i % 2:
        img[20:60, 40:45] = 200
    return img


def run(messages: list[list[bytes]], fmt: str = "array-1.0", **kw: object) -> tuple[Pipeline, ListSink, object]:
    sink, detector = ListSink(), CountingDetector()
    registry = CollectorRegistry()
    pipe = Pipeline(source=ListSource(messages, fmt), decoder=make_decoder(fmt), preprocess=PreprocessConfig(),
                    segmenter=WatershedSegmenter(), measurer=measure, detector=detector,
                    sinks=[ListSink(fail=True), sink], metrics=DaemonMetrics(registry), queue_size=2, **kw)  # type: ignore[arg-type]
    pipe.start()
    assert pipe.join(30)
    return pipe, sink, detector


def test_results_in_order_with_stats_and_changepoints() -> None:
    msgs = [encode_array10(i, rods(i), pixel_size_nm=2.0) for i in range(8)]
    pipe, sink, detector = run(msgs)
    assert [r.frame_id for r in sink.results] == list(range(8))  # a failing sink before it changes nothing
    assert [r.stats.aggregates["particle_count"] for r in sink.results] == [1, 2] * 4
    assert sink.results[3].changepoints[0].frame == 3
    assert detector.updates == list(range(8))  # type: ignore[attr-defined]
    assert sink.closed and pipe.processed == 8
    reg = pipe.metrics.registry
    assert reg.get_sample_value("wirewatch_frames_processed_total") == 8
    assert reg.get_sample_value("wirewatch_particle_count") == 2
    assert reg.get_sample_value("wirewatch_particle_length_mean_meters") == pytest.approx(
        sink.results[-1].stats.aggregates["length_nm_mean"] * 1e-9)
    assert reg.get_sample_value("wirewatch_stage_latency_seconds_count", {"stage": "segment"}) == 8


def test_bad_messages_and_unusable_frames_are_counted_and_skipped() -> None:
    msgs = [encode_array10(0, rods(0)), [b"{nope", b""], encode_array10(1, np.zeros((2, 2, 2), np.uint8)
                                                                        .reshape(2, 4)),
            encode_array10(2, rods(2))]
    pipe, sink, _ = run(msgs)
    assert [r.frame_id for r in sink.results] == [0, 1, 2]  # a 2x4 image is tiny but valid
    assert pipe.metrics.registry.get_sample_value("wirewatch_frame_errors_total", {"kind": "bad_header"}) == 1


def test_series_boundaries_travel_in_order_and_reset_the_detector() -> None:
    first = encode_series("stream2", [rods(i) for i in range(3)], series_id=1)
    second = encode_series("stream2", [rods(i) for i in range(2)], series_id=2)
    pipe, sink, detector = run(first + second, fmt="stream2")
    assert [r.frame_id for r in sink.results] == [0, 1, 2, 0, 1]
    assert [type(e).__name__ for e in sink.events] == ["SeriesStart", "SeriesEnd", "SeriesStart", "SeriesEnd"]
    assert detector.resets == 4  # type: ignore[attr-defined]
    assert len({r.frame.series_id for r in sink.results}) == 2
    assert pipe.metrics.registry.get_sample_value("wirewatch_series_total") == 2


def test_frame_ids_going_back_without_series_start_reset_the_detector() -> None:
    msgs = [encode_array10(i, rods(i)) for i in (5, 6, 0, 1)]
    _, sink, detector = run(msgs)
    assert [r.frame_id for r in sink.results] == [5, 6, 0, 1]
    assert detector.resets >= 1  # type: ignore[attr-defined]


def test_replayed_frames_are_dropped_with_reason() -> None:
    msgs = [encode_array10(i, rods(i)) for i in range(4)]
    pipe, sink, _ = run(msgs, is_replay=lambda series, frame: frame < 2)
    assert [r.frame_id for r in sink.results] == [2, 3]
    assert pipe.metrics.registry.get_sample_value("wirewatch_frames_dropped_total", {"reason": "replay"}) == 2


def test_metrics_gauges_use_units_and_nan_for_undefined() -> None:
    m = DaemonMetrics(CollectorRegistry())
    m.observe_stats({"particle_count": 0, "number_density_per_um2": 2.0, "width_nm_mean": math.nan})
    reg = m.registry
    assert reg.get_sample_value("wirewatch_particle_count") == 0
    assert reg.get_sample_value("wirewatch_number_density_per_square_meter") == pytest.approx(2e12)
    assert math.isnan(reg.get_sample_value("wirewatch_particle_width_mean_meters"))  # type: ignore[arg-type]
    assert math.isnan(reg.get_sample_value("wirewatch_particle_length_mean_pixels"))  # type: ignore[arg-type]
    assert reg.get_sample_value("wirewatch_frames_received_total") == 0


def test_throttled_log_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    log = ThrottledLog(logging.getLogger("t"), interval_s=60)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            log.warning("truncated", "bad frame")
        log.warning("bad_dtype", "other kind")
    assert [r.getMessage() for r in caplog.records] == ["bad frame", "other kind"]


def test_auto_backend_falls_back_to_watershed_without_a_model(caplog: pytest.LogCaptureFixture) -> None:
    cfg = DaemonConfig.model_validate({"segment": {"backend": "auto", "model": "/nonexistent/model.onnx"}})
    with caplog.at_level(logging.WARNING):
        assert resolve_backend(cfg.segment) == ("watershed", {})
    assert "watershed" in caplog.text
    with_options = DaemonConfig.model_validate({"segment": {"backend": "auto", "model": "/nonexistent/model.onnx",
                                                            "options": {"threads": 1}}})
    with caplog.at_level(logging.WARNING):
        assert resolve_backend(with_options.segment) == ("watershed", {})  # model options not passed to watershed
    assert "ignoring segment.options ['threads']" in caplog.text
    explicit = DaemonConfig.model_validate({"segment": {"backend": "onnxruntime", "model": "m.onnx"}})
    assert resolve_backend(explicit.segment) == ("onnxruntime", {"model": "m.onnx"})


def test_shipped_configs_load_and_env_overrides_apply() -> None:
    cfg = load_daemon_config(CONFIG / "default.yaml", environ={"WIREWATCH_INGEST__POLICY": "queue"})
    assert cfg.ingest.policy == "queue" and cfg.ingest.socket == "pull" and not cfg.ingest.bind
    assert cfg.http.host == "127.0.0.1" and cfg.publish.zmq is not None
    example = load_daemon_config(CONFIG / "stream2-example.yaml", environ={})
    assert example.preprocess.fit == "tile" and example.ingest.channel == "threshold_1"


def test_take_latest_keeps_the_newest_frame_of_each_run_and_every_series_event() -> None:
    first = encode_series("stream2", [rods(i) for i in range(3)], series_id=1)
    second = encode_series("stream2", [rods(i) for i in range(1)], series_id=2)
    pipe, sink, _ = run(first + second, fmt="stream2", take_latest=True)
    assert [r.frame_id for r in sink.results] == [2, 0]  # frames 0 and 1 of series 1 were superseded
    assert [type(e).__name__ for e in sink.events] == ["SeriesStart", "SeriesEnd", "SeriesStart", "SeriesEnd"]
    reg = pipe.metrics.registry
    assert reg.get_sample_value("wirewatch_frames_dropped_total", {"reason": "superseded"}) == 2


def test_auto_backend_falls_back_when_the_model_cannot_be_loaded(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    from wirewatch.daemon.build import build_segmenter

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    cfg = DaemonConfig.model_validate({"segment": {"backend": "auto", "model": str(broken)}})
    with caplog.at_level(logging.WARNING):
        segmenter, backend, model = build_segmenter(cfg)
    assert (backend, model, segmenter.name) == ("watershed", None, "watershed")
    assert "cannot load" in caplog.text
    explicit = DaemonConfig.model_validate({"segment": {"backend": "onnxruntime", "model": str(broken)}})
    with pytest.raises(WirewatchError, match=r"broken\.onnx"):
        build_segmenter(explicit)


def test_a_failing_segmenter_or_measurer_costs_one_frame_not_the_daemon() -> None:
    class Flaky:
        name = "flaky"

        def __init__(self) -> None:
            self.inner = WatershedSegmenter()
            self.calls = 0

        def segment(self, image: np.ndarray):  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("GPU fell off the bus")
            return self.inner.segment(image)

    def measurer(det, image, **kw):  # type: ignore[no-untyped-def]
        if kw["frame_id"] == 3:
            raise ZeroDivisionError("odd frame")
        return measure(det, image, **kw)

    sink = ListSink()
    pipe = Pipeline(source=ListSource([encode_array10(i, rods(i)) for i in range(5)]),
                    decoder=make_decoder("array-1.0"), preprocess=PreprocessConfig(), segmenter=Flaky(),
                    measurer=measurer, detector=None, sinks=[sink], metrics=DaemonMetrics(CollectorRegistry()))
    pipe.start()
    assert pipe.join(30) and pipe.error is None
    assert [r.frame_id for r in sink.results] == [0, 2, 4]
    reg = pipe.metrics.registry
    assert reg.get_sample_value("wirewatch_frame_errors_total", {"kind": "segment_failed"}) == 1
    assert reg.get_sample_value("wirewatch_frame_errors_total", {"kind": "measure_failed"}) == 1


EIGER2_CAPTURE = Path(__file__).resolve().parents[2].parent / "shared/data/dectris-stream2/bslz4_16bit/000001.cbor"


@pytest.mark.skipif(not EIGER2_CAPTURE.exists(), reason=f"shared DECTRIS capture not found at {EIGER2_CAPTURE}")
@pytest.mark.parametrize("configured", [None, 12.0])
def test_detector_pixel_size_never_becomes_the_sample_pixel(configured: float | None,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    # A real EIGER2 R 500K image message, after a start message with the detector's own values (the
    # captures hold no start message: its fields here are those of the Stream V2 spec for this detector).
    from wirewatch.ingest import encode_stream2_start
    start = encode_stream2_start(series_id=1, series_unique_id="01GRXWT80JSDY2FNW8SGCCDZD9",
                                 channels=("threshold_1", "threshold_2", "difference"), image_shape=(514, 1030),
                                 image_dtype="uint16", pixel_size_nm=75_000.0, number_of_images=3,
                                 extra={"detector_description": "Dectris EIGER2 R 500K", "sensor_material": "Si"})
    messages = [start, [EIGER2_CAPTURE.read_bytes()]]
    with caplog.at_level(logging.INFO, logger="wirewatch.daemon.pipeline"):
        _, sink, _ = run(messages, "stream2", pixel_size_nm=configured)
    (result,) = sink.results
    nm_stats = sorted(k for k in result.stats.aggregates if "_nm" in k or "um2" in k)
    if configured is None:  # no sample pixel known: no *_nm statistic rather than one 10^4 too large
        assert nm_stats == []
        assert "*_nm statistics are not published" in caplog.text
    else:
        assert nm_stats and "sample pixel size 12 nm, from configuration" in caplog.text
