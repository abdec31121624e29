"""Describe decoded messages as plain JSON-able dicts (``wirewatch inspect``, capture checks).

Per channel: shape, dtype, exact pixel sum, NODATA pixel count, sum of valid
pixels and the sha256 of the decoded C-order little-endian pixel bytes, the
keys of ``../shared/data/dectris-stream2/expected.json``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.errors import DecodeError
from wirewatch.ingest import _fields as f
from wirewatch.ingest import cbor, stream2
from wirewatch.ingest.array10 import Array10Decoder
from wirewatch.ingest.capture import guess_format, read_capture
from wirewatch.ingest.limits import DEFAULT_LIMITS, DecodeLimits
from wirewatch.ingest.stream1 import Stream1Decoder
from wirewatch.types import Frame


def channel_summary(image: np.ndarray) -> dict[str, Any]:
    valid = stream2.valid_mask(image)
    acc = np.float64 if image.dtype.kind == "f" else (np.int64 if image.dtype.kind == "i" else np.uint64)
    total = image.sum(dtype=acc)
    valid_sum = image[valid].sum(dtype=acc)
    little = np.ascontiguousarray(image).astype(image.dtype.newbyteorder("<"), copy=False)
    return {
        "shape": [int(s) for s in image.shape],
        "dtype": image.dtype.name,
        "sum": float(total) if image.dtype.kind == "f" else int(total),
        "nodata_pixels": int(image.size - np.count_nonzero(valid)),
        "valid_sum": float(valid_sum) if image.dtype.kind == "f" else int(valid_sum),
        "sha256": hashlib.sha256(little.tobytes()).hexdigest(),
    }


def _stream2(body: bytes, limits: DecodeLimits) -> dict[str, Any]:
    msg = stream2.read_message(body, limits)
    out: dict[str, Any] = {"type": msg["type"]}
    for key in ("series_id", "series_unique_id"):
        if key in msg:
            out[key] = msg[key]
    if msg["type"] == "start":
        for key in ("image_size_x", "image_size_y", "pixel_size_x", "pixel_size_y", "image_dtype"):
            if key in msg and isinstance(msg[key], int | float | str):
                out[key] = msg[key]
        if isinstance(msg.get("channels"), list | tuple):
            out["channel_names"] = [str(c) for c in msg["channels"]]
    if msg["type"] == "image":
        out["image_id"] = f.integer(f.require(msg, "image_id", "stream2 image message"), "image_id")
        rt = cbor.rational(msg.get("real_time"), "real_time")
        if rt is not None:
            out["real_time"] = list(rt)
        arrays = stream2.channel_arrays(msg)
        out["channels"] = {name: channel_summary(arr.to_numpy(limits)) for name, arr in arrays.items()}
    return out


def _stream1(parts: list[bytes], limits: DecodeLimits) -> dict[str, Any]:
    events = Stream1Decoder(limits=limits).decode(parts, 0.0)
    first = f.parse_json_header(parts[0], limits, "stream1 first part")
    out: dict[str, Any] = {"type": first["htype"], "series_id": first["series"]}
    frames = [e for e in events if isinstance(e, Frame)]
    if frames:
        out["frame"] = frames[0].frame_id
        out["channels"] = {"image": channel_summary(frames[0].image)}
    return out


def _array10(parts: list[bytes], limits: DecodeLimits) -> dict[str, Any]:
    frame = next(e for e in Array10Decoder(limits=limits).decode(parts, 0.0) if isinstance(e, Frame))
    return {"type": "array-1.0", "frame": frame.frame_id, "channels": {"image": channel_summary(frame.image)}}


def describe_message(parts: list[bytes], format: str | None = None,
                     limits: DecodeLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Decode one message fully (every channel) and summarise it; raises ``DecodeError``."""
    fmt = format or guess_format(parts)
    if fmt == "stream2":
        if len(parts) != 1:
            raise DecodeError("bad_header", f"stream2 messages have exactly 1 part, got {len(parts)}")
        return _stream2(parts[0], limits)
    if fmt == "stream1":
        return _stream1(parts, limits)
    if fmt == "array-1.0":
        return _array10(parts, limits)
    raise DecodeError("unknown_type", f"unknown format {fmt!r}")


def describe_file(path: str | Path, format: str | None = None,
                  limits: DecodeLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    return describe_message(read_capture(path, limits), format, limits)
