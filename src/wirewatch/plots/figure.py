"""Figure creation and atomic PNG saving without pyplot's global state (safe in the daemon's threads)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from wirewatch.errors import InputError


def new_figure(width_in: float, height_in: float, dpi: int = 100) -> Any:
    """A matplotlib Figure with an Agg canvas attached (no pyplot, no GUI backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | Path, dpi: int | None = None) -> Path:
    """Write ``fig`` as PNG via a temporary file and rename, so a reader never sees half a file."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder for {p}: {exc}") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def save_rgb(rgb: Any, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 array as PNG atomically (pixel-exact, no axes)."""
    from io import BytesIO

    from PIL import Image

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    buf = BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getvalue())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
