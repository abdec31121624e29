"""DECTRIS Stream V1 (legacy): multipart messages of JSON parts and raw data.

- series header: ``{"htype": "dheader-1.0", "series": n, "header_detail": "all|basic|none"}``, then
  (basic/all) the detector configuration JSON (``x_pixel_size`` in metres: the *detector's* pixel, kept
  as ``meta['detector_pixel_size_nm']`` and never measured with; the sample pixel size only from the
  field the user names, ``sample_pixel_key``; ``x_pixels_in_detector``, ``y_pixels_in_detector``, ...), then (all) flatfield / pixel mask / count-rate table parts, ignored here.
- image: ``{"htype": "dimage-1.0", "series": n, "frame": i, "hash": md5}``,
  ``{"htype": "dimage_d-1.0", "shape": [x, y], "type": "uint16", "encoding": E, "size": nbytes}``,
  the data blob (``size`` bytes), optionally ``{"htype": "dconfig-1.0", "start_time", "stop_time",
  "real_time"}`` (ns) and an appendix part.
- series end: ``{"htype": "dseries_end-1.0", "series": n}``.

Encodings: ``<`` (raw little-endian), ``lz4<`` (one raw LZ4 block, no framing),
``bs8-lz4<`` / ``bs16-lz4<`` / ``bs32-lz4<`` (bitshuffle + LZ4 with the 12-byte
HDF5 framing header). Note ``shape`` is [width, height]. NODATA pixels (dtype
maximum) are marked invalid as for Stream V2.

Control messages (header, series end) are told apart by the htype in the small first JSON part.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from wirewatch.errors import DecodeError
from wirewatch.ingest import _fields as f
from wirewatch.ingest.base import Parts
from wirewatch.ingest.compression import compress, decompress_bounded
from wirewatch.ingest.formats.base import StreamFormat
from wirewatch.ingest.formats.common import (
    DEFAULT_SAMPLE_PIXEL_KEY,
    METRES_TO_NM,
    channel_summary,
    json_htype,
    le_bytes,
    valid_mask,
)
from wirewatch.ingest.limits import (
    DEFAULT_LIMITS,
    DecodeLimits,
    check_dtype,
    check_message_size,
    check_shape_2d,
)
from wirewatch.types import Frame, SeriesEnd, SeriesStart, StreamEvent

FORMAT = "stream1"
HTYPES = ("dheader-1.0", "dimage-1.0", "dseries_end-1.0")
ENCODINGS: dict[str, int | None] = {"<": None, "lz4<": None, "bs8-lz4<": 1, "bs16-lz4<": 2, "bs32-lz4<": 4}
_CONTROL_TAGS = (b'"dheader-1.0"', b'"dseries_end-1.0"')


def stream1_is_control(parts: Parts) -> bool:
    """Header or series end? Looks for the htype in a first part of at most 4 KiB, never parses it."""
    first = parts[0] if parts else b""
    return len(first) <= 4096 and any(tag in first for tag in _CONTROL_TAGS)


def _htype(header: Mapping[str, Any], expected: tuple[str, ...], what: str) -> str:
    value = header.get("htype")
    if value not in expected:
        raise DecodeError("unknown_type", f"{what} htype {value!r} is not one of {', '.join(expected)}")
    return str(value)


def decode_payload(blob: bytes, encoding: str, dtype: np.dtype, shape_hw: tuple[int, int],
                   limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Pixels of one V1 data part as a (height, width) array in native byte order."""
    h, w = shape_hw
    need = h * w * dtype.itemsize
    if encoding == "<":
        if len(blob) != need:
            kind = "truncated" if len(blob) < need else "size_lie"
            raise DecodeError(kind, f"stream1 raw data is {len(blob)} bytes, shape {[w, h]} of {dtype.name} "
                                    f"needs {need}")
        raw: bytes = blob
    elif encoding == "lz4<":
        # A bare LZ4 block (no framing): python-lz4 decompresses into at most ``need`` bytes.
        import lz4.block

        if need > limits.max_decompressed_bytes:
            raise DecodeError("oversized", f"image of {need} bytes is above max_decompressed_bytes="
                                           f"{limits.max_decompressed_bytes}")
        try:
            raw = lz4.block.decompress(blob, uncompressed_size=need)
        except lz4.block.LZ4BlockError as exc:
            raise DecodeError("decompression", f"lz4 block is corrupt or larger than the image: {exc}") from None
        if len(raw) != need:
            raise DecodeError("size_lie", f"lz4 block decompressed to {len(raw)} bytes, shape {[w, h]} of "
                                          f"{dtype.name} needs {need}")
    else:
        elem = ENCODINGS[encoding]
        if elem != dtype.itemsize:
            raise DecodeError("bad_header", f"encoding {encoding!r} does not match pixel type {dtype.name}")
        raw = decompress_bounded(blob, "bslz4", dtype.itemsize, need, limits)
    image = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(h, w)
    return image if image.dtype.isnative else image.astype(dtype)


