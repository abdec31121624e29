"""Tracking attached to the daemon's measure stage: ``TrackingMeasurer`` wraps the measurer.

The pipeline calls its measurer with ``(detections, signal, pixel_size_nm=, frame_id=, time=)``
and hands the ``FrameStats`` on to the change detector, the record and every sink. Wrapping it
(``attach_tracking``) adds the per-particle ``track_id`` column and the per-frame tracking
statistics there, so everything downstream (the record, the Parquet particle tables, change
points on ``births``) sees them without the pipeline knowing about tracking. ``reset()`` is called
by the pipeline at a series start; frame ids going backwards also start afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from wirewatch.types import Detections, FrameStats

from .config import TrackConfig
from .tracker import Tracker

log = logging.getLogger(__name__)


class TrackingMeasurer:
    def __init__(self, measurer: Callable[..., FrameStats], config: TrackConfig) -> None:
        self.inner = measurer
        self.tracker = Tracker(config)
        self._last_frame: int | None = None

    def reset(self) -> None:
        self.tracker.reset()
        self._last_frame = None

    def __call__(self, detections: Detections | np.ndarray, image: np.ndarray | None = None, **kw: Any) -> FrameStats:
        stats = self.inner(detections, image, **kw)
        if self._last_frame is not None and stats.frame_id <= self._last_frame:
            self.tracker.reset()  # a new series without a start message
        self._last_frame = stats.frame_id
        masks = detections.masks if isinstance(detections, Detections) else np.asarray(detections)
        update = self.tracker.update(masks, stats.particles, image=image, time=stats.time)
        particles = dict(stats.particles)
        particles["track_id"] = update.track_ids
        return FrameStats(frame_id=stats.frame_id, time=stats.time,
                          aggregates={**stats.aggregates, **update.aggregates}, particles=particles)


def attach_tracking(pipeline: Any, config: TrackConfig) -> TrackingMeasurer | None:
    """Wrap ``pipeline.measurer`` when ``track.enabled`` (the daemon builder calls this)."""
    if not config.enabled:
        return None
    wrapped = TrackingMeasurer(pipeline.measurer, config)
    pipeline.measurer = wrapped
    log.info("tracking on: particles get track ids (gap %d frames, drift %s)", config.max_gap_frames,
             "compensated" if config.drift else "ignored")
    return wrapped
