"""Moved to ``wirewatch.publish.tiled``: the Tiled catalog is a result sink of the pipeline, not an alert sink
(this package holds the alert sinks only). Kept so existing imports keep working."""

from wirewatch.publish.tiled import EXTRA, PublishConfig, TiledConfig, TiledSink, require_tiled

__all__ = ["EXTRA", "PublishConfig", "TiledConfig", "TiledSink", "require_tiled"]
