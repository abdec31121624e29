"""Instance masks drawn over their frame: distinct colours, outlines, optional ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wirewatch.plots.figure import new_figure, save_figure


def instance_colours(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) uint8 colours, well spread in hue, stable for a given n and seed."""
    import colorsys

    rng = np.random.default_rng(seed)
    golden = 0.618033988749895
    hues = (rng.random() + golden * np.arange(n)) % 1.0
    rgb = [colorsys.hsv_to_rgb(h, 0.85, 1.0) for h in hues]
    return (np.array(rgb, np.float64).reshape(n, 3) * 255).astype(np.uint8)


def grey_to_rgb(image: np.ndarray) -> np.ndarray:
    """2-D image -> (H, W, 3) uint8, contrast stretched between the 1st and 99.5th percentile."""
    img = np.nan_to_num(np.asarray(image, np.float64))
    lo, hi = np.percentile(img, [1.0, 99.5]) if img.size else (0.0, 1.0)
    scaled = np.clip((img - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(img)
    grey = (scaled * 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def overlay_rgb(image: np.ndarray, masks: np.ndarray, *, alpha: float = 0.45, outlines: bool = True) -> np.ndarray:
    """(H, W, 3) uint8: the frame in grey with each mask tinted in its own colour and outlined."""
    from scipy import ndimage as ndi

    out = grey_to_rgb(image).astype(np.float32)
    colours = instance_colours(len(masks)).astype(np.float32)
    for mask, colour in zip(masks, colours, strict=True):
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        crop = mask[y0:y1, x0:x1]
        region = out[y0:y1, x0:x1]
        region[crop] = (1 - alpha) * region[crop] + alpha * colour
        if outlines:
            edge = crop & ~ndi.binary_erosion(crop, border_value=0)
            region[edge] = colour
    return out.astype(np.uint8)


def plot_overlay(image: np.ndarray, masks: np.ndarray, path: str | Path, *, ids: bool = True,
                 title: str | None = None, scores: np.ndarray | None = None) -> Path:
    """Save the overlay as a PNG figure; ``ids`` writes each mask's index (and score) at its centroid."""
    h, w = np.asarray(image).shape[:2]
    fig = new_figure(max(4.0, w / 100), max(4.0, h / 100) + (0.3 if title else 0))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(overlay_rgb(image, masks), interpolation="nearest")
    ax.set_axis_off()
    if ids:
        for i, mask in enumerate(masks):
            ys, xs = np.nonzero(mask)
            if len(xs) == 0:
                continue
            text = str(i) if scores is None else f"{i}:{float(scores[i]):.2f}"
            ax.text(xs.mean(), ys.mean(), text, color="white", fontsize=7, ha="center", va="center",
                    bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "edgecolor": "none"})
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)
