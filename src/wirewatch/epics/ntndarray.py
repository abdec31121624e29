"""NTNDArray (areaDetector over PV Access) <-> ``Frame``.

Two steps, so the monitor thread never decodes (as the ZeroMQ sources):

1. ``pack_update(value)`` runs in the p4p monitor callback: it copies what an ``NTNDArray`` update
   carries (the selected ``value`` union member as raw bytes, ``dimension``, ``codec``, sizes,
   ``uniqueId``, ``timeStamp``, scalar attributes) into a two-part raw message: a small JSON header
   and the payload bytes. Nothing is validated or decompressed there.
2. ``NTNDArrayDecoder.decode(parts)`` (format ``pva``) validates everything as untrusted input and
   builds the ``Frame``: ``dimension[0]`` is the fastest-varying axis (the width), 2-D mono or 3-D RGB
   (converted to grey, ``ColorMode`` attribute or the axis of size 3), ``codec`` none / ``lz4`` /
   ``bslz4`` decompressed by the SAME bounded decoder as DECTRIS Stream V2
   (``wirewatch.ingest.compression.decompress_bounded``), any other codec refused.

Compressed areaDetector arrays (ADCore ``NTNDArrayConverter``) travel as ``ubyteValue`` with the
uncompressed element type in ``codec.parameters`` (a pvData ``ScalarType`` code). ADCore's codecs write
bare blocks (no HDF5 12-byte framing header); DECTRIS-style framed blocks are accepted too. For a bare
block the framing header is rebuilt from the announced size, so the bounded decoder still checks every
claimed size against the dimensions before it allocates.

Malformed updates raise ``DecodeError(kind)``: ``bad_shape`` (dimensions not 2-D/RGB, value length not
matching them), ``unknown_codec``, ``size_lie`` (announced or decompressed size other than the dimensions
say), ``bad_dtype`` (boolean / 64-bit integer / string arrays), ``oversized``, ``decompression``,
``bad_header``.
"""

from __future__ import annotations

import json
import math
import struct
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from wirewatch.errors import DecodeError
from wirewatch.ingest.base import Parts
from wirewatch.ingest.compression import (
    FRAMING_HEADER_BYTES,
    bshuf_block_elements,
    decompress_bounded,
)
from wirewatch.ingest.limits import ALLOWED_DTYPES, DEFAULT_LIMITS, DecodeLimits, check_message_size
from wirewatch.types import Frame, SeriesStart, StreamEvent

FORMAT = "pva"
CODECS: tuple[str, ...] = ("", "none", "lz4", "bslz4")
# NTNDArray ``value`` union members -> numpy dtype (what p4p hands out for each).
UNION_DTYPES: dict[str, str] = {
    "booleanValue": "bool", "byteValue": "int8", "ubyteValue": "uint8", "shortValue": "int16",
    "ushortValue": "uint16", "intValue": "int32", "uintValue": "uint32", "longValue": "int64",
    "ulongValue": "uint64", "floatValue": "float32", "doubleValue": "float64",
}
DTYPE_UNION: dict[str, str] = {v: k for k, v in UNION_DTYPES.items()}
# pvData ScalarType codes (ADCore stores the uncompressed type in codec.parameters as one of these).
SCALAR_TYPE_DTYPES: dict[int, str] = {
    0: "bool", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "uint8", 6: "uint16", 7: "uint32",
    8: "uint64", 9: "float32", 10: "float64",
}
DTYPE_SCALAR_TYPE: dict[str, int] = {v: k for k, v in SCALAR_TYPE_DTYPES.items()}
# areaDetector NDColorMode: 0 mono, 1 Bayer, 2 RGB1 [3, X, Y], 3 RGB2 [X, 3, Y], 4 RGB3 [X, Y, 3]
# (dimension order, fastest first). Index of the colour dimension in ``dimension``:
COLOR_DIM = {2: 0, 3: 1, 4: 2}
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as areaDetector's own colour convert
MAX_ATTRIBUTES = 256
MAX_ATTRIBUTE_TEXT = 256


