"""Gatan DM3/DM4 and EMD (Berkeley EMD and Thermo Fisher Velox) through RosettaSciIO (``rsciio``).

Installed with the ``files`` extra where it installs; without it these suffixes are refused with
an error that says so. The first signal of two or more dimensions is taken: its last two axes are the
image, a series is a movie along the first axis. Sample pixel size: the scale and units of its last signal
axis as the file's own calibration gives them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.errors import DecodeError

from .base import FileImages, as_frames, to_nm

SUFFIXES = (".dm3", ".dm4", ".emd")


def available() -> bool:
    try:
        importlib.import_module("rsciio")
    except ImportError:
        return False
    return True


def _reader(path: Path) -> Any:
    module = "rsciio.digitalmicrograph" if path.suffix.lower() in (".dm3", ".dm4") else "rsciio.emd"
    try:
        return importlib.import_module(module).file_reader
    except ImportError as exc:
        raise DecodeError("unsupported", f"{path.name}: reading {path.suffix} needs RosettaSciIO "
                          f"(pip install 'wirewatch[files]'): {exc}") from None


def read(path: Path, options: dict[str, Any]) -> FileImages:
    file_reader = _reader(path)
    try:
        signals = file_reader(str(path), lazy=False)
    except DecodeError:
        raise
    except Exception as exc:  # rsciio raises many types (struct.error, OSError, KeyError...) on bad files
        text = str(exc).lower()
        kind = "truncated" if any(w in text for w in ("truncat", "unpack", "eof", "signature", "end of")) \
            else "unreadable"
        raise DecodeError(kind, f"cannot read {path.name}: {type(exc).__name__}: {exc}") from None
    for signal in signals:
        data = np.asarray(signal["data"])
        if data.ndim < 2:
            continue
        if data.ndim > 3:
            data = data.reshape(-1, *data.shape[-2:])
        # the last two axes are the image (NCEM EMD files mark every axis as signal, DM series do not)
        axes = sorted(signal.get("axes", []), key=lambda a: int(a.get("index_in_array", 0)))
        x = axes[-1] if axes else {}
        nm = to_nm(x.get("scale"), x.get("units"))
        return FileImages(frames=as_frames(data, path), pixel_size_nm=nm,
                          pixel_size_from=f"{path.suffix} axis {x.get('name', 'x')!r} scale" if nm else None)
    raise DecodeError("no_image", f"{path.name} holds no 2-D image signal")
