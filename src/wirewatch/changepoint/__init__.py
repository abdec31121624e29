"""Streaming change-point detection on per-frame particle statistics.

``build_detector(config) -> StreamingDetector``; feed it with
``update(frame_id, stats) -> list[ChangePoint]`` and ``reset()`` at series
boundaries. ``offline.detect_record`` runs the same detector over a record file;
``evaluate`` scores it against known change points.
"""

from wirewatch.changepoint.config import ChangepointConfig
from wirewatch.changepoint.streaming import StreamingDetector, build_detector

__all__ = ["ChangepointConfig", "StreamingDetector", "build_detector"]
