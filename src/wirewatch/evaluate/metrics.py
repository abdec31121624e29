"""Pixel-level segmentation accuracy (the paper's Eq. 3) and statistics agreement (KS, Wasserstein)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

AGREEMENT_DESCRIPTORS: tuple[str, ...] = ("area_px", "length_px", "width_px", "aspect_ratio", "orientation_deg")


@dataclass(frozen=True)
class PixelCounts:
    """Foreground pixel counts of a prediction against ground truth (background pixels not counted)."""

    tp: int
    fp: int
    fn: int

    @property
    def accuracy(self) -> float:
        """TP / (TP + FP + FN); NaN when neither side has any foreground."""
        total = self.tp + self.fp + self.fn
        return self.tp / total if total else math.nan

    def __add__(self, other: PixelCounts) -> PixelCounts:
        return PixelCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def greedy_pairs(iou: np.ndarray, min_iou: float) -> list[tuple[int, int, float]]:
    """One-to-one (row, column, IoU) pairs of an IoU matrix, best pair first, each at least ``min_iou``."""
    pairs: list[tuple[int, int, float]] = []
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):  # stable: ties go to the first row, then column
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < min_iou:
            break
        if i not in used_rows and j not in used_cols:
            pairs.append((i, j, float(iou[i, j])))
            used_rows.add(i)
            used_cols.add(j)
    return pairs


def pixel_counts(pred: np.ndarray, gt: np.ndarray) -> PixelCounts:
    """Counts from two 2-D foreground masks of the same shape."""
    pred = np.asarray(pred, bool)
    gt = np.asarray(gt, bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} shapes differ")
    tp = int(np.count_nonzero(pred & gt))
    return PixelCounts(tp=tp, fp=int(np.count_nonzero(pred)) - tp, fn=int(np.count_nonzero(gt)) - tp)


def distribution_agreement(pred: Mapping[str, np.ndarray], gt: Mapping[str, np.ndarray],
                           descriptors: Sequence[str] = AGREEMENT_DESCRIPTORS) -> dict[str, float]:
    """``stats.<D>.ks`` (two-sample Kolmogorov-Smirnov statistic) and ``stats.<D>.wasserstein``.

    NaN when either side has no finite value. Orientation is compared on the line [0, 180)
    like the paper's histograms (no wrap-around).
    """
    from scipy.stats import ks_2samp, wasserstein_distance

    out: dict[str, float] = {}
    for d in descriptors:
        a = np.asarray(pred.get(d, np.zeros(0)), np.float64)
        b = np.asarray(gt.get(d, np.zeros(0)), np.float64)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if a.size == 0 or b.size == 0:
            out[f"stats.{d}.ks"] = math.nan
            out[f"stats.{d}.wasserstein"] = math.nan
            continue
        out[f"stats.{d}.ks"] = float(ks_2samp(a, b).statistic)
        out[f"stats.{d}.wasserstein"] = float(wasserstein_distance(a, b))
    return out
