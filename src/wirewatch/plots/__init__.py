"""Matplotlib figures people look at: overlays, TP/FP/FN comparison maps, histogram+KDE panels,
time series with change points. Everything is drawn on Agg figures (no pyplot) and saved atomically.
"""

from wirewatch.plots.comparison import comparison_rgb, foreground, plot_comparison
from wirewatch.plots.distributions import DEFAULT_DESCRIPTORS, kde_curve, plot_distributions
from wirewatch.plots.figure import new_figure, save_figure, save_rgb
from wirewatch.plots.overlay import grey_to_rgb, instance_colours, overlay_rgb, plot_overlay
from wirewatch.plots.series import plot_series

__all__ = [
    "DEFAULT_DESCRIPTORS",
    "comparison_rgb",
    "foreground",
    "grey_to_rgb",
    "instance_colours",
    "kde_curve",
    "new_figure",
    "overlay_rgb",
    "plot_comparison",
    "plot_distributions",
    "plot_overlay",
    "plot_series",
    "save_figure",
    "save_rgb",
]
