"""``WebConfig``: limits and rates of the web view (``http.web`` in the daemon config, flags of ``wirewatch serve``)."""

from __future__ import annotations

from pydantic import Field

from wirewatch.config.base import StrictModel


class WebConfig(StrictModel):
    enabled: bool = True
    max_upload_bytes: int = Field(default=32 * 1024 * 1024, ge=1)  # larger uploads: 413 before reading
    max_image_pixels: int = Field(default=40_000_000, ge=1)  # decompression-bomb guard (from the header)
    max_concurrent_segmentations: int = Field(default=1, ge=1)  # uploads segmented at once (CPU guard)
    max_pending_uploads: int = Field(default=4, ge=1)  # uploads in flight; more get 503
    score_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    overlay_interval_s: float = Field(default=1.0, ge=0.0)  # at most one live overlay per interval
    push_interval_s: float = Field(default=0.5, ge=0.0)  # a page's events are written in batches this often
    overlay_max_side: int = Field(default=512, ge=16)  # live overlays are subsampled to this size
    history: int = Field(default=5000, ge=10)  # records kept for /api/series and the sparklines
    client_queue: int = Field(default=64, ge=1)  # events buffered per browser before it is dropped
    max_clients: int = Field(default=16, ge=1)  # concurrent live pages (SSE connections)
    write_timeout_s: float = Field(default=10.0, gt=0)  # a stuck browser's socket write gives up after this