# ---------------------------------------------------------------------------------------------------
# 1. monitor thread: p4p Value -> raw message (no validation, no decompression)
# ---------------------------------------------------------------------------------------------------
def pack_update(value: Any, *, pixel_size_attribute: str | None = None, pixel_size_scale: float = 1.0,
                pv: str | None = None) -> tuple[bytes, bytes]:
    """The two parts of the raw message for one NTNDArray update (a ``p4p.Value``, not unwrapped).

    The header names the attribute that carries the pixel size (from the config) so the decoder
    needs no configuration of its own.
    """
    arr = value.get("value")
    if arr is None:
        union, payload = None, b""
    else:
        arr = np.asarray(arr)
        union = DTYPE_UNION.get(arr.dtype.name, f"?{arr.dtype.str}")
        payload = arr.tobytes()
    codec = value.get("codec")
    codec_name = codec.get("name") if codec is not None else ""
    codec_param = codec.get("parameters") if codec is not None else None
    ts = value.get("timeStamp")
    header: dict[str, Any] = {
        "pv": pv,
        "uniqueId": value.get("uniqueId"),
        "union": union,
        "dims": [d.get("size") for d in (value.get("dimension") or [])],
        "codec": codec_name,
        "codec_param": codec_param if isinstance(codec_param, int | float | str) else None,
        "compressedSize": value.get("compressedSize"),
        "uncompressedSize": value.get("uncompressedSize"),
        "time": [ts.get("secondsPastEpoch"), ts.get("nanoseconds")] if ts is not None else None,
        "attributes": _scalar_attributes(value.get("attribute") or []),
        "pixel_size_attribute": pixel_size_attribute,
        "pixel_size_scale": pixel_size_scale,
    }
    return json.dumps(header, allow_nan=True).encode(), payload