class Stream1Decoder:
    """Stateful decoder of one DECTRIS Stream V1 stream."""

    format_name = FORMAT

    def __init__(self, *, limits: DecodeLimits = DEFAULT_LIMITS,
                 sample_pixel_key: str | None = DEFAULT_SAMPLE_PIXEL_KEY, sample_pixel_scale: float = 1.0) -> None:
        self.limits = limits
        self.sample_pixel_key, self.sample_pixel_scale = sample_pixel_key, sample_pixel_scale
        self.series_id: str | None = None
        self.pixel_size_nm: float | None = None
        self.image_shape: tuple[int, int] | None = None

    def is_control(self, parts: Parts) -> bool:
        return stream1_is_control(parts)

    def decode(self, parts: Parts, received_at: float | None = None) -> list[StreamEvent]:
        received_at = time.time() if received_at is None else received_at
        check_message_size(list(parts), self.limits)
        if not parts:
            raise DecodeError("truncated", "stream1 message has no parts")
        first = f.parse_json_header(parts[0], self.limits, "stream1 first part")
        htype = _htype(first, HTYPES, "stream1 message")
        series = str(f.integer(f.require(first, "series", "stream1 message"), "series"))
        if htype == "dheader-1.0":
            return [self._header(first, parts, series, received_at)]
        if htype == "dseries_end-1.0":
            if self.series_id == series:
                self.series_id = None
            return [SeriesEnd(series_id=series, time=received_at)]
        return self._image(first, parts, series, received_at)

    def _header(self, first: Mapping[str, Any], parts: Parts, series: str, received_at: float) -> SeriesStart:
        detail = f.choice(first.get("header_detail", "basic"), "header_detail", ("all", "basic", "none"))
        self.series_id, self.pixel_size_nm, self.image_shape = series, None, None
        meta: dict[str, Any] = {"format": FORMAT, "header_detail": detail}
        if detail != "none" and len(parts) >= 2:
            config = f.parse_json_header(parts[1], self.limits, "stream1 detector configuration")
            if config.get("x_pixel_size") is not None:  # the detector's pixel: recorded, never measured with
                meta["detector_pixel_size_nm"] = f.number(config["x_pixel_size"], "x_pixel_size",
                                                          positive=True) * METRES_TO_NM
            self.pixel_size_nm = f.sample_pixel_size(config, self.sample_pixel_key, self.sample_pixel_scale)
            if self.pixel_size_nm is not None:
                meta["pixel_size_source"] = f"detector configuration field {self.sample_pixel_key}"
            if config.get("x_pixels_in_detector") is not None:
                width = f.integer(config["x_pixels_in_detector"], "x_pixels_in_detector", minimum=1)
                height = f.integer(f.require(config, "y_pixels_in_detector", "stream1 configuration"),
                                   "y_pixels_in_detector", minimum=1)
                self.image_shape = check_shape_2d([height, width], self.limits, "detector size")
            for key in ("beam_center_x", "beam_center_y", "count_time", "frame_time", "detector_distance",
                        "wavelength", "nimages"):
                if config.get(key) is not None:
                    meta[key] = f.number(config[key], key)
        return SeriesStart(series_id=series, time=received_at, pixel_size_nm=self.pixel_size_nm, meta=meta)

    def _image(self, first: Mapping[str, Any], parts: Parts, series: str, received_at: float) -> list[StreamEvent]:
        if len(parts) < 3:
            raise DecodeError("truncated", f"stream1 image message needs at least 3 parts, got {len(parts)}")
        frame_id = f.integer(f.require(first, "frame", "dimage-1.0"), "frame")
        desc = f.parse_json_header(parts[1], self.limits, "dimage_d-1.0 part")
        _htype(desc, ("dimage_d-1.0",), "stream1 image description")
        x, y = check_shape_2d(f.require(desc, "shape", "dimage_d-1.0"), self.limits, "shape [x, y]")
        dtype = check_dtype(f.require(desc, "type", "dimage_d-1.0"))
        encoding = f.choice(f.require(desc, "encoding", "dimage_d-1.0"), "encoding", tuple(ENCODINGS))
        size = f.integer(f.require(desc, "size", "dimage_d-1.0"), "size")
        blob = parts[2]
        if len(blob) != size:
            kind = "truncated" if len(blob) < size else "size_lie"
            raise DecodeError(kind, f"stream1 data part is {len(blob)} bytes, its header says {size}")
        shape_hw = (y, x)
        if self.series_id == series and self.image_shape is not None and shape_hw != self.image_shape:
            raise DecodeError("bad_shape", f"image shape [x, y] = {[x, y]} differs from the detector size "
                                           f"{[self.image_shape[1], self.image_shape[0]]} in the series header")
        image = decode_payload(blob, encoding, dtype, shape_hw, self.limits)
        meta: dict[str, Any] = {"format": FORMAT, "encoding": encoding}
        if len(parts) >= 4:
            times = f.parse_json_header(parts[3], self.limits, "dconfig-1.0 part")
            for key in ("start_time", "stop_time", "real_time"):
                if times.get(key) is not None:
                    meta[f"{key}_ns"] = f.integer(times[key], key)
        events: list[StreamEvent] = []
        if self.series_id != series:  # connected mid-series: the header was not seen
            self.series_id, self.pixel_size_nm, self.image_shape = series, None, None
            events.append(SeriesStart(series_id=series, time=received_at, meta={"format": FORMAT, "implicit": True}))
        events.append(Frame(frame_id=frame_id, image=image, time=received_at, series_id=series,
                            pixel_size_nm=self.pixel_size_nm, modality="xray-detector", signal="intensity",
                            valid=valid_mask(image), received_at=received_at, meta=meta))
        return events


