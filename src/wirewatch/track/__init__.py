"""Particles followed from frame to frame: track ids, births, deaths, growth rates (``docs/stats.md``)."""

from wirewatch.track.config import TrackConfig
from wirewatch.track.stage import TrackingMeasurer, attach_tracking
from wirewatch.track.tracker import Tracker, TrackUpdate

__all__ = ["TrackConfig", "TrackUpdate", "Tracker", "TrackingMeasurer", "attach_tracking"]
