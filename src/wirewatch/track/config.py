"""``TrackConfig``: the ``track`` section (particles followed from frame to frame)."""

from __future__ import annotations

from pydantic import Field

from wirewatch.config.base import StrictModel


class TrackConfig(StrictModel):
    """Frame-to-frame association of particles (``docs/stats.md``, "Tracking")."""

    enabled: bool = False
    max_gap_frames: int = Field(default=2, ge=0, le=100, description="frames a track may go unseen and still "
                                "be continued (a missed detection); a track unseen longer has died")
    min_iou: float = Field(default=0.05, ge=0, le=1, description="least mask overlap for a match by IoU")
    max_distance_px: float = Field(default=12.0, gt=0, description="a match without overlap needs the centroids "
                                   "(after drift compensation) this close")
    distance_weight: float = Field(default=0.5, ge=0, description="cost = (1 - IoU) + weight x distance / "
                                   "max_distance_px + gap_penalty x frames missed")
    gap_penalty: float = Field(default=0.1, ge=0)
    drift: bool = Field(default=True, description="compensate stage drift by phase correlation of consecutive frames")
    drift_refine: bool = Field(default=False, description="refine the drift at full resolution (~0.1-0.2 px "
                               "instead of ~0.7 px at 512 px; about 0.5 ms more per frame)")
    max_drift_px: float = Field(default=64.0, gt=0, description="a larger frame-to-frame shift is not trusted (0 used)")
    grid: int = Field(default=3, ge=1, le=8, description="masks are compared on every grid-th pixel in x and y "
                      "(3: a ninth of the pixels, every 3rd row read; a wire 3 px wide still hits a cell "
                      "in every sampled row; 2 reads half the rows and costs ~0.5 ms more per frame)")