# ---------------------------------------------------------------- encoders (simulator, tests)

def encode_stream1_header(series: int, *, header_detail: str = "basic", image_shape: tuple[int, int] | None = None,
                          pixel_size_nm: float | None = 75_000.0, extra: Mapping[str, Any] | None = None,
                          sample_pixel_size_nm: float | None = None) -> list[bytes]:
    """``dheader-1.0`` (+ the detector configuration part unless ``header_detail='none'``).

    ``pixel_size_nm`` is the detector's pixel (``x_pixel_size``); ``sample_pixel_size_nm`` the sample's
    (``user_data.sample_pixel_size_nm`` in the configuration part).
    """
    parts = [json.dumps({"htype": "dheader-1.0", "series": int(series), "header_detail": header_detail}).encode()]
    if header_detail != "none":
        config: dict[str, Any] = {}
        if pixel_size_nm is not None:
            config["x_pixel_size"] = config["y_pixel_size"] = pixel_size_nm * 1e-9
        if sample_pixel_size_nm is not None:
            config["user_data"] = {"sample_pixel_size_nm": float(sample_pixel_size_nm)}
        if image_shape is not None:
            config["y_pixels_in_detector"], config["x_pixels_in_detector"] = int(image_shape[0]), int(image_shape[1])
        if extra:
            config.update(extra)
        parts.append(json.dumps(config).encode())
    return parts


def stream1_encoding_for(dtype: np.dtype) -> str:
    return f"bs{8 * dtype.itemsize}-lz4<" if dtype.itemsize in (1, 2, 4) else "<"


