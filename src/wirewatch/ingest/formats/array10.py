"""``array-1.0``: a JSON header part then the raw pixel bytes (areaDetector / PSI convention).

Header: ``{"htype": "array-1.0", "shape": [h, w], "type": "uint16", "frame": n}``
plus optional ``timestamp`` (Unix s), ``pixel_size_nm``, ``modality``,
``signal`` (transmission | optical_density | intensity) and ``i0`` (incident
intensity of a transmission image, passed on as ``Frame.meta['i0']``). Pixels are
little-endian, C order. Unknown extra header keys are ignored (areaDetector
adds its own attributes); ``htype`` may also be the one-element list
areaDetector sends. A frame id lower than the previous one starts a new
series (a ``SeriesStart`` event precedes that frame).

No series start/end messages (``is_control`` is always False). Captured as a ``NAME.json`` +
``NAME.bin`` pair.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, get_args

import numpy as np

from wirewatch.errors import DecodeError
from wirewatch.ingest import _fields as f
from wirewatch.ingest.base import Parts
from wirewatch.ingest.formats.base import StreamFormat
from wirewatch.ingest.formats.common import channel_summary, json_htype, le_bytes
from wirewatch.ingest.limits import (
    DEFAULT_LIMITS,
    DecodeLimits,
    check_dtype,
    check_message_size,
    check_shape_2d,
)
from wirewatch.types import Frame, SeriesStart, Signal, StreamEvent

HTYPE = "array-1.0"
SIGNALS: tuple[str, ...] = get_args(Signal)


class Array10Decoder:
    """Decoder for two-part ``array-1.0`` messages."""

    format_name = HTYPE

    def __init__(self, *, limits: DecodeLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._last_frame: int | None = None

    def is_control(self, parts: Parts) -> bool:
        return ARRAY10.is_control(parts)

    def decode(self, parts: Parts, received_at: float | None = None) -> list[StreamEvent]:
        received_at = time.time() if received_at is None else received_at
        check_message_size(list(parts), self.limits)
        if len(parts) != 2:
            raise DecodeError("bad_header", f"array-1.0 message must have 2 parts (header, pixels), got {len(parts)}")
        header = f.parse_json_header(parts[0], self.limits, "array-1.0 header")
        htype = f.require(header, "htype", "array-1.0 header")
        if isinstance(htype, list) and len(htype) == 1:
            htype = htype[0]
        if htype != HTYPE:
            raise DecodeError("unknown_type", f"htype {htype!r} is not {HTYPE!r}")
        h, w = check_shape_2d(f.require(header, "shape", "array-1.0 header"), self.limits)
        dtype = check_dtype(f.require(header, "type", "array-1.0 header"))
        frame_id = f.integer(f.require(header, "frame", "array-1.0 header"), "frame")
        stamp = header.get("timestamp")
        acquired = f.number(stamp, "timestamp") if stamp is not None else received_at
        pixel_nm = header.get("pixel_size_nm")
        pixel_size_nm = f.number(pixel_nm, "pixel_size_nm", positive=True) if pixel_nm is not None else None
        modality = f.text(header["modality"], "modality") if header.get("modality") is not None else None
        signal = f.choice(header.get("signal", "intensity"), "signal", SIGNALS)
        meta: dict[str, object] = {"format": HTYPE}
        if header.get("i0") is not None:  # incident intensity, for transmission -> optical density
            meta["i0"] = f.number(header["i0"], "i0", positive=True)

        payload = parts[1]
        need = h * w * dtype.itemsize
        if len(payload) != need:
            kind = "truncated" if len(payload) < need else "size_lie"
            raise DecodeError(kind, f"array-1.0 payload is {len(payload)} bytes, shape {[h, w]} of {dtype.name} "
                                    f"needs {need}")
        image = np.frombuffer(payload, dtype=dtype.newbyteorder("<")).reshape(h, w)
        if not image.dtype.isnative:
            image = image.astype(dtype)
        events: list[StreamEvent] = []
        if self._last_frame is not None and frame_id < self._last_frame:
            events.append(SeriesStart(series_id=None, time=acquired, pixel_size_nm=pixel_size_nm,
                                      meta={"reason": "frame id went backwards",
                                            "previous_frame": self._last_frame}))
        self._last_frame = frame_id
        events.append(Frame(frame_id=frame_id, image=image, time=acquired, series_id=None,
                            pixel_size_nm=pixel_size_nm, modality=modality, signal=signal,  # type: ignore[arg-type]
                            valid=None, received_at=received_at, meta=meta))
        return events


def encode_array10(frame_id: int, image: np.ndarray, *, timestamp: float | None = None,
                   pixel_size_nm: float | None = None, modality: str | None = None, signal: str | None = None,
                   i0: float | None = None, extra: Mapping[str, Any] | None = None) -> list[bytes]:
    """``[json header, little-endian pixel bytes]`` for a 2-D image."""
    if image.ndim != 2:
        raise ValueError(f"array-1.0 needs a 2-D image, got shape {image.shape}")
    header: dict[str, Any] = {"htype": HTYPE, "shape": [int(image.shape[0]), int(image.shape[1])],
                              "type": image.dtype.name, "frame": int(frame_id)}
    optional = {"timestamp": timestamp, "pixel_size_nm": pixel_size_nm, "modality": modality, "signal": signal,
                "i0": i0}
    header.update({k: v for k, v in optional.items() if v is not None})
    if extra:
        header.update(extra)
    return [json.dumps(header).encode(), le_bytes(image)]


class Array10Writer:
    """Series writer: every image is one self-contained message (no start/end messages)."""

    def __init__(self, *, pixel_size_nm: float | None = None, signal: str | None = None, i0: float | None = None,
                 timestamp: float | None = None, modality: str | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        self.pixel_size_nm, self.signal, self.i0 = pixel_size_nm, signal, i0
        self.timestamp, self.modality, self.extra = timestamp, modality, extra

    def start(self, shape: tuple[int, int], dtype: str, count: int) -> list[list[bytes]]:
        return []

    def image(self, frame: int, image: np.ndarray, *, time: float | None = None) -> list[bytes]:
        return encode_array10(frame, image, timestamp=time if time is not None else self.timestamp,
                              pixel_size_nm=self.pixel_size_nm, modality=self.modality, signal=self.signal,
                              i0=self.i0, extra=self.extra)

    def end(self) -> list[list[bytes]]:
        return []


class Array10Format(StreamFormat):
    name = HTYPE
    summary = "a JSON header part and the raw pixels (areaDetector, PSI); no series messages"
    capture_suffix = ".json"

    def decoder(self, *, limits: DecodeLimits = DEFAULT_LIMITS, **options: Any) -> Array10Decoder:
        return Array10Decoder(limits=limits, **options)

    def is_control(self, parts: Parts) -> bool:
        return False  # no series messages; a series start is inferred from frame ids

    def writer(self, *, series_id: int = 1, series_unique_id: str | None = None,
               pixel_size_nm: float | None = None, signal: str | None = None, i0: float | None = None,
               modality: str | None = None, **options: Any) -> Array10Writer:
        return Array10Writer(pixel_size_nm=pixel_size_nm, signal=signal, i0=i0, modality=modality, **options)

    def describe(self, parts: list[bytes], limits: DecodeLimits) -> dict[str, Any]:
        frame = next(e for e in Array10Decoder(limits=limits).decode(parts, 0.0) if isinstance(e, Frame))
        return {"type": HTYPE, "frame": frame.frame_id, "channels": {"image": channel_summary(frame.image)}}

    def sniff(self, parts: Sequence[bytes]) -> bool:
        return json_htype(parts) == HTYPE


ARRAY10 = Array10Format()
