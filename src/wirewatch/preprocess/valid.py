"""NODATA pixels: a decoder marks them invalid (``Frame.valid``) and ``prepare`` carries the mask
(``Prepared.valid``); detections must never cover them."""

from __future__ import annotations

import numpy as np

from wirewatch.coco import boxes_of
from wirewatch.types import Detections


def restrict_to_valid(det: Detections, valid: np.ndarray | None) -> Detections:
    """Clear NODATA pixels from every mask and drop detections left empty."""
    if valid is None or len(det) == 0:
        return det
    masks = det.masks & valid[None]
    keep = masks.reshape(len(masks), -1).any(axis=1)
    if keep.all() and np.array_equal(masks, det.masks):
        return det
    masks = masks[keep]
    return Detections(boxes=boxes_of(masks), scores=det.scores[keep], masks=masks, image_shape=det.image_shape,
                      mask_scores=None if det.mask_scores is None else det.mask_scores[keep])