def encode_stream1_image(series: int, frame: int, image: np.ndarray, *, encoding: str | None = None,
                         start_time_ns: int = 0, real_time_ns: int = 1_000_000) -> list[bytes]:
    """``dimage-1.0``, ``dimage_d-1.0``, data, ``dconfig-1.0``; default encoding bitshuffle-LZ4 for the dtype."""
    import lz4.block

    if image.ndim != 2:
        raise ValueError(f"stream1 image must be 2-D, got shape {image.shape}")
    encoding = encoding or stream1_encoding_for(image.dtype)
    raw = le_bytes(image)
    if encoding == "<":
        blob = raw
    elif encoding == "lz4<":
        blob = lz4.block.compress(raw, store_size=False)
    elif encoding in ("bs8-lz4<", "bs16-lz4<", "bs32-lz4<"):
        blob = compress(raw, "bslz4", int(encoding[2:encoding.index("-")]) // 8)
    else:
        raise ValueError(f"unknown stream1 encoding {encoding!r}")
    h, w = image.shape
    return [
        json.dumps({"htype": "dimage-1.0", "series": int(series), "frame": int(frame),
                    "hash": hashlib.md5(blob).hexdigest()}).encode(),
        json.dumps({"htype": "dimage_d-1.0", "shape": [int(w), int(h)], "type": image.dtype.name,
                    "encoding": encoding, "size": len(blob)}).encode(),
        blob,
        json.dumps({"htype": "dconfig-1.0", "start_time": int(start_time_ns),
                    "stop_time": int(start_time_ns + real_time_ns), "real_time": int(real_time_ns)}).encode(),
    ]


def encode_stream1_end(series: int) -> list[bytes]:
    return [json.dumps({"htype": "dseries_end-1.0", "series": int(series)}).encode()]


class Stream1Writer:
    """Series writer: header (with the detector size and the sample pixel size), images, series end."""

    def __init__(self, *, series_id: int, pixel_size_nm: float | None, encoding: str | None = None) -> None:
        self.series_id, self.pixel_size_nm, self.encoding = series_id, pixel_size_nm, encoding

    def start(self, shape: tuple[int, int], dtype: str, count: int) -> list[list[bytes]]:
        return [encode_stream1_header(self.series_id, image_shape=shape, sample_pixel_size_nm=self.pixel_size_nm)]

    def image(self, frame: int, image: np.ndarray, *, time: float | None = None) -> list[bytes]:
        return encode_stream1_image(self.series_id, frame, image, encoding=self.encoding)

    def end(self) -> list[list[bytes]]:
        return [encode_stream1_end(self.series_id)]


# ---------------------------------------------------------------- the format

class Stream1Format(StreamFormat):
    name = FORMAT
    summary = "DECTRIS Stream V1 (legacy SIMPLON): multipart JSON headers and (bitshuffle-)LZ4 data"
    decoder_options = frozenset({"sample_pixel_key", "sample_pixel_scale"})
    reserves_nodata = True

    def decoder(self, *, limits: DecodeLimits = DEFAULT_LIMITS, **options: Any) -> Stream1Decoder:
        return Stream1Decoder(limits=limits, **options)

    def is_control(self, parts: Parts) -> bool:
        return stream1_is_control(parts)

    def writer(self, *, series_id: int = 1, series_unique_id: str | None = None,
               pixel_size_nm: float | None = None, signal: str | None = None, i0: float | None = None,
               modality: str | None = None, **options: Any) -> Stream1Writer:
        return Stream1Writer(series_id=series_id, pixel_size_nm=pixel_size_nm, **options)

    def describe(self, parts: list[bytes], limits: DecodeLimits) -> dict[str, Any]:
        events = Stream1Decoder(limits=limits).decode(parts, 0.0)
        first = f.parse_json_header(parts[0], limits, "stream1 first part")
        out: dict[str, Any] = {"type": first["htype"], "series_id": first["series"]}
        frames = [e for e in events if isinstance(e, Frame)]
        if frames:
            out["frame"] = frames[0].frame_id
            out["channels"] = {"image": channel_summary(frames[0].image)}
        return out

    def sniff(self, parts: Sequence[bytes]) -> bool:
        htype = json_htype(parts)
        return htype is not None and htype.startswith("d")


STREAM1 = Stream1Format()
