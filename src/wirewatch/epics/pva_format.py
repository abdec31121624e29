"""The ``pva`` stream format: areaDetector NTNDArray updates as ``PvaSource`` packs them.

Registered in ``wirewatch.ingest.formats`` by ``register_pva_format()`` (``PvaSource`` calls it), the
same way the built-in formats are, so ``make_decoder('pva')``, ``wirewatch inspect --format pva`` and
``MessageListSource`` work with it. The writer makes the two-part raw message ``pack_update`` would
make of an uncompressed mono update (no p4p needed), for tests and benches that skip PV Access.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from wirewatch.epics.ntndarray import DTYPE_SCALAR_TYPE, DTYPE_UNION, FORMAT, NTNDArrayDecoder
from wirewatch.ingest.formats import register
from wirewatch.ingest.formats.base import StreamFormat
from wirewatch.ingest.formats.common import channel_summary
from wirewatch.ingest.limits import DEFAULT_LIMITS, DecodeLimits
from wirewatch.types import Frame

PIXEL_SIZE_ATTRIBUTE = "PixelSizeNm"  # epics.input.pixel_size_attribute's default


class PvaWriter:
    """Packed updates of one series: no start/end messages (a series starts when ``uniqueId`` drops)."""

    def __init__(self, *, pixel_size_nm: float | None = None, pv: str | None = None) -> None:
        self.pixel_size_nm, self.pv = pixel_size_nm, pv

    def start(self, shape: tuple[int, int], dtype: str, count: int) -> list[list[bytes]]:
        return []

    def image(self, frame: int, image: np.ndarray, *, time: float | None = None) -> list[bytes]:
        if image.ndim != 2:
            raise ValueError(f"pva writer needs a 2-D image, got shape {image.shape}")
        attributes: dict[str, Any] = {"ColorMode": 0}
        if self.pixel_size_nm is not None:
            attributes[PIXEL_SIZE_ATTRIBUTE] = float(self.pixel_size_nm)
        payload = np.ascontiguousarray(image).tobytes()  # native order, as p4p hands the array over
        seconds, fraction = divmod(time, 1.0) if time is not None else (0, 0.0)
        header = {"pv": self.pv, "uniqueId": int(frame), "union": DTYPE_UNION[image.dtype.name],
                  "dims": [int(image.shape[1]), int(image.shape[0])], "codec": "",
                  "codec_param": DTYPE_SCALAR_TYPE.get(image.dtype.name), "compressedSize": len(payload),
                  "uncompressedSize": len(payload), "time": [int(seconds), int(fraction * 1e9)],
                  "attributes": attributes, "pixel_size_attribute": PIXEL_SIZE_ATTRIBUTE, "pixel_size_scale": 1.0}
        return [json.dumps(header).encode(), payload]

    def end(self) -> list[list[bytes]]:
        return []


class PvaFormat(StreamFormat):
    name = FORMAT
    summary = "EPICS PV Access: areaDetector NTNDArray updates of one PV (wirewatch run --format pva --input PV)"

    def decoder(self, *, limits: DecodeLimits = DEFAULT_LIMITS, **options: Any) -> NTNDArrayDecoder:
        return NTNDArrayDecoder(limits=limits, **options)

    def writer(self, *, series_id: int = 1, series_unique_id: str | None = None,
               pixel_size_nm: float | None = None, signal: str | None = None, i0: float | None = None,
               modality: str | None = None, **options: Any) -> PvaWriter:
        return PvaWriter(pixel_size_nm=pixel_size_nm, **options)

    def describe(self, parts: list[bytes], limits: DecodeLimits) -> dict[str, Any]:
        frame = next(e for e in NTNDArrayDecoder(limits=limits).decode(parts, 0.0) if isinstance(e, Frame))
        return {"type": FORMAT, "frame": frame.frame_id, "channels": {"value": channel_summary(frame.image)}}

    def sniff(self, parts: Sequence[bytes]) -> bool:
        first = parts[0] if len(parts) == 2 else b""
        return first[:1] == b"{" and b'"union"' in first[:4096] and b'"dims"' in first[:4096]


PVA = PvaFormat()


def register_pva_format() -> PvaFormat:
    """Add ``pva`` to the ingest format registry (idempotent; imports no p4p)."""
    register(PVA)
    return PVA
