"""Captured message files: how a raw message is kept on disk for replay and ``wirewatch inspect``.

- ``*.cbor``: one Stream V2 message body (as DECTRIS publishes its test data).
- ``NAME.json`` + ``NAME.bin``: an ``array-1.0`` pair (header, pixel bytes).
- ``*.zmsg``: any multipart message: magic ``WWZMSG1\\0``, uint32 LE part count,
  then per part a uint64 LE length and the bytes.

Which of these a format's messages are kept as is the format's ``capture_suffix``; which format a
captured message is in, when nobody says, the registry guesses (``wirewatch.ingest.formats.guess_format``).
"""

from __future__ import annotations

import struct
from pathlib import Path

from wirewatch.errors import DecodeError, InputError
from wirewatch.ingest.formats import get_format, guess_format
from wirewatch.ingest.limits import DEFAULT_LIMITS, DecodeLimits

ZMSG_MAGIC = b"WWZMSG1\0"
CAPTURE_SUFFIXES = (".cbor", ".json", ".zmsg")


def write_zmsg(path: str | Path, parts: list[bytes]) -> Path:
    p = Path(path)
    with p.open("wb") as fh:
        fh.write(ZMSG_MAGIC + struct.pack("<I", len(parts)))
        for part in parts:
            fh.write(struct.pack("<Q", len(part)))
            fh.write(part)
    return p


def write_capture(path: str | Path, parts: list[bytes], format: str) -> Path:
    """Write one message the way ``read_capture`` reads it back (suffix from the format's ``capture_suffix``)."""
    p = Path(path)
    suffix = get_format(format).capture_suffix
    if suffix == ".cbor" and len(parts) == 1:
        p = p.with_suffix(".cbor")
        p.write_bytes(parts[0])
        return p
    if suffix == ".json" and len(parts) == 2:
        p.with_suffix(".bin").write_bytes(parts[1])
        p = p.with_suffix(".json")
        p.write_bytes(parts[0])
        return p
    return write_zmsg(p.with_suffix(".zmsg"), parts)


def _read_zmsg(data: bytes, limits: DecodeLimits, name: str) -> list[bytes]:
    if not data.startswith(ZMSG_MAGIC) or len(data) < 12:
        raise DecodeError("bad_header", f"{name} is not a .zmsg capture (bad magic)")
    (count,) = struct.unpack_from("<I", data, 8)
    if count > limits.max_parts:
        raise DecodeError("oversized", f"{name} claims {count} parts, above max_parts={limits.max_parts}")
    pos, parts = 12, []
    for _ in range(count):
        if pos + 8 > len(data):
            raise DecodeError("truncated", f"{name} ends inside a part header")
        (length,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        if length > len(data) - pos:
            raise DecodeError("truncated", f"{name} part claims {length} bytes, only {len(data) - pos} remain")
        parts.append(data[pos:pos + length])
        pos += length
    if pos != len(data):
        raise DecodeError("bad_header", f"{name} has {len(data) - pos} trailing bytes")
    return parts


def read_capture(path: str | Path, limits: DecodeLimits = DEFAULT_LIMITS) -> list[bytes]:
    """The parts of the message captured in ``path`` (size-checked before reading)."""
    p = Path(path)
    if p.suffix not in CAPTURE_SUFFIXES:
        raise InputError(f"{p}: unknown capture type {p.suffix!r}; expected one of {', '.join(CAPTURE_SUFFIXES)}")
    try:
        size = p.stat().st_size
        if p.suffix == ".json":
            size += p.with_suffix(".bin").stat().st_size
    except FileNotFoundError as exc:
        raise InputError(f"capture file not found: {exc.filename}") from None
    if size > limits.max_message_bytes:
        raise DecodeError("oversized", f"{p} is {size} bytes, above max_message_bytes={limits.max_message_bytes}")
    if p.suffix == ".cbor":
        return [p.read_bytes()]
    if p.suffix == ".json":
        return [p.read_bytes(), p.with_suffix(".bin").read_bytes()]
    return _read_zmsg(p.read_bytes(), limits, str(p))


__all__ = ["CAPTURE_SUFFIXES", "ZMSG_MAGIC", "guess_format", "read_capture", "write_capture", "write_zmsg"]
