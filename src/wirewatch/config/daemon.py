"""``DaemonConfig``: the daemon's whole configuration, composed of each part's own section.

::

    ingest:      wirewatch.ingest.IngestConfig        (source, format, policy, limits)
    preprocess:  wirewatch.preprocess.PreprocessConfig (OD, normalisation, resize/tile)
    segment:     SegmentConfig                         (backend, model, backend options)
    measure:     MeasureConfig                         (pixel size fallback)
    changepoint: wirewatch.changepoint.config.ChangepointConfig
    alerts:      wirewatch.publish.config.AlertsConfig (rules, alert sinks, rate limit)
    record:      wirewatch.publish.record.RecordConfig (JSON Lines record, Parquet particle tables)
    publish:     wirewatch.publish.config.PublishConfig (ZeroMQ PUB of stats, change points, alerts; Tiled)
    http:        wirewatch.web.config.HttpConfig       (/metrics, /healthz, /readyz, the web view)
    pipeline:    PipelineConfig                        (queues, shutdown, error logging)

Load with ``load_daemon_config(path, overrides=...)``: file <- ``WIREWATCH_<SECTION>__<KEY>``
environment variables <- explicit overrides (the ``wirewatch run`` flags). Renamed keys
(``DaemonConfig.RENAMED_KEYS``) still work, with a DeprecationWarning naming the new key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from wirewatch.changepoint.config import ChangepointConfig
from wirewatch.config.base import StrictModel, load_config, rename_keys, shipped_dir
from wirewatch.epics.config import EpicsConfig
from wirewatch.ingest.config import IngestConfig
from wirewatch.preprocess.config import PreprocessConfig
from wirewatch.publish.config import AlertsConfig, PublishConfig
from wirewatch.publish.record import RecordConfig
from wirewatch.quality.monitor import QualityConfig
from wirewatch.segment import BACKENDS
from wirewatch.track.config import TrackConfig
from wirewatch.web.config import HttpConfig


class SegmentConfig(StrictModel):
    """``backend: auto`` = onnxruntime with the shipped default model when it is installed, else the
    watershed baseline (with a warning). ``model``: a path or a shipped model name (``default``)."""

    backend: str = "auto"  # or a name in wirewatch.segment.BACKENDS (ray: Ray Serve replicas, docs/deploy.md)
    model: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)  # backend keyword options (e.g. score_threshold)
    max_detections: int = Field(default=300, ge=1)  # best-scoring kept per frame (bounds mask memory)

    @field_validator("backend")
    @classmethod
    def _registered_backend(cls, value: str) -> str:
        # the allowed names come from the segment registry: a new engine is one line there, not one here too
        allowed = ["auto", *sorted(BACKENDS)]
        if value not in allowed:
            raise PydanticCustomError("segment_backend", "not a segmenter backend; allowed: {allowed}",
                                      {"allowed": ", ".join(allowed)})
        return value


class MeasureConfig(StrictModel):
    pixel_size_nm: float | None = Field(default=None, gt=0)  # used when frames carry none


class PipelineConfig(StrictModel):
    queue_size: int = Field(default=2, ge=1, le=1024)  # between segment -> measure -> publish (each item holds N x H x W masks)
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    error_log_interval_s: float = Field(default=10.0, ge=0)  # one log line per error kind per interval
    poll_interval_s: float = Field(default=0.1, gt=0)


class DaemonConfig(StrictModel):
    ingest: IngestConfig = Field(default_factory=lambda: IngestConfig.model_validate({}))
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    measure: MeasureConfig = Field(default_factory=MeasureConfig)
    changepoint: ChangepointConfig = Field(default_factory=ChangepointConfig)
    alerts: AlertsConfig = Field(default_factory=lambda: AlertsConfig.model_validate({}))
    record: RecordConfig = Field(default_factory=RecordConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    epics: EpicsConfig = Field(default_factory=lambda: EpicsConfig.model_validate({}))  # PV Access (docs/epics.md)
    quality: QualityConfig = Field(default_factory=QualityConfig)  # reliability, image quality (docs/stats.md)
    publish: PublishConfig = Field(default_factory=PublishConfig)  # ZeroMQ stream, Tiled catalog (docs/products.md)
    track: TrackConfig = Field(default_factory=TrackConfig)  # particles followed across frames (docs/stats.md)

    # old key -> new key: the old one still works (moved, with a DeprecationWarning naming the new one)
    RENAMED_KEYS: ClassVar[dict[str, str]] = {
        "alerts.zmq": "publish.zmq",  # the ZeroMQ stream of stats and change points is no alert sink
    }

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        """Old keys in a config given as one mapping (``load_daemon_config`` already moved them per layer)."""
        return rename_keys(data, cls.RENAMED_KEYS) if isinstance(data, Mapping) else data


def load_daemon_config(path: str | Path | None = None, *, overrides: Mapping[str, Any] | None = None,
                       environ: Mapping[str, str] | None = None) -> DaemonConfig:
    """The validated config: ``path`` (optional YAML) <- environment <- ``overrides``."""
    return load_config(DaemonConfig, path, overrides=overrides, environ=environ)


def shipped_config_path() -> Path:
    """The shipped daemon config, ``default.yaml``, from the package's data.

    ``wirewatch/config/shipped`` links to the repository's ``config/`` and is package data, so the same
    file is found from a checkout, an editable install and an installed wheel (not ``parents[3]``,
    which pointed outside an installed package and silently lost the defaults).
    """
    return shipped_dir() / "default.yaml"