def _scalar_attributes(attributes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in list(attributes)[:MAX_ATTRIBUTES]:
        name, val = attr.get("name"), attr.get("value")
        if not isinstance(name, str) or len(name) > MAX_ATTRIBUTE_TEXT:
            continue
        if isinstance(val, np.generic):
            val = val.item()
        if isinstance(val, bool | int | float) or (isinstance(val, str) and len(val) <= MAX_ATTRIBUTE_TEXT):
            out[name] = val
    return out


# ---------------------------------------------------------------------------------------------------
# 2. segment thread: raw message -> Frame (everything validated)
# ---------------------------------------------------------------------------------------------------
class NTNDArrayDecoder:
    """Stateful decoder of one PV's NTNDArray updates (format ``pva``).

    A ``uniqueId`` not above the previous one (the IOC restarted, or the detector's counter was reset)
    starts a new series: a ``SeriesStart`` is emitted before that frame, so change detectors reset.
    """

    format_name = FORMAT

    def __init__(self, *, limits: DecodeLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._last_id: int | None = None
        self._series: str | None = None
        self.series_count = 0

    def is_control(self, parts: Parts) -> bool:
        return False  # every update is a frame; series boundaries are inferred from uniqueId

    def decode(self, parts: Parts, received_at: float | None = None) -> list[StreamEvent]:
        received_at = time.time() if received_at is None else received_at
        check_message_size(list(parts), self.limits)
        if len(parts) != 2:
            raise DecodeError("bad_header", f"pva messages have 2 parts (header, payload), got {len(parts)}")
        header = _parse_header(parts[0], self.limits)
        frame_id = _int(header.get("uniqueId"), "uniqueId", minimum=-(2**31))
        stamp = _timestamp(header.get("time"))
        t = stamp if stamp is not None else received_at
        attributes = header.get("attributes") or {}
        if not isinstance(attributes, Mapping):
            raise DecodeError("bad_header", "attributes must be a mapping of name -> scalar")
        image = decode_image(header, parts[1], self.limits, attributes)
        pixel_size = _pixel_size(header, attributes)
        events: list[StreamEvent] = []
        if self._last_id is None or frame_id <= self._last_id:
            self.series_count += 1
            pv = header.get("pv") if isinstance(header.get("pv"), str) else "pva"
            self._series = f"{pv}@{t:.6f}"
            events.append(SeriesStart(series_id=self._series, time=t, pixel_size_nm=pixel_size,
                                      meta={"implicit": True, "first_unique_id": frame_id,
                                            "previous_unique_id": self._last_id}))
        self._last_id = frame_id
        meta = {k: v for k, v in attributes.items() if isinstance(k, str)}
        events.append(Frame(frame_id=frame_id, image=image, time=t, series_id=self._series,
                            pixel_size_nm=pixel_size, received_at=received_at, meta=meta))
        return events


def decode_image(header: Mapping[str, Any], payload: bytes, limits: DecodeLimits,
                 attributes: Mapping[str, Any]) -> np.ndarray:
    """The 2-D image (height, width) of one update; RGB converted to grey in the source dtype."""
    dims = header.get("dims")
    if (not isinstance(dims, list) or len(dims) not in (2, 3)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims)):
        raise DecodeError("bad_shape", f"dimension must list 2 (mono) or 3 (RGB) positive sizes, got {dims!r}")
    pixels = math.prod(dims)
    if pixels > limits.max_pixels * (3 if len(dims) == 3 else 1):
        raise DecodeError("oversized", f"dimensions {dims} hold {pixels} elements, above max_pixels={limits.max_pixels}")
    codec = header.get("codec") or ""
    if not isinstance(codec, str) or codec not in CODECS:
        raise DecodeError("unknown_codec", f"codec {codec!r} is not supported; allowed: none, lz4, bslz4")
    union = header.get("union")
    if union is None:
        raise DecodeError("bad_dtype", "the value union has no member selected (an empty update)")
    if codec in ("", "none"):
        dtype = _dtype_of_union(union)
        raw = payload
        if len(raw) != pixels * dtype.itemsize:
            raise DecodeError("bad_shape", f"value has {len(raw) // max(dtype.itemsize, 1)} elements but the "
                                           f"dimensions {dims} need {pixels}")
    else:
        dtype = _uncompressed_dtype(header, union)
        expected = pixels * dtype.itemsize
        announced = header.get("uncompressedSize")
        if isinstance(announced, int) and announced not in (0, expected):
            raise DecodeError("size_lie", f"uncompressedSize {announced} but dimensions {dims} of {dtype} "
                                          f"need {expected} bytes")
        if union != "ubyteValue":
            raise DecodeError("bad_dtype", f"compressed data must travel as ubyteValue, got {union}")
        sent = header.get("compressedSize")
        if isinstance(sent, int) and sent not in (0, len(payload)):
            raise DecodeError("size_lie", f"compressedSize {sent} but the value holds {len(payload)} bytes")
        raw = decompress_bounded(_framed(payload, codec, dtype.itemsize, expected), codec, dtype.itemsize,
                                 expected, limits)
    arr = np.frombuffer(raw, dtype=dtype.newbyteorder("=")).reshape(tuple(reversed(dims)))
    if len(dims) == 2:
        return arr
    return _to_grey(arr, dims, attributes.get("ColorMode"))


def _framed(payload: bytes, codec: str, elem_size: int, expected: int) -> bytes:
    """The HDF5-framed block the bounded decoder reads: as sent when already framed (DECTRIS style, its
    claimed size checked there), else ADCore's bare block with the framing header rebuilt."""
    if len(payload) >= FRAMING_HEADER_BYTES:
        claimed, block = struct.unpack_from(">QI", payload, 0)
        if claimed == expected and block > 0 and (codec != "bslz4" or block % elem_size == 0):
            return payload
    if codec == "bslz4":
        return struct.pack(">QI", expected, bshuf_block_elements(elem_size) * elem_size) + payload
    # ADCore lz4: one LZ4 block of the whole array, no size prefix.
    return struct.pack(">QII", expected, max(expected, 1), len(payload)) + payload


def _to_grey(arr: np.ndarray, dims: list[int], color_mode: Any) -> np.ndarray:
    if isinstance(color_mode, int) and not isinstance(color_mode, bool) and color_mode in COLOR_DIM:
        color_dim = COLOR_DIM[color_mode]
    elif color_mode in (None, 0) and 3 in dims:
        color_dim = dims.index(3)  # as p4p: the first (fastest) dimension of size 3 is the colour
    else:
        raise DecodeError("bad_shape", f"3-D array with dimensions {dims} and ColorMode {color_mode!r}: "
                                       "not RGB1/RGB2/RGB3")
    if dims[color_dim] != 3:
        raise DecodeError("bad_shape", f"ColorMode {color_mode} needs 3 colours in dimension[{color_dim}], "
                                       f"got dimensions {dims}")
    axis = 2 - color_dim  # numpy axes are the dimensions reversed
    grey = np.tensordot(np.moveaxis(arr.astype(np.float32), axis, -1), np.asarray(LUMA, np.float32), axes=1)
    if arr.dtype.kind in "ui":
        info = np.iinfo(arr.dtype)
        return np.clip(np.rint(grey), info.min, info.max).astype(arr.dtype)
    return grey.astype(arr.dtype)


def _dtype_of_union(union: Any) -> np.dtype:
    name = UNION_DTYPES.get(union) if isinstance(union, str) else None
    if name is None or name not in ALLOWED_DTYPES:
        raise DecodeError("bad_dtype", f"value type {union!r} ({name}) is not supported; allowed: "
                                       + ", ".join(DTYPE_UNION[d] for d in ALLOWED_DTYPES))
    return np.dtype(name)


def _uncompressed_dtype(header: Mapping[str, Any], union: Any) -> np.dtype:
    code = header.get("codec_param")
    if isinstance(code, int) and not isinstance(code, bool):
        name = SCALAR_TYPE_DTYPES.get(code)
        if name is None or name not in ALLOWED_DTYPES:
            raise DecodeError("bad_dtype", f"codec.parameters names element type {code} ({name}); allowed: "
                                           + ", ".join(ALLOWED_DTYPES))
        return np.dtype(name)
    if code is None:  # no type given: the union member is the element type
        return _dtype_of_union(union)
    raise DecodeError("bad_header", f"codec.parameters must be an integer ScalarType code, got {code!r}")


def _parse_header(part: bytes, limits: DecodeLimits) -> Mapping[str, Any]:
    if len(part) > limits.max_header_bytes:
        raise DecodeError("oversized", f"pva header is {len(part)} bytes, above {limits.max_header_bytes}")
    try:
        obj = json.loads(bytes(part))
    except (ValueError, RecursionError) as exc:
        raise DecodeError("bad_header", f"pva header is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, Mapping):
        raise DecodeError("bad_header", "pva header must be a JSON object")
    return obj


def _int(value: Any, name: str, *, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum or value >= 2**63:
        raise DecodeError("bad_header", f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _timestamp(value: Any) -> float | None:
    """POSIX seconds of ``timeStamp`` (PV Access uses the POSIX epoch); None when unset (zero)."""
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise DecodeError("bad_header", f"timeStamp must be (secondsPastEpoch, nanoseconds), got {value!r}")
    seconds, nanos = value
    if seconds <= 0:
        return None
    if not 0 <= nanos < 1_000_000_000:
        raise DecodeError("bad_header", f"timeStamp.nanoseconds {nanos} is out of range")
    return seconds + nanos * 1e-9


def _pixel_size(header: Mapping[str, Any], attributes: Mapping[str, Any]) -> float | None:
    name = header.get("pixel_size_attribute")
    if not isinstance(name, str) or name not in attributes:
        return None
    val, scale = attributes[name], header.get("pixel_size_scale", 1.0)
    if (isinstance(val, bool) or not isinstance(val, int | float) or not math.isfinite(val) or val <= 0
            or isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0):
        raise DecodeError("bad_header", f"pixel-size attribute {name!r} = {val!r} (scale {scale!r}) is not a "
                                        "positive number")
    return float(val) * float(scale)


# ---------------------------------------------------------------------------------------------------
# encoding (simulator, tests): image -> p4p Value as areaDetector's NDPluginPva publishes it
# ---------------------------------------------------------------------------------------------------
def make_ntndarray(image: np.ndarray, *, unique_id: int, timestamp: float | None = None,
                   codec: str = "none", attributes: Mapping[str, Any] | None = None,
                   framed: bool = False) -> Any:
    """An ``NTNDArray`` ``p4p.Value`` of ``image`` (2-D, or 3-D RGB as numpy (height, width, 3) = RGB1).

    ``codec`` lz4 / bslz4 compresses as ADCore does (bare blocks, ``ubyteValue``, element type in
    ``codec.parameters``); ``framed=True`` sends DECTRIS/HDF5-framed blocks instead.
    """
    import lz4.block
    from p4p.nt import NTNDArray

    from wirewatch.ingest.compression import compress_bslz4, compress_lz4

    attrs = dict(attributes or {})
    if image.ndim == 3:
        attrs.setdefault("ColorMode", 2)
    else:
        attrs.setdefault("ColorMode", 0)
    value = NTNDArray().wrap(np.ascontiguousarray(image), attrib=attrs)
    value["uniqueId"] = int(unique_id)
    stamp = time.time() if timestamp is None else timestamp
    sec, frac = divmod(stamp, 1.0)
    value["timeStamp"] = {"secondsPastEpoch": int(sec), "nanoseconds": int(frac * 1e9)}
    value["dataTimeStamp"] = value["timeStamp"]
    # Every field set explicitly: a SharedPV sends only changed fields and clients merge them into the
    # previous update, so a field left unset would keep the previous update's codec.
    value["codec"] = {"name": "", "parameters": DTYPE_SCALAR_TYPE.get(image.dtype.name, 0)}
    if codec in ("none", ""):
        return value
    raw = np.ascontiguousarray(image).tobytes()
    itemsize = image.dtype.itemsize
    if codec == "bslz4":
        block = compress_bslz4(raw, itemsize)
        data = block if framed else block[FRAMING_HEADER_BYTES:]
    elif codec == "lz4":
        data = compress_lz4(raw) if framed else lz4.block.compress(raw, store_size=False)
    else:
        data = raw  # unknown codec names are sent as given (tests of the refusal)
    value["value"] = ("ubyteValue", np.frombuffer(data, np.uint8))
    value["codec"] = {"name": codec, "parameters": DTYPE_SCALAR_TYPE[image.dtype.name]}
    value["compressedSize"] = len(data)
    value["uncompressedSize"] = len(raw)
    return value
