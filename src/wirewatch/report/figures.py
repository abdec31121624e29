"""The report's figures (matplotlib ``Figure`` objects: PNG for the HTML page, pages of the PDF)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from wirewatch.plots.distributions import LABELS, kde_curve
from wirewatch.plots.figure import new_figure

from .data import RunData

TIME_SERIES: tuple[str, ...] = ("particle_count", "length_px_mean", "width_px_mean", "aspect_ratio_mean",
                                "orientation_order", "coverage_fraction")
MAX_PANELS = 8  # change points shown per descriptor figure (the largest shifts of particle_count first)


def statistics_over_time(run: RunData) -> Any:
    """Stacked panels of the main statistics; change points red dashed, firing alerts orange, segments
    labelled S1, S2, ..."""
    names = [n for n in TIME_SERIES if n in run.stats and np.isfinite(run.stats[n]).any()] or \
        [n for n in list(run.stats)[:4]]
    fig = new_figure(10.0, 1.7 * max(1, len(names)) + 0.8)
    axes = fig.subplots(max(1, len(names)), 1, sharex=True, squeeze=False)[:, 0]
    firing = [a for a in run.alerts if a.get("state") == "firing" and a.get("frame") is not None]
    for ax, name in zip(axes, names, strict=False):
        ax.plot(run.frames, run.stats[name], lw=0.9, color="tab:blue")
        ax.set_ylabel(name, fontsize=7)
        ax.grid(alpha=0.3)
        for cp in run.changepoints:
            strong = name in cp.get("statistics", [name])
            ax.axvline(float(cp["frame"]), color="red", ls="--", lw=1.2 if strong else 0.7,
                       alpha=1.0 if strong else 0.35)
        for a in firing:
            ax.axvline(float(a["frame"]), color="darkorange", ls=":", lw=1.0, alpha=0.8)
    top = axes[0]
    for i, (start, end) in enumerate(run.segments()):
        top.annotate(f"S{i + 1}", xy=((start + end - 1) / 2, 1.0), xycoords=("data", "axes fraction"),
                     ha="center", va="bottom", fontsize=8, color="dimgrey")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="red", ls="--", label=f"change point ({len(run.changepoints)})")]
    if firing:
        handles.append(Line2D([], [], color="darkorange", ls=":", label=f"alert firing ({len(firing)})"))
    top.legend(handles=handles, fontsize=7, loc="upper left")
    axes[-1].set_xlabel("frame")
    fig.subplots_adjust(top=1.0 - 0.35 / fig.get_figheight(), bottom=0.6 / fig.get_figheight(), hspace=0.12)
    return fig


def _range(name: str, values: list[np.ndarray]) -> tuple[float, float]:
    if name == "orientation_deg":
        return 0.0, 180.0
    allv = np.concatenate(values) if values else np.zeros(0)
    if allv.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(allv, [0.5, 99.5])  # a few huge merged particles would squash the rest
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(hi) + 0.5)


def _axial_kde(v: np.ndarray, grid: np.ndarray) -> np.ndarray | None:
    """KDE of angles in [0, 180): the data wrapped once on each side so 0 and 180 deg meet, with the
    bandwidth Scott's rule gives the unwrapped data (the wrapped copies would widen it three-fold)."""
    from scipy.stats import gaussian_kde

    v = v[np.isfinite(v)]
    if v.size < 2 or np.ptp(v) == 0:
        return None
    wrapped = np.concatenate([v - 180.0, v, v + 180.0])
    factor = v.size ** -0.2 * float(np.std(v, ddof=1)) / float(np.std(wrapped, ddof=1))
    try:
        return 3.0 * np.asarray(gaussian_kde(wrapped, bw_method=factor)(grid))
    except np.linalg.LinAlgError:
        return None


def _panel(ax: Any, name: str, sets: list[tuple[str, np.ndarray, str]], lo: float, hi: float) -> None:
    edges = np.linspace(lo, hi, 31)
    grid = np.linspace(lo, hi, 256)
    for label, v, colour in sets:
        if v.size == 0:
            ax.plot([], [], color=colour, label=f"{label} (n=0)")
            continue
        ax.hist(np.clip(v, lo, hi), bins=edges, density=True, histtype="stepfilled", alpha=0.3, color=colour,
                label=f"{label} (n={v.size})")
        curve = _axial_kde(v, grid) if name == "orientation_deg" else kde_curve(v, grid)
        if curve is not None:
            ax.plot(grid, curve, color=colour, lw=1.6)
    ax.set_xlabel(LABELS.get(name, name), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="upper right")


def shown_changepoints(run: RunData) -> list[int]:
    """Change-point frames given a before/after panel: all, or the ``MAX_PANELS`` with the largest effect."""
    bounds = run.boundaries
    if len(bounds) <= MAX_PANELS:
        return bounds
    size = {int(c["frame"]): abs(float(c.get("effect_size") or 0.0)) for c in run.changepoints}
    return sorted(sorted(bounds, key=lambda f: -size.get(f, 0.0))[:MAX_PANELS])


def distribution_figure(run: RunData, name: str) -> Any:
    """Histogram + KDE of one descriptor: before / after overlaid at each change point (one panel each),
    or the whole run when there is none."""
    segments = run.segments()
    index = {start: i for i, (start, _) in enumerate(segments)}
    shown = shown_changepoints(run)
    if not shown:
        panels = [[("whole run", run.values(name, segments[0][0], segments[-1][1]), "tab:blue")]]
        titles = ["whole run"]
    else:
        panels, titles = [], []
        for f in shown:
            i = index[f]
            (b0, b1), (a0, a1) = segments[i - 1], segments[i]
            panels.append([(f"before: S{i} ({b0}-{b1 - 1})", run.values(name, b0, b1), "tab:blue"),
                           (f"after: S{i + 1} ({a0}-{a1 - 1})", run.values(name, a0, a1), "tab:orange")])
            titles.append(f"change point at frame {f}")
    lo, hi = _range(name, [v for p in panels for _, v, _ in p])
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = new_figure(3.6 * cols, 2.8 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, sets, title in zip(axes, panels, titles, strict=False):
        _panel(ax, name, sets, lo, hi)
        ax.set_title(title, fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{name}: distribution before / after each change point", fontsize=10)
    return fig
