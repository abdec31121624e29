"""Validation of untrusted header fields: each failure is a ``DecodeError('bad_header')`` naming the field."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from wirewatch.errors import DecodeError
from wirewatch.ingest.limits import DecodeLimits

MAX_ID = 2**63 - 1
MAX_TEXT = 256


def parse_json_header(part: bytes, limits: DecodeLimits, what: str) -> Mapping[str, Any]:
    if len(part) > limits.max_header_bytes:
        raise DecodeError("oversized", f"{what} is {len(part)} bytes, above max_header_bytes={limits.max_header_bytes}")
    try:
        obj = json.loads(bytes(part))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DecodeError("bad_header", f"{what} is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, Mapping):
        raise DecodeError("bad_header", f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


def require(header: Mapping[str, Any], key: str, what: str) -> Any:
    if key not in header:
        raise DecodeError("bad_header", f"{what} lacks the field {key!r}")
    return header[key]


def integer(value: Any, name: str, *, minimum: int = 0, maximum: int = MAX_ID) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise DecodeError("bad_header", f"field {name!r} must be an integer in [{minimum}, {maximum}], got "
                                        f"{_short(value)}")
    return int(value)


def number(value: Any, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or (positive and value <= 0):
        raise DecodeError("bad_header", f"field {name!r} must be a finite{' positive' if positive else ''} number, "
                                        f"got {_short(value)}")
    return float(value)


def text(value: Any, name: str, *, max_len: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > max_len:
        raise DecodeError("bad_header", f"field {name!r} must be a string of at most {max_len} characters, "
                                        f"got {_short(value)}")
    return value


def choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise DecodeError("bad_header", f"field {name!r} must be one of {', '.join(allowed)}, got {_short(value)}")
    return value


def sample_pixel_size(header: Mapping[str, Any], key: str | None, scale: float = 1.0) -> float | None:
    """The sample pixel size in nm from the dotted ``key`` of a series header (None: absent or no key).

    The sample pixel (detector pixel / magnification, or the scan step of STXM and ptychography) is
    never the detector's own pixel (``pixel_size_x``): the user names the field that really holds it.
    """
    if not key:
        return None
    value: Any = header
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if value is None:
        return None
    return number(value, key, positive=True) * scale


def _short(value: Any) -> str:
    r = repr(value)
    return r if len(r) <= 80 else r[:77] + "..."
