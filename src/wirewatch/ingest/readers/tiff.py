"""TIFF and OME-TIFF through ``tifffile``; a multi-page stack is a movie (one frame per page).

Sample pixel size, first found of: OME ``Pixels/@PhysicalSizeX`` (+ unit, default um), FEI/Thermo SEM
``Scan/PixelWidth`` (m), ImageJ ``unit`` + ``XResolution``, a ``XResolution`` in pixels per centimetre.
A resolution in pixels per inch is a print setting (72 dpi), not a pixel size, and is ignored.
"""

from __future__ import annotations

import logging
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.errors import DecodeError

from .base import FileImages, as_frames, to_nm

SUFFIXES = (".tif", ".tiff")


def _ome_pixel_size(xml: str) -> float | None:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.endswith("}Pixels") or el.tag == "Pixels":
            size = el.get("PhysicalSizeX")
            if size is not None:
                return to_nm(size, el.get("PhysicalSizeXUnit", "µm"))
    return None


def _resolution_pixel_size(tif: Any) -> tuple[float | None, str | None]:
    page = tif.pages[0]
    xres = page.tags.get("XResolution")
    if xres is None:
        return None, None
    num, den = xres.value if isinstance(xres.value, tuple) else (xres.value, 1)
    if not num or not den:
        return None, None
    per_unit = num / den  # pixels per unit
    ij = tif.imagej_metadata or {}
    if ij.get("unit"):
        unit = str(ij["unit"]).replace("\\u00B5", "µ")
        return to_nm(1.0 / per_unit, unit), f"ImageJ unit {unit!r} and XResolution"
    unit_tag = page.tags.get("ResolutionUnit")
    if unit_tag is not None and int(unit_tag.value) == 3:  # centimetre
        return to_nm(1.0 / per_unit, "cm"), "XResolution (pixels per cm)"
    return None, None


def pixel_size(tif: Any) -> tuple[float | None, str | None]:
    if tif.is_ome and tif.ome_metadata:
        nm = _ome_pixel_size(tif.ome_metadata)
        if nm is not None:
            return nm, "OME PhysicalSizeX"
    fei = getattr(tif, "fei_metadata", None)
    if fei:
        nm = to_nm(fei.get("Scan", {}).get("PixelWidth"), "m")
        if nm is not None:
            return nm, "FEI Scan/PixelWidth"
    return _resolution_pixel_size(tif)


class _Complaints(logging.Handler):
    """Collects what tifffile logs while reading: it logs, and carries on with fewer pages, when a
    file is cut short inside its page chain (a half-written OME-TIFF stack reads as a shorter movie)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def read(path: Path, options: dict[str, Any]) -> FileImages:
    import tifffile

    complaints = _Complaints()
    logger = logging.getLogger("tifffile")
    logger.addHandler(complaints)
    propagate, logger.propagate = logger.propagate, False  # counted by the source, not logged as ERROR
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # tifffile warns (and pads with zeros) on truncated strips
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                data = np.squeeze(series.asarray())
                nm, source = pixel_size(tif)
        if complaints.messages:
            raise ValueError(f"invalid or truncated file: {complaints.messages[0]}")
    except (OSError, ValueError, IndexError, KeyError, RuntimeWarning, UserWarning, EOFError) as exc:
        # TiffFileError is a ValueError; a file cut short fails here or in the warning above
        raise DecodeError("truncated" if _looks_truncated(path, exc) else "unreadable",
                          f"cannot read TIFF {path.name}: {exc}") from None
    finally:
        logger.removeHandler(complaints)
        logger.propagate = propagate
    return FileImages(frames=as_frames(data, path), pixel_size_nm=nm, pixel_size_from=source)


def _looks_truncated(path: Path, exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("truncat", "not enough", "eof", "unexpected end", "out of range",
                                   "invalid tiff", "not a tiff", "buffer", "read", "size"))
