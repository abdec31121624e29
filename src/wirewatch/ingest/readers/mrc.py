"""MRC (cryo-EM / tomography) through ``mrcfile``; a 3-D volume is a stack of frames along the first axis.

Sample pixel size: the header's voxel size (cell dimensions / grid size, in angstrom) when it is set
(mrcfile reports 0 when the writer left the cell empty).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.errors import DecodeError

from .base import FileImages, as_frames, to_nm

SUFFIXES = (".mrc", ".mrcs", ".st", ".ali")


def read(path: Path, options: dict[str, Any]) -> FileImages:
    import mrcfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # mrcfile warns on a file shorter than its header says
            with mrcfile.open(path, mode="r", permissive=False) as mrc:
                data = np.array(mrc.data)
                vx = float(mrc.voxel_size.x)
    except (OSError, ValueError, RuntimeWarning, UserWarning, EOFError) as exc:
        text = str(exc).lower()
        kind = "truncated" if ("smaller than" in text or "too small" in text or "expected" in text) else "unreadable"
        raise DecodeError(kind, f"cannot read MRC {path.name}: {exc}") from None
    if data is None or data.size == 0:
        raise DecodeError("truncated", f"MRC {path.name} holds no image data")
    nm = to_nm(vx, "angstrom")
    return FileImages(frames=as_frames(data, path), pixel_size_nm=nm,
                      pixel_size_from="MRC voxel_size" if nm is not None else None)
