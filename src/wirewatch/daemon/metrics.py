"""The daemon's Prometheus metrics, on a private ``CollectorRegistry`` passed in (never the global one).

Names follow docs/CONTRACTS.md. Per-frame statistic gauges carry their unit in the name
(Prometheus base units: metres, ratios, degrees for angles as Grafana shows them).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from wirewatch import __version__

STAGES = ("decode", "preprocess", "segment", "measure", "changepoint", "publish", "total")

# Drop reasons: overflow (policy latest: the raw buffer was full, the oldest frame gave way to a newer one),
# superseded (policy latest: a newer frame was waiting when the segmenter became free), replay (a restarted
# daemon got a frame its record already holds), shutdown (still queued when the shutdown timeout ran out).
DROP_REASONS = ("overflow", "superseded", "replay", "shutdown")

# statistic name -> (metric name, help, factor applied to the value)
STAT_GAUGES: dict[str, tuple[str, str, float]] = {
    "coverage_fraction": ("wirewatch_coverage_ratio", "Fraction of the frame covered by particles.", 1.0),
    "orientation_mean_deg": ("wirewatch_orientation_mean_degrees",
                             "Mean particle orientation, degrees counter-clockwise from +x.", 1.0),
    "orientation_order": ("wirewatch_orientation_order_ratio",
                          "Orientational order S = |mean exp(2i theta)| (0 random, 1 aligned).", 1.0),
    "number_density_per_um2": ("wirewatch_number_density_per_square_meter",
                               "Particles per square metre of specimen (needs a pixel size).", 1e12),
    "length_px_mean": ("wirewatch_particle_length_mean_pixels", "Mean particle length.", 1.0),
    "length_px_median": ("wirewatch_particle_length_median_pixels", "Median particle length.", 1.0),
    "width_px_mean": ("wirewatch_particle_width_mean_pixels", "Mean particle width.", 1.0),
    "width_px_median": ("wirewatch_particle_width_median_pixels", "Median particle width.", 1.0),
    "area_px_mean": ("wirewatch_particle_area_mean_pixels", "Mean particle area (pixel count).", 1.0),
    "aspect_ratio_mean": ("wirewatch_particle_aspect_ratio_mean_ratio", "Mean long/short side ratio.", 1.0),
    "od_mean_mean": ("wirewatch_particle_optical_density_mean_ratio",
                     "Mean optical density over particles (dimensionless).", 1.0),
    "overlap_fraction_mean": ("wirewatch_particle_overlap_mean_ratio",
                              "Mean fraction of a particle's area shared with others.", 1.0),
    "length_nm_mean": ("wirewatch_particle_length_mean_meters", "Mean particle length (needs a pixel size).", 1e-9),
    "width_nm_mean": ("wirewatch_particle_width_mean_meters", "Mean particle width (needs a pixel size).", 1e-9),
    # wirewatch.quality: when to distrust the numbers, and what the instrument did
    "reliability": ("wirewatch_segmentation_reliability_ratio",
                    "Segmentation reliability of the latest frame (0 distrust .. 1 trust).", 1.0),
    "iq_blur_px": ("wirewatch_image_blur_pixels", "Edge blur (Gaussian sigma) of the latest frame.", 1.0),
    "iq_background": ("wirewatch_image_background_level", "Median raw level of the latest frame.", 1.0),
    "iq_shift_px": ("wirewatch_image_shift_pixels", "Translation against the previous frame.", 1.0),
    "iq_wire_width_px": ("wirewatch_image_wire_width_pixels",
                         "Typical wire width, running median of 61 frames (moves with the magnification).", 1.0),
}


class SourceCollector(Collector):
    """Counts kept by the ingest source, read at scrape time: messages received, raw buffer depth."""

    def __init__(self) -> None:
        self.source: Any = None

    def collect(self) -> Iterator[Metric]:
        received, buffered = 0, 0
        if self.source is not None:
            stats = self.source.stats()
            received, buffered = stats.received, stats.buffered
        yield CounterMetricFamily("wirewatch_frames_received", "Messages received from the input (frames "
                                  "and series start/end), before any drop or decoding.", value=received)
        yield GaugeMetricFamily("wirewatch_raw_buffer_messages",
                                "Raw messages waiting between the input socket and the decoder.", value=buffered)


class DaemonMetrics:
    """Every metric the pipeline itself updates."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.info = Info("wirewatch_build", "wirewatch version and the segmenter backend in use.", registry=registry)
        self.info.info({"version": __version__})
        self.source_collector = SourceCollector()
        registry.register(self.source_collector)
        self.frames_processed = Counter("wirewatch_frames_processed_total",
                                        "Frames segmented, measured and published.", registry=registry)
        self.frames_dropped = Counter("wirewatch_frames_dropped_total",
                                      "Frames received but not processed, by reason.", ["reason"],
                                      registry=registry)
        self.frame_errors = Counter("wirewatch_frame_errors_total",
                                    "Messages or frames rejected as malformed or unusable, by kind.", ["kind"],
                                    registry=registry)
        self.stage_latency = Histogram(
            "wirewatch_stage_latency_seconds", "Time spent in each pipeline stage per frame; total is "
            "from receipt to publication.", ["stage"], registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.particle_count = Gauge("wirewatch_particle_count", "Particles found in the latest frame.",
                                    registry=registry)
        self.last_frame_id = Gauge("wirewatch_last_frame_id", "Id of the latest processed frame.",
                                   registry=registry)
        self.last_frame_time = Gauge("wirewatch_last_frame_timestamp_seconds",
                                     "Acquisition time (Unix) of the latest processed frame.", registry=registry)
        self.queue_depth = Gauge("wirewatch_queue_depth", "Items waiting in each pipeline queue.", ["queue"],
                                 registry=registry)
        self.series_total = Counter("wirewatch_series_total", "Acquisition series started.", registry=registry)
        self.record_errors = Counter("wirewatch_record_write_errors_total",
                                     "Failed writes to the record file (lines wait in a backlog).",
                                     registry=registry)
        self.record_backlog = Gauge("wirewatch_record_backlog_lines",
                                    "Record lines waiting to be written (disk full or failing).",
                                    registry=registry)
        self.stat_gauges = {name: (Gauge(metric, help_, registry=registry), factor)
                            for name, (metric, help_, factor) in STAT_GAUGES.items()}
        for reason in DROP_REASONS:  # expose zeros so dashboards and rate() see every series from the start
            self.frames_dropped.labels(reason=reason)
        for stage in STAGES:
            self.stage_latency.labels(stage=stage)

    def set_backend(self, backend: str, model: str | None) -> None:
        self.info.info({"version": __version__, "backend": backend, "model": model or ""})

    def observe_stats(self, aggregates: Mapping[str, float]) -> None:
        """Set the per-frame gauges; an undefined statistic (NaN, absent) shows as NaN."""
        count = aggregates.get("particle_count", math.nan)
        self.particle_count.set(float(count) if count is not None else math.nan)
        for name, (gauge, factor) in self.stat_gauges.items():
            value = aggregates.get(name)
            gauge.set(float(value) * factor if value is not None else math.nan)
