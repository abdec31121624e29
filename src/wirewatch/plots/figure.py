"""Figure creation and atomic PNG saving without pyplot's global state (safe in the daemon's threads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wirewatch.extras import require
from wirewatch.files import write_atomically


def new_figure(width_in: float, height_in: float, dpi: int = 100) -> Any:
    """A matplotlib Figure with an Agg canvas attached (no pyplot, no GUI backend). Without matplotlib (the
    ``plots`` extra): ``MissingExtra`` naming it."""
    require("matplotlib", "drawing figures")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | Path, dpi: int | None = None) -> Path:
    """Write ``fig`` as PNG via a temporary file and rename, so a reader never sees half a file."""
    return write_atomically(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight"))


def save_rgb(rgb: Any, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 array as PNG atomically (pixel-exact, no axes)."""
    from PIL import Image

    return write_atomically(path, lambda fh: Image.fromarray(rgb).save(fh, format="PNG"))
