"""``wirewatch report``: one self-contained HTML page (optionally a PDF) describing a run.

Contents: the run's metadata (model, config hash, frames processed / dropped, latency), the statistics over
time with change points and alerts marked, and for each segment between change points the distributions of
area, length, width, aspect ratio and orientation (histograms with KDE, before / after overlaid at each
change point) with a table of medians and effect sizes. Figures are PNGs embedded as base64 ``data:`` URLs:
the page opens offline and links to nothing.

The HTML is written by hand with ``html.escape`` (a page of tables and images needs no template engine).
"""

from __future__ import annotations

from .build import ReportSummary, build_report
from .data import DESCRIPTORS, RunData, load_run

__all__ = ["DESCRIPTORS", "ReportSummary", "RunData", "build_report", "load_run"]
