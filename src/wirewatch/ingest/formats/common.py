"""Pieces more than one format uses: byte order, NODATA pixels, the JSON ``htype`` sniff, per-channel summary."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

METRES_TO_NM = 1e9
# Where the simulator (and a user's acquisition script) puts the sample pixel size in nm (DECTRIS formats).
DEFAULT_SAMPLE_PIXEL_KEY = "user_data.sample_pixel_size_nm"
_SNIFF_MAX_BYTES = 1 << 20  # a first part larger than this is not a JSON header worth parsing


def le_bytes(image: np.ndarray) -> bytes:
    """The pixels as C-order little-endian bytes (every format's wire order)."""
    arr = np.ascontiguousarray(image)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def nodata_value(dtype: np.dtype) -> int | float | None:
    return int(np.iinfo(dtype).max) if dtype.kind in "ui" else None


def valid_mask(image: np.ndarray) -> np.ndarray:
    """False at NODATA pixels (integer dtype maximum; non-finite for floats)."""
    nodata = nodata_value(image.dtype)
    return np.isfinite(image) if nodata is None else image != nodata


def json_htype(parts: Sequence[bytes]) -> str | None:
    """The ``htype`` of a JSON first part (areaDetector's one-element list unwrapped), else None."""
    first = parts[0] if parts else b""
    if first[:1] != b"{" or len(first) > _SNIFF_MAX_BYTES:
        return None
    try:
        htype = json.loads(first).get("htype")
    except (ValueError, AttributeError, RecursionError):
        return None
    if isinstance(htype, list) and htype:
        htype = htype[0]
    return htype if isinstance(htype, str) else None


def channel_summary(image: np.ndarray) -> dict[str, Any]:
    """Shape, dtype, exact pixel sum, NODATA pixel count, sum of valid pixels and the sha256 of the
    C-order little-endian pixel bytes (the keys of ``shared/data/dectris-stream2/expected.json``)."""
    valid = valid_mask(image)
    acc = np.float64 if image.dtype.kind == "f" else (np.int64 if image.dtype.kind == "i" else np.uint64)
    total = image.sum(dtype=acc)
    valid_sum = image[valid].sum(dtype=acc)
    return {
        "shape": [int(s) for s in image.shape],
        "dtype": image.dtype.name,
        "sum": float(total) if image.dtype.kind == "f" else int(total),
        "nodata_pixels": int(image.size - np.count_nonzero(valid)),
        "valid_sum": float(valid_sum) if image.dtype.kind == "f" else int(valid_sum),
        "sha256": hashlib.sha256(le_bytes(image)).hexdigest(),
    }
