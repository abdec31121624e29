"""Paste low-resolution (M x M: 28, or 56 for the `compact56` variants) mask probabilities into the frame with OpenCV.

The mask head learns targets made by torchvision's ``project_masks_on_boxes``: ``roi_align`` of the
ground-truth mask over the box (``aligned=False``, each bin averaged over ceil(w / M) x ceil(h / M)
points), so cell ``j`` of an M x M grid is the mask around pixel coordinate ``x0 + (j + 0.5) * w / M``
(pixel ``i`` centred at coordinate ``i``; ``w = max(x1 - x0, 1)``), the same down the rows. Pasting
inverts exactly that: each frame pixel near the box reads the grid bilinearly at
``j = (i - x0) * M / w - 0.5`` (one affine warp per detection, zero outside the grid).

torchvision's own ``paste_masks_in_image`` (and this module before 2026-12) instead expands the box by one
padding cell, truncates it to integers and resizes with half-pixel centres: up to a pixel off the
encoding. Ground-truth targets of 15 fresh 512 px frames pasted back: mean mask IoU 0.907 (torchvision's
paste) vs 0.984 (this one); the shipped model's own predictions on 60 fresh frames: mask AP 0.434 vs 0.466.
Only the kept detections are pasted, outside the graph (in-graph pasting cost ~1 s per frame).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np


def paste_window(probs: np.ndarray, box: np.ndarray | tuple[float, float, float, float],
                 image_shape: tuple[int, int]) -> tuple[slice, slice, np.ndarray] | None:
    """One (M, M) grid of probabilities in its x0, y0, x1, y1 box -> (rows, columns, float32 window) of
    the frame that it can reach, or None for a non-finite box or one outside the frame."""
    im_h, im_w = image_shape
    m = probs.shape[-1]
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(map(math.isfinite, (x0, y0, x1, y1))):
        return None
    cell_w = max(x1 - x0, 1.0) / m
    cell_h = max(y1 - y0, 1.0) / m
    # Pixels that can read a non-zero value: cells -1 .. M (bilinear towards the zero border).
    xa, xb = max(math.floor(x0 - cell_w), 0), min(math.ceil(x1 + cell_w) + 1, im_w)
    ya, yb = max(math.floor(y0 - cell_h), 0), min(math.ceil(y1 + cell_h) + 1, im_h)
    if xa >= xb or ya >= yb:
        return None
    # Frame pixel (xa + u, ya + v) -> grid cell ((xa + u - x0) / cell_w - 0.5, (ya + v - y0) / cell_h - 0.5).
    to_grid = np.array([[1.0 / cell_w, 0.0, (xa - x0) / cell_w - 0.5],
                        [0.0, 1.0 / cell_h, (ya - y0) / cell_h - 0.5]])
    window = cv2.warpAffine(np.ascontiguousarray(probs, np.float32), to_grid, (xb - xa, yb - ya),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return slice(ya, yb), slice(xa, xb), window


def paste_masks(mask_probs: np.ndarray, boxes: np.ndarray, image_shape: tuple[int, int],
                threshold: float = 0.5,
                window_mask: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """(N, M, M) probabilities in their (N, 4) x0, y0, x1, y1 boxes -> (N, H, W) bool masks: each pasted
    window cut at ``threshold``, or turned into its mask by ``window_mask`` (e.g. a shape fit)."""
    n = len(mask_probs)
    out = np.zeros((n, *image_shape), bool)
    if n == 0:
        return out
    if mask_probs.ndim != 3 or mask_probs.shape[1] != mask_probs.shape[2] or boxes.shape != (n, 4):
        raise ValueError(f"expected (N, M, M) masks and (N, 4) boxes, got {mask_probs.shape} and {boxes.shape}")
    probs = np.ascontiguousarray(mask_probs, np.float32)
    for i, box in enumerate(np.asarray(boxes, np.float64)):
        pasted = paste_window(probs[i], box, image_shape)
        if pasted is not None:
            rows, cols, window = pasted
            out[i, rows, cols] = window >= threshold if window_mask is None else window_mask(window)
    return out
