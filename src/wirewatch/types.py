"""The frozen dataclasses that stages pass to each other.

Stages share only these types: a decoder yields ``Frame`` (and series
boundaries), a segmenter turns an image into ``Detections``, the measurer
turns those into ``FrameStats``, change detectors emit ``ChangePoint`` and the
alert rules emit ``Alert``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Signal = Literal["transmission", "optical_density", "intensity"]
Severity = Literal["info", "warning", "critical"]
ChangeKind = Literal["level", "slope", "variance"]
Attribution = Literal["sample", "instrument"]


@dataclass(frozen=True)
class Frame:
    """One decoded detector image.

    ``image`` is 2-D (height, width) in the detector's dtype. ``valid`` marks
    pixels that carry data (False for NODATA / masked pixels); None means all
    valid. ``time`` is the acquisition time (Unix seconds) when the source
    sent one, else the receive time.
    """

    frame_id: int
    image: np.ndarray
    time: float
    series_id: str | None = None
    pixel_size_nm: float | None = None
    modality: str | None = None
    signal: Signal = "intensity"
    valid: np.ndarray | None = None
    received_at: float = 0.0
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SeriesStart:
    """A series begins (DECTRIS start message, or a frame id going backwards)."""

    series_id: str | None
    time: float
    pixel_size_nm: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SeriesEnd:
    """A series ended; change detectors reset after it."""

    series_id: str | None
    time: float


StreamEvent = Frame | SeriesStart | SeriesEnd


@dataclass(frozen=True)
class Detections:
    """Instances found in one image, in that image's pixel coordinates.

    ``boxes`` (N, 4) float32 as x0, y0, x1, y1; ``scores`` (N,) float32, the detector's
    confidence (thresholds and particle counts use it); ``masks`` (N, H, W) bool full-frame
    masks, H x W = ``image_shape``; ``mask_scores`` (N,) float32 or None, the confidence that
    the mask itself is right (model backends: score x mask "maskness", see
    ``wirewatch.segment.maskness``); it ranks masks for mask AP. None means "same as ``scores``".
    """

    boxes: np.ndarray
    scores: np.ndarray
    masks: np.ndarray
    image_shape: tuple[int, int]
    mask_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.boxes.shape != (n, 4):
            raise ValueError(f"boxes must have shape ({n}, 4), got {self.boxes.shape}")
        if self.masks.shape != (n, *self.image_shape):
            raise ValueError(f"masks must have shape ({n}, {self.image_shape[0]}, {self.image_shape[1]}), "
                             f"got {self.masks.shape}")
        if self.mask_scores is not None and self.mask_scores.shape != (n,):
            raise ValueError(f"mask_scores must have shape ({n},), got {self.mask_scores.shape}")

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def mask_confidence(self) -> np.ndarray:
        """``mask_scores`` where the backend gives them, else ``scores``: what ranks the masks."""
        return self.scores if self.mask_scores is None else self.mask_scores

    def select(self, keep: np.ndarray) -> Detections:
        """The detections at ``keep`` (indices or a boolean mask), every per-detection array alike."""
        return Detections(boxes=self.boxes[keep], scores=self.scores[keep], masks=self.masks[keep],
                          image_shape=self.image_shape,
                          mask_scores=None if self.mask_scores is None else self.mask_scores[keep])

    @classmethod
    def empty(cls, image_shape: tuple[int, int]) -> Detections:
        h, w = image_shape
        return cls(boxes=np.zeros((0, 4), np.float32), scores=np.zeros((0,), np.float32),
                   masks=np.zeros((0, h, w), bool), image_shape=(h, w))


# Column order of the per-particle table (docs/CONTRACTS.md "Statistic names"), plus ``mask_index``:
# the row's index in the input masks (empty masks are skipped, so rows and masks can differ). Here because
# the measurer (``wirewatch.stats``) writes these columns and the publishers (``wirewatch.publish``) store them.
PARTICLE_COLUMNS: tuple[str, ...] = (
    "mask_index", "area_px", "area_nm2", "length_px", "width_px", "length_nm", "width_nm",
    "aspect_ratio", "orientation_deg", "centroid_x", "centroid_y", "bbox_x0", "bbox_y0", "bbox_x1",
    "bbox_y1", "od_mean", "od_integrated", "overlap_fraction", "touches_border",
)


@dataclass(frozen=True)
class FrameStats:
    """Measurements of one frame.

    ``aggregates`` maps statistic name (e.g. ``particle_count``,
    ``length_px_mean``) to a number; NaN when undefined (no particles).
    ``particles`` maps column name to a 1-D array, one entry per particle.
    """

    frame_id: int
    time: float
    aggregates: Mapping[str, float]
    particles: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ChangePoint:
    """A detected change in one or more per-frame statistics."""

    frame: int
    detected_at: int
    statistics: tuple[str, ...]
    before: Mapping[str, float]
    after: Mapping[str, float]
    effect_size: float
    detector: str
    severity: Severity = "warning"
    kind: ChangeKind = "level"  # what changed, against a local line: level, slope or noise variance
    penalty: float = math.nan  # decision threshold in use when it was reported (see docs/changepoint.md)
    # "instrument" when the image-quality measures changed at the same time (refocus, beam, magnification),
    # else "sample"; suspect: the segmentation was unreliable then (wirewatch.quality, docs/stats.md)
    attribution: Attribution = "sample"
    suspect: bool = False


@dataclass(frozen=True)
class Alert:
    """An alert raised (``state='firing'``) or cleared (``'resolved'``) by a rule."""

    name: str
    state: Literal["firing", "resolved"]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float | None = None
    frame: int | None = None

    @property
    def fingerprint(self) -> str:
        """Stable identity of the alert across firing/resolved: name plus sorted labels."""
        parts = [self.name, *(f"{k}={v}" for k, v in sorted(self.labels.items()))]
        return "|".join(parts)
