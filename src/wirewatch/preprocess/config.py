"""Settings of the preprocessing stage (the ``preprocess`` section of the daemon config)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from wirewatch.config.base import StrictModel


class PreprocessConfig(StrictModel):
    """How a decoded frame becomes the segmenter's input (float32 0..1, bright wires on dark).

    ``signal``: what the pixel values are; ``auto`` trusts the frame header (``Frame.signal``).
    Transmission becomes optical density OD = -ln(I / I0) with I0 from the header (``i0`` in the
    frame's metadata), else ``i0`` here, else a background estimate (the ``i0_percentile`` of the
    valid pixels: the brightest pixels of a transmission image are the empty beam).
    ``normalise``: ``auto`` maps 8-bit images by /255 (the synthetic training convention) and
    anything else by percentiles; ``dtype`` divides by the dtype's maximum; ``fixed`` divides
    by ``scale``; ``percentile`` maps [p_low, p_high] of the valid pixels to [0, 1].
    Frames with a side longer than ``max_side`` are resized (``fit: resize``) or cut into
    overlapping tiles (``fit: tile``) for the segmenter; detections come back in frame coordinates.
    """

    signal: Literal["auto", "transmission", "optical_density", "intensity"] = "auto"
    i0: float | None = Field(default=None, gt=0)
    i0_percentile: float = Field(default=99.5, gt=0, le=100)
    normalise: Literal["auto", "dtype", "fixed", "percentile"] = "auto"
    scale: float = Field(default=1.0, gt=0)
    percentile_low: float = Field(default=1.0, ge=0, lt=100)
    percentile_high: float = Field(default=99.9, gt=0, le=100)
    invert: bool = False  # dark wires on a bright background (e.g. bright-field intensity)
    max_side: int | None = Field(default=1024, ge=32)
    fit: Literal["resize", "tile"] = "resize"
    tile_size: int = Field(default=512, ge=32)
    tile_overlap: int = Field(default=64, ge=0)
    merge_overlap: float = Field(default=0.5, gt=0, le=1)  # intersection / smaller area that merges two tile detections

    @model_validator(mode="after")
    def _check(self) -> PreprocessConfig:
        if self.percentile_high <= self.percentile_low:
            raise ValueError(f"percentile_high ({self.percentile_high}) must exceed "
                             f"percentile_low ({self.percentile_low})")
        if self.tile_overlap >= self.tile_size // 2:
            raise ValueError(f"tile_overlap ({self.tile_overlap}) must be less than half of tile_size "
                             f"({self.tile_size})")
        return self
