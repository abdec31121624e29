"""Cheap classification of raw messages in the drain thread: is it a series start/end (never dropped)?

No decompression and no full parse: a Stream V2 message is a CBOR map whose
first key is ``type`` (spec), so its first few dozen bytes say what it is; a
Stream V1 message names its htype in the small first JSON part.
"""

from __future__ import annotations

from wirewatch.ingest.base import Parts

_SELF_DESCRIBED = b"\xd9\xd9\xf7"
_TYPE_KEY = b"\x64type"


def stream2_type(body: bytes) -> str | None:
    """``start`` / ``image`` / ``end`` read from the message prefix, or None if it does not look like one."""
    pos = 3 if body[:3] == _SELF_DESCRIBED else 0
    if pos >= len(body):
        return None
    initial = body[pos]
    if initial >> 5 != 5:  # not a map
        return None
    info = initial & 0x1F
    pos += 1 + {24: 1, 25: 2, 26: 4, 27: 8}.get(info, 0)
    if body[pos:pos + 5] != _TYPE_KEY:
        return None
    pos += 5
    if pos >= len(body) or body[pos] >> 5 != 3 or body[pos] & 0x1F >= 24:
        return None
    length = body[pos] & 0x1F
    try:
        return body[pos + 1:pos + 1 + length].decode("ascii")
    except UnicodeDecodeError:
        return None


_STREAM1_CONTROL = (b'"dheader-1.0"', b'"dseries_end-1.0"')


def stream1_is_control(parts: Parts) -> bool:
    first = parts[0] if parts else b""
    return len(first) <= 4096 and any(tag in first for tag in _STREAM1_CONTROL)
