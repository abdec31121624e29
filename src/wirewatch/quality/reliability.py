"""A per-frame segmentation reliability score (0-1) from signals the model cannot fake.

When the model stops seeing the wires (a contrast or magnification it never learnt), the statistics
shift and change-point detection would call it a change of the sample. This score says when not to
trust them. It multiplies four terms, each 0-1, each computed without the model's help or from the
model's own doubt:

- ``agreement``: Dice overlap between the union of the masks and a model-free foreground (the levelled
  frame thresholded by Otsu, wires bright whichever their polarity: the same estimate ``scale: auto``
  uses). A model that misses most wires, or paints the background, disagrees with the threshold.
- ``confidence``: the median mask score of the detections (the detector's own doubt).
- ``wholeness``: 1 minus the share of fragment-sized masks (area below ``FRAGMENT_WIDTHS`` squared
  widths): a model that breaks wires into pieces (STXM frames) produces many.
- ``plausibility``: 1 while the model-free wire width is inside what the model can see (its trained
  width range stretched by the run-time scale factors), falling off by the log ratio outside.

Written here: it is a handful of array operations over what the pipeline already holds; no library
scores "how believable is this instance segmentation". Its figures (AUROC against per-frame mask AP)
are in docs/stats.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from wirewatch.types import Detections

FRAGMENT_WIDTHS = 2.0  # a mask smaller than (2 x width) x width is a fragment, not a wire
EMPTY_PIXELS = 50  # below this many foreground pixels in both estimates the frame is "empty": agreement 1
ESTIMATE_SIDE = 512  # the model-free foreground is computed on a frame of at most this many pixels a side


@dataclass(frozen=True)
class Reliability:
    score: float
    agreement: float
    confidence: float
    wholeness: float
    plausibility: float
    width_px: float  # the model-free typical wire width (NaN when no wires were seen)

    def as_aggregates(self) -> dict[str, float]:
        return {"reliability": self.score, "reliability_agreement": self.agreement,
                "reliability_confidence": self.confidence, "reliability_wholeness": self.wholeness,
                "wire_width_px_estimate": self.width_px}


def model_free_foreground(image: np.ndarray) -> tuple[np.ndarray, float]:
    """(foreground bool mask in the frame's pixels, typical wire width in px) of a 0..1 frame."""
    from wirewatch.segment.scale import polarity_levelled

    img = np.asarray(image, np.float32)
    h, w = img.shape
    k = max(1, math.ceil(max(h, w) / ESTIMATE_SIDE))
    small = img if k == 1 else cv2.resize(img, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
    radius = max(8, min(small.shape) // 8)
    levelled = cv2.GaussianBlur(polarity_levelled(small, radius), (0, 0), 1.0)
    lo, hi = float(levelled.min()), float(levelled.max())
    if not hi > lo:
        return np.zeros((h, w), bool), math.nan
    grey = np.clip((levelled - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    _, fg = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    width = _ridge_width(fg) * k
    if k > 1:
        fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_NEAREST)
    return fg > 0, width


def _ridge_width(fg: np.ndarray) -> float:
    """Typical width (px) of the foreground's stripes: twice the distance transform on their mid-lines.

    Cruder than ``segment.scale.estimate_wire_width`` (which ``scale: auto`` relies on), but it reuses the
    foreground computed here: the reliability terms only need the width to within ~20 %."""
    dist = cv2.distanceTransform(fg, cv2.DIST_L2, 5)
    ridge = (dist >= 1.0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)))
    values = dist[ridge]
    if values.size < 20:
        return math.nan
    return max(1.0, 2.0 * float(np.median(values)) - 1.0)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = int(np.count_nonzero(a)), int(np.count_nonzero(b))
    if na < EMPTY_PIXELS and nb < EMPTY_PIXELS:
        return 1.0
    return 2.0 * int(np.count_nonzero(a & b)) / (na + nb)


def _plausibility(width_px: float, covered: tuple[float, float]) -> float:
    if not math.isfinite(width_px) or width_px <= 0:
        return 1.0  # no wires seen: the agreement term already speaks for this frame
    lo, hi = covered
    if width_px < lo:
        return max(0.0, 1.0 - math.log(lo / width_px))
    if width_px > hi:
        return max(0.0, 1.0 - math.log(width_px / hi))
    return 1.0


def score_frame(image: np.ndarray, detections: Detections, *,
                covered_width_px: tuple[float, float] = (1.5, 60.0)) -> Reliability:
    """The reliability of ``detections`` on the 0..1 frame ``image`` they were found on."""
    fg, width = model_free_foreground(image)
    masks = detections.masks
    union: np.ndarray = np.asarray(masks.any(axis=0)) if len(masks) else np.zeros(fg.shape, bool)
    agreement = _dice(union, fg)
    if len(masks):
        scores = detections.mask_scores if detections.mask_scores is not None else detections.scores
        confidence = float(np.clip(np.median(scores), 0.0, 1.0))
        areas = masks.reshape(len(masks), -1).sum(axis=1)
        w = width if math.isfinite(width) else 3.0
        wholeness = 1.0 - float(np.mean(areas < FRAGMENT_WIDTHS * w * w))
    else:
        confidence = wholeness = 1.0 if agreement == 1.0 else 0.0
    plausibility = _plausibility(width, covered_width_px)
    score = agreement * math.sqrt(confidence) * wholeness * plausibility
    return Reliability(float(np.clip(score, 0.0, 1.0)), agreement, confidence, wholeness, plausibility, width)
