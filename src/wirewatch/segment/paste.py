"""Paste low-resolution (28 x 28) mask probabilities into the frame with numpy/OpenCV.

This reproduces torchvision's ``paste_masks_in_image`` (1-pixel zero padding, box
expanded by the same factor, integer box, bilinear resize with half-pixel centres)
so that the ONNX runtime gives the same masks as PyTorch, but only for the
detections that are kept, and without putting the per-detection loop in the graph.
"""

from __future__ import annotations

import cv2
import numpy as np


def paste_masks(mask_probs: np.ndarray, boxes: np.ndarray, image_shape: tuple[int, int],
                threshold: float = 0.5, padding: int = 1) -> np.ndarray:
    """(N, M, M) probabilities in their (N, 4) x0, y0, x1, y1 boxes -> (N, H, W) bool masks."""
    n = len(mask_probs)
    im_h, im_w = image_shape
    out = np.zeros((n, im_h, im_w), bool)
    if n == 0:
        return out
    if mask_probs.ndim != 3 or mask_probs.shape[1] != mask_probs.shape[2] or boxes.shape != (n, 4):
        raise ValueError(f"expected (N, M, M) masks and (N, 4) boxes, got {mask_probs.shape} and {boxes.shape}")
    m = mask_probs.shape[-1]
    scale = (m + 2 * padding) / m
    padded = np.pad(mask_probs.astype(np.float32), ((0, 0), (padding, padding), (padding, padding)))
    boxes = boxes.astype(np.float32)
    half_w = (boxes[:, 2] - boxes[:, 0]) * np.float32(0.5 * scale)
    half_h = (boxes[:, 3] - boxes[:, 1]) * np.float32(0.5 * scale)
    cx = (boxes[:, 2] + boxes[:, 0]) * np.float32(0.5)
    cy = (boxes[:, 3] + boxes[:, 1]) * np.float32(0.5)
    # float -> int64 truncates toward zero, as torch's .to(torch.int64) does.
    expanded = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1).astype(np.int64)
    for i, (x0, y0, x1, y1) in enumerate(expanded.tolist()):
        w = max(x1 - x0 + 1, 1)
        h = max(y1 - y0 + 1, 1)
        xa, xb = max(x0, 0), min(x1 + 1, im_w)
        ya, yb = max(y0, 0), min(y1 + 1, im_h)
        if xa >= xb or ya >= yb:
            continue
        # cv2 INTER_LINEAR == torch bilinear with align_corners=False (half-pixel centres, no antialias).
        resized = cv2.resize(padded[i], (w, h), interpolation=cv2.INTER_LINEAR)
        out[i, ya:yb, xa:xb] = resized[ya - y0:yb - y0, xa - x0:xb - x0] >= threshold
    return out
