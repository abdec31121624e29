"""Time series of per-frame statistics with change points marked (daemon demo, change-point CLI)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.errors import InputError
from wirewatch.plots.figure import new_figure, save_figure


def _position(cp: Any) -> float:
    # A number, or anything with a ``frame`` (wirewatch.types.ChangePoint) or ``x`` attribute.
    for attr in ("frame", "x"):
        if hasattr(cp, attr):
            return float(getattr(cp, attr))
    return float(cp)


def plot_series(x: Sequence[float] | np.ndarray, series: Mapping[str, Sequence[float] | np.ndarray],
                path: str | Path, *, change_points: Sequence[Any] = (), truth: Sequence[float] = (),
                reference: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
                reference_label: str = "simulator's truth", xlabel: str = "frame", title: str | None = None) -> Path:
    """One stacked panel per statistic against ``x``, detected change points as red dashed lines.

    ``change_points``: positions on the x axis (numbers or ``ChangePoint`` objects, drawn at
    their ``frame``; give ``x`` as frame numbers then). A change point whose ``statistics`` do
    not include a panel's name is drawn faint in that panel. ``truth``: known change positions
    (e.g. simulated), drawn as grey bands for comparison. ``reference``: per statistic, (x, values)
    of what it should read (e.g. the simulator's truth), drawn as a thin black line in its panel.
    """
    from matplotlib.lines import Line2D

    xs = np.asarray(x, np.float64)
    if not series:
        raise InputError("plot_series needs at least one statistic to plot")
    for name, values in series.items():
        if len(values) != len(xs):
            raise InputError(f"statistic {name!r} has {len(values)} values but x has {len(xs)}")
    fig = new_figure(9.0, 1.9 * len(series) + 0.6)
    axes = fig.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, values) in zip(axes, series.items(), strict=True):
        if reference and name in reference:  # beneath the measured line, which stays readable on top
            ref_x, ref_y = reference[name]
            if len(ref_x) != len(ref_y):
                raise InputError(f"reference {name!r} has {len(ref_y)} values but {len(ref_x)} x positions")
            ax.plot(np.asarray(ref_x, np.float64), np.asarray(ref_y, np.float64), lw=0.9, color="black", alpha=0.6)
        ax.plot(xs, np.asarray(values, np.float64), lw=1.0, color="tab:blue")
        ax.set_ylabel(name, fontsize=8)
        ax.grid(alpha=0.3)
        for t in truth:
            ax.axvline(float(t), color="grey", lw=4, alpha=0.3)
        for cp in change_points:
            stats = getattr(cp, "statistics", None)
            strong = stats is None or name in stats
            ax.axvline(_position(cp), color="red", ls="--", lw=1.2 if strong else 0.8, alpha=1.0 if strong else 0.3)
    handles = [Line2D([], [], color="tab:blue", lw=1.0, label="measured")] if reference else []
    if reference:
        handles.append(Line2D([], [], color="black", lw=0.9, alpha=0.6, label=reference_label))
    if len(truth):
        handles.append(Line2D([], [], color="grey", lw=4, alpha=0.3, label="known change"))
    if len(change_points):
        handles.append(Line2D([], [], color="red", ls="--", lw=1.2, label="detected change point"))
    if handles:
        axes[0].legend(handles=handles, fontsize=7, loc="upper left")
    axes[-1].set_xlabel(xlabel)
    if title:
        axes[0].set_title(title, fontsize=10)
    return save_figure(fig, path)
