"""Histogram + KDE panels comparing descriptor distributions of two particle sets (paper Figs. 5/7/9)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from wirewatch.plots.figure import new_figure, save_figure

DEFAULT_DESCRIPTORS: tuple[str, ...] = ("area_px", "aspect_ratio", "orientation_deg")
LABELS = {
    "area_px": "area (px)",
    "aspect_ratio": "aspect ratio (long / short side)",
    "orientation_deg": "orientation (deg from horizontal)",
    "length_px": "length (px)",
    "width_px": "width (px)",
}
SET_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def kde_curve(values: np.ndarray, grid: np.ndarray) -> np.ndarray | None:
    """Gaussian KDE density on ``grid`` (scipy), None when it is undefined (fewer than 2 distinct values)."""
    from scipy.stats import gaussian_kde

    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2 or np.ptp(v) == 0:
        return None
    try:
        return np.asarray(gaussian_kde(v)(grid))
    except np.linalg.LinAlgError:
        return None


def plot_distributions(sets: Mapping[str, Mapping[str, np.ndarray]], path: str | Path, *,
                       descriptors: Sequence[str] = DEFAULT_DESCRIPTORS, bins: int = 30,
                       title: str | None = None) -> Path:
    """One panel per descriptor: a density histogram and KDE curve for each named particle set.

    ``sets`` maps a label (e.g. "prediction", "ground truth") to a particle table (column -> array).
    Orientation panels span 0..180 deg.
    """
    fig = new_figure(4.2 * len(descriptors), 3.6)
    axes = fig.subplots(1, len(descriptors), squeeze=False)[0]
    for ax, name in zip(axes, descriptors, strict=True):
        columns = {label: np.asarray(t.get(name, np.zeros(0)), np.float64) for label, t in sets.items()}
        finite = {k: v[np.isfinite(v)] for k, v in columns.items()}
        everything = np.concatenate(list(finite.values())) if finite else np.zeros(0)
        if name == "orientation_deg":
            lo, hi = 0.0, 180.0
        elif everything.size:
            lo, hi = float(everything.min()), float(everything.max())
            if hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
        else:
            lo, hi = 0.0, 1.0
        edges = np.linspace(lo, hi, bins + 1)
        grid = np.linspace(lo, hi, 256)
        for (label, v), colour in zip(finite.items(), SET_COLOURS, strict=False):
            if v.size == 0:
                ax.plot([], [], color=colour, label=f"{label} (n=0)")
                continue
            ax.hist(v, bins=edges, density=True, histtype="stepfilled", alpha=0.35, color=colour, label=f"{label} (n={v.size})")
            curve = kde_curve(v, grid)
            if curve is not None:
                ax.plot(grid, curve, color=colour, lw=1.8)
        ax.set_xlabel(LABELS.get(name, name))
        ax.set_ylabel("density")
        ax.legend(fontsize=7, loc="upper right")  # "best" is slow with many bars
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
