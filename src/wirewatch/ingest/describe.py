"""Describe decoded messages as plain JSON-able dicts (``wirewatch inspect``, capture checks).

Per channel: shape, dtype, exact pixel sum, NODATA pixel count, sum of valid pixels and the sha256
of the decoded C-order little-endian pixel bytes, the keys of
``../shared/data/dectris-stream2/expected.json``. What a message of each format holds is said by its
``StreamFormat.describe`` (``wirewatch.ingest.formats``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wirewatch.errors import ConfigError, DecodeError
from wirewatch.ingest.capture import read_capture
from wirewatch.ingest.formats import get_format, guess_format
from wirewatch.ingest.formats.common import channel_summary
from wirewatch.ingest.limits import DEFAULT_LIMITS, DecodeLimits

__all__ = ["channel_summary", "describe_file", "describe_message"]


def describe_message(parts: list[bytes], format: str | None = None,
                     limits: DecodeLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Decode one message fully (every channel) and summarise it; raises ``DecodeError``."""
    name = format or guess_format(parts)
    try:
        fmt = get_format(name)
    except ConfigError as exc:
        raise DecodeError("unknown_type", str(exc)) from None
    return fmt.describe(parts, limits)


def describe_file(path: str | Path, format: str | None = None,
                  limits: DecodeLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    return describe_message(read_capture(path, limits), format, limits)
