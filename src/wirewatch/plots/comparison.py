"""Semantic comparison of predicted and ground-truth foreground, coloured as the paper's figures.

True positive pixels (in both) are blue, false positives (predicted only) green, false negatives
(ground truth only) red, background black.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wirewatch.plots.figure import new_figure, save_figure

TP_COLOUR = (40, 90, 255)
FP_COLOUR = (30, 200, 60)
FN_COLOUR = (235, 40, 40)


def foreground(masks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Union of an (N, H, W) mask stack, or a 2-D mask as it is."""
    m = np.asarray(masks, bool)
    if m.ndim == 2:
        return m
    return np.asarray(m.any(axis=0)) if len(m) else np.zeros(shape, bool)


def comparison_rgb(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 map of TP (blue), FP (green) and FN (red) pixels from two foreground masks."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} shapes differ")
    out = np.zeros((*pred.shape, 3), np.uint8)
    out[pred & gt] = TP_COLOUR
    out[pred & ~gt] = FP_COLOUR
    out[~pred & gt] = FN_COLOUR
    return out


def plot_comparison(pred: np.ndarray, gt: np.ndarray, path: str | Path, *, image: np.ndarray | None = None,
                    title: str | None = None) -> Path:
    """Save the comparison map (next to the frame when given) with a legend and the pixel accuracy."""
    from matplotlib.patches import Patch

    pred = np.asarray(pred, bool)
    gt = np.asarray(gt, bool)
    tp, fp, fn = int((pred & gt).sum()), int((pred & ~gt).sum()), int((~pred & gt).sum())
    accuracy = tp / (tp + fp + fn) if tp + fp + fn else float("nan")
    panels = 2 if image is not None else 1
    fig = new_figure(4.5 * panels, 4.9)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    if image is not None:
        axes[0].imshow(image, cmap="gray", interpolation="nearest")
        axes[0].set_title("frame", fontsize=9)
    axes[-1].imshow(comparison_rgb(pred, gt), interpolation="nearest")
    axes[-1].set_title(f"TP/(TP+FP+FN) = {accuracy:.3f}", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    handles = [Patch(color=(c[0] / 255, c[1] / 255, c[2] / 255), label=f"{name} ({n} px)")
               for name, c, n in (("TP", TP_COLOUR, tp), ("FP", FP_COLOUR, fp), ("FN", FN_COLOUR, fn))]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
