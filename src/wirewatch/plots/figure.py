"""Figure creation and atomic PNG saving without pyplot's global state (safe in the daemon's threads)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

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
    return _write_atomically(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight"))


def save_rgb(rgb: Any, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 array as PNG atomically (pixel-exact, no axes)."""
    from PIL import Image

    return _write_atomically(path, lambda fh: Image.fromarray(rgb).save(fh, format="PNG"))


def _write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise InputError(f"cannot write {p}: {exc}") from None
    try:
        # mkstemp makes the file 0600; plots are outputs for people to look at and share, so they get the
        # mode any other new file gets (0644 under the usual umask 022), not a secret's.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def _umask() -> int:
    """This process's umask, read without changing it (``os.umask`` sets it, racing other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
