"""File readers for the watched folder: one module per format, behind an explicit registry.

``read_file(path, options)`` picks the reader from the suffix (``READERS``) and returns
``FileImages``; a file it cannot read raises ``DecodeError`` whose ``kind`` (``truncated``,
``unreadable``, ``no_image``, ``bad_shape``, ``unsupported``) is counted by the source.
PNG and other Pillow formats go through ``wirewatch.ingest.file_source.read_image``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wirewatch.errors import DecodeError, InputError

from . import hdf5, mrc, rsciio, tiff
from .base import FileImages, Reader, to_nm


def _pillow(path: Path, options: dict[str, Any]) -> FileImages:
    from wirewatch.ingest.file_source import read_image

    try:
        return FileImages(frames=[read_image(path)])
    except InputError as exc:
        raise DecodeError("truncated" if "truncated" in str(exc).lower() else "unreadable", str(exc)) from None


READERS: dict[str, Reader] = {
    **dict.fromkeys(tiff.SUFFIXES, tiff.read),
    **dict.fromkeys(hdf5.SUFFIXES, hdf5.read),
    **dict.fromkeys(mrc.SUFFIXES, mrc.read),
    **dict.fromkeys(rsciio.SUFFIXES, rsciio.read),
    ".png": _pillow,
}


def supported(path: Path) -> bool:
    return path.suffix.lower() in READERS


def read_file(path: Path, options: dict[str, Any] | None = None) -> FileImages:
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DecodeError("unsupported", f"{path.name}: no reader for {path.suffix!r} "
                          f"(known: {', '.join(sorted(READERS))})")
    try:
        return reader(path, dict(options or {}))
    except ImportError as exc:  # the format's library is not installed
        raise DecodeError("unsupported", f"{path.name}: reading {path.suffix} needs {exc.name or exc}: "
                          "pip install 'wirewatch[files]'") from None


__all__ = ["READERS", "FileImages", "read_file", "supported", "to_nm"]
