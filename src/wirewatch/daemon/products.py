"""Attach the run's data products to a built pipeline: particle tables (``record.particles_dir``) and the
Tiled catalog (``publish.tiled``). Both are ``ResultSink``s (closed with the other sinks, after the last
frame) that take each frame as listeners, once the frame carries every sink's alerts."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from wirewatch.config.daemon import DaemonConfig

from .pipeline import Pipeline

log = logging.getLogger(__name__)


def config_hash(config: DaemonConfig) -> str:
    """sha256 of the effective config (JSON, keys sorted): names the settings a run was made with."""
    return hashlib.sha256(config.model_dump_json(round_trip=True).encode()).hexdigest()


def run_metadata(config: DaemonConfig, backend: str, model: str | None) -> dict[str, Any]:
    return {"backend": backend, "model": model, "config_sha256": config_hash(config),
            "record": str(config.record.path) if config.record.path is not None else None,
            "input": config.ingest.endpoint, "format": config.ingest.format, "policy": config.ingest.policy}


def attach_products(pipeline: Pipeline, config: DaemonConfig, *, registry: Any, backend: str,
                    model: str | None) -> list[Any]:
    """Build and attach what the config asks for; returns the attached sinks (nothing when none asked).
    Raises ``ConfigError`` when an optional extra is missing (naming it)."""
    attached: list[Any] = []
    meta = run_metadata(config, backend, model)
    rec = config.record
    tiled = getattr(getattr(config, "publish", None), "tiled", None)
    try:
        if rec.particles_dir is not None:
            from wirewatch.publish.particles import ParticleWriter
            from wirewatch.publish.products import ProductSink, registry_counters

            writer = ParticleWriter(rec.particles_dir, masks=rec.particle_masks, roll_frames=rec.particles_roll_frames,
                                    roll_s=rec.particles_roll_s)
            attached.append(ProductSink(writer, metadata=meta, counters=registry_counters(registry)))
        if tiled is not None:
            from wirewatch.publish.tiled import TiledSink

            attached.append(TiledSink(tiled, masks=rec.particle_masks, metadata=meta, registry=registry))
    except BaseException:
        for sink in attached:
            sink.close()
        raise
    for sink in attached:
        pipeline.sinks.append(sink)
        pipeline.listeners.append(sink.observe)
    return attached
