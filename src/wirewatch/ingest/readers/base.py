"""What a file reader returns, and the units it converts.

Each reader module (``tiff``, ``hdf5``, ``mrc``, ``rsciio``) opens one file with the library made
for its format and returns ``FileImages``: the 2-D frames (a stack is a movie, frames along the
first axis) and the *sample* pixel size when the file's own metadata gives one. A detector's pixel
pitch (``x_pixel_size`` under an ``NXdetector``, an EIGER's 75 um) is never used: it is not the size
of a pixel on the sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.errors import DecodeError

# metres per unit, for the unit spellings found in OME, ImageJ, NeXus, DM and EMD metadata
_UNIT_M = {
    "m": 1.0, "meter": 1.0, "metre": 1.0,
    "cm": 1e-2, "centimeter": 1e-2, "mm": 1e-3, "millimeter": 1e-3,
    "um": 1e-6, "µm": 1e-6, "μm": 1e-6, "micron": 1e-6, "microns": 1e-6, "micrometer": 1e-6,
    "micrometre": 1e-6, "nm": 1e-9, "nanometer": 1e-9, "nanometre": 1e-9,
    "a": 1e-10, "å": 1e-10, "angstrom": 1e-10, "ångström": 1e-10, "pm": 1e-12,
}


def to_nm(value: Any, unit: Any) -> float | None:
    """``value`` in ``unit`` as nanometres; None when the unit is not a length or the value is unusable."""
    if isinstance(unit, bytes):
        unit = unit.decode(errors="replace")
    factor = _UNIT_M.get(str(unit).strip().lower()) if unit is not None else None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if factor is None or not math.isfinite(v) or v <= 0:
        return None
    nm = v * factor * 1e9
    return nm if 1e-3 <= nm <= 1e6 else None  # outside 1 pm .. 1 mm it is not a microscope pixel


@dataclass(frozen=True)
class FileImages:
    """The frames of one file (each 2-D) and what the file says about them."""

    frames: Sequence[np.ndarray]
    pixel_size_nm: float | None = None
    pixel_size_from: str | None = None  # the metadata field it came from, for the log
    time: float | None = None  # acquisition time (Unix s) when the file records one


Reader = Callable[[Path, dict[str, Any]], FileImages]


def as_frames(data: Any, path: Path) -> list[np.ndarray]:
    """A 2-D image or an (N, H, W) stack -> list of 2-D frames; colour (H, W, 3|4) is turned grey."""
    arr = np.asarray(data)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4:
        arr = arr[..., :3].mean(axis=-1).astype(arr.dtype)
    if arr.ndim == 2:
        return [arr]
    if arr.ndim == 3:
        return [arr[i] for i in range(arr.shape[0])]
    raise DecodeError("bad_shape", f"{path}: image data has shape {arr.shape}; expected (H, W) or (N, H, W)")
