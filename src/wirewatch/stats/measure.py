"""``measure``: instance masks of one frame -> ``FrameStats`` (particle table + aggregates)."""

from __future__ import annotations

import numpy as np

from wirewatch.stats.aggregates import frame_aggregates
from wirewatch.stats.descriptors import check_pixel_size, particle_descriptors
from wirewatch.types import Detections, FrameStats


def measure(masks: np.ndarray | Detections, image: np.ndarray | None = None, *,
            pixel_size_nm: float | None = None, frame_id: int = 0, time: float = 0.0) -> FrameStats:
    """Measure every particle of one frame.

    ``masks``: a ``Detections`` (its ``masks`` are used) or an (N, H, W) bool stack of instance
    masks, overlaps allowed. ``image``: the frame (H, W), optional, for the optical-density
    columns. ``pixel_size_nm``: nanometres per pixel, optional, for the physical-unit columns
    and the number density. Empty masks are skipped with a warning and counted in the aggregate
    ``empty_masks_skipped``; ``particles['mask_index']`` maps rows back to the input masks.
    """
    stack = masks.masks if isinstance(masks, Detections) else masks
    pixel_size_nm = check_pixel_size(pixel_size_nm)
    table = particle_descriptors(stack, image, pixel_size_nm)
    return FrameStats(frame_id=frame_id, time=time, aggregates=frame_aggregates(table, pixel_size_nm),
                      particles=table.columns)


def masks_from_labels(labels: np.ndarray) -> np.ndarray:
    """(H, W) integer label image (0 = background) -> (N, H, W) bool stack, one mask per label present."""
    labels = np.asarray(labels)
    ids = np.unique(labels)
    ids = ids[ids != 0]
    return labels[None, :, :] == ids[:, None, None]
