"""Safe CBOR decoding for DECTRIS Stream V2.

Two steps. ``scan`` walks the item headers in pure Python without building
anything: every length is checked against the bytes that remain (so an array
or byte string claiming 10^12 elements is ``truncated`` before any
allocation), nesting depth and the number of items are bounded, tags that make
cycles or run parsers (value sharing, string references, regex, MIME) are
refused, and trailing bytes are an error. Only then does ``cbor2.loads`` build
the message, with tag hooks that keep arrays lazy: tag 56500 becomes
``Compressed`` (not decompressed), tags 64-87 ``TypedArray`` and tag 40
``MultiDimArray``. A caller decompresses only the channel it uses, after
checking the claimed size against shape x itemsize (see ``compression``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from wirewatch.errors import DecodeError
from wirewatch.ingest.compression import decompress_bounded
from wirewatch.ingest.limits import ALLOWED_DTYPES, DEFAULT_LIMITS, DecodeLimits

TAG_MULTI_DIM_ARRAY = 40
TAG_DECTRIS_COMPRESSION = 56500
TAG_SELF_DESCRIBED = 55799
# Tags cbor2 would act on that a detector never sends: value sharing / string
# references (cycles, reference bombs), regular expressions and MIME (parsers).
REFUSED_TAGS = frozenset({25, 28, 29, 35, 36, 256})

# RFC 8746 typed arrays: tag -> numpy dtype string (float16 and float128 left out).
TYPED_ARRAY_TAGS: dict[int, str] = {
    64: "u1", 65: ">u2", 66: ">u4", 67: ">u8", 68: "u1", 69: "<u2", 70: "<u4", 71: "<u8",
    72: "i1", 73: ">i2", 74: ">i4", 75: ">i8", 77: "<i2", 78: "<i4", 79: "<i8",
    81: ">f4", 82: ">f8", 85: "<f4", 86: "<f8",
}


@dataclass(frozen=True)
class Compressed:
    """A DECTRIS-compressed byte string (tag 56500), not yet decompressed."""

    algorithm: str
    elem_size: int
    data: bytes


@dataclass(frozen=True)
class TypedArray:
    """An RFC 8746 typed array: element type and payload (raw bytes or ``Compressed``)."""

    dtype: np.dtype
    payload: bytes | Compressed


@dataclass(frozen=True)
class MultiDimArray:
    """An RFC 8746 row-major multi-dimensional array (tag 40), decoded on demand by ``to_numpy``."""

    dims: tuple[int, ...]
    typed: TypedArray

    @property
    def dtype(self) -> np.dtype:
        return self.typed.dtype.newbyteorder("=")

    def to_numpy(self, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
        """The array in native byte order (read-only when no byte swap was needed)."""
        count = math.prod(self.dims)
        if count > limits.max_pixels:
            raise DecodeError("oversized", f"array of shape {list(self.dims)} has {count} elements, above "
                                           f"max_pixels={limits.max_pixels}")
        dtype = self.typed.dtype
        if dtype.name not in ALLOWED_DTYPES:
            raise DecodeError("bad_dtype", f"pixel type {dtype.name} is not supported; allowed: "
                                           f"{', '.join(ALLOWED_DTYPES)}")
        nbytes = count * dtype.itemsize
        payload = self.typed.payload
        if isinstance(payload, Compressed):
            if payload.algorithm == "bslz4" and payload.elem_size != dtype.itemsize:
                raise DecodeError("bad_header", f"bslz4 element size {payload.elem_size} does not match "
                                                f"{dtype.name} ({dtype.itemsize} bytes)")
            raw = decompress_bounded(payload.data, payload.algorithm, payload.elem_size, nbytes, limits)
        else:
            raw = payload
            if len(raw) != nbytes:
                kind = "truncated" if len(raw) < nbytes else "size_lie"
                raise DecodeError(kind, f"typed array holds {len(raw)} bytes, shape {list(self.dims)} of "
                                        f"{dtype.name} needs {nbytes}")
        arr = np.frombuffer(raw, dtype=dtype).reshape(self.dims)
        if not dtype.isnative and dtype.itemsize > 1:
            arr = arr.astype(dtype.newbyteorder("="))
        return arr


def _read_argument(buf: bytes, pos: int, info: int) -> tuple[int, int]:
    if info < 24:
        return info, pos
    size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    if size is None:
        raise DecodeError("bad_cbor", f"reserved additional information {info} at byte {pos - 1}")
    if pos + size > len(buf):
        raise DecodeError("truncated", f"CBOR item header at byte {pos - 1} runs past the end of the message")
    return int.from_bytes(buf[pos:pos + size], "big"), pos + size


def scan(buf: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> int:
    """Validate the structure of one CBOR item filling ``buf``; returns the number of items. Allocates nothing."""
    n = len(buf)
    pos = 0
    items = 0
    # Each entry: items still expected in an open container (-1: indefinite, until a break).
    stack: list[int] = [1]
    while stack:
        if stack[-1] == 0:
            stack.pop()
            continue
        if pos >= n:
            raise DecodeError("truncated", f"CBOR message ends inside an item after {n} bytes")
        initial = buf[pos]
        pos += 1
        if initial == 0xFF:
            if stack[-1] != -1:
                raise DecodeError("bad_cbor", f"unexpected break byte at {pos - 1}")
            stack.pop()
            continue
        if stack[-1] > 0:
            stack[-1] -= 1
        items += 1
        if items > limits.max_cbor_items:
            raise DecodeError("bad_cbor", f"CBOR message has more than max_cbor_items={limits.max_cbor_items} items")
        major, info = initial >> 5, initial & 0x1F
        if info == 31:
            if major in (2, 3, 4, 5):
                stack.append(-1)
            else:
                raise DecodeError("bad_cbor", f"indefinite length not allowed for major type {major} at {pos - 1}")
        else:
            arg, pos = _read_argument(buf, pos, info)
            if major in (2, 3):
                if arg > n - pos:
                    raise DecodeError("truncated", f"CBOR string at byte {pos} claims {arg} bytes, only "
                                                   f"{n - pos} remain")
                pos += arg
            elif major in (4, 5):
                count = arg if major == 4 else 2 * arg
                if count > n - pos:  # every item takes at least one byte
                    raise DecodeError("truncated", f"CBOR {'array' if major == 4 else 'map'} at byte {pos} claims "
                                                   f"{arg} entries, only {n - pos} bytes remain")
                stack.append(count)
            elif major == 6:
                if arg in REFUSED_TAGS:
                    raise DecodeError("bad_cbor", f"CBOR tag {arg} is not accepted in a detector message")
                stack.append(1)
            elif major == 7 and info == 24 and arg < 32:
                raise DecodeError("bad_cbor", f"invalid two-byte simple value {arg} at byte {pos - 2}")
        if len(stack) - 1 > limits.max_cbor_depth:
            raise DecodeError("bad_cbor", f"CBOR nesting deeper than max_cbor_depth={limits.max_cbor_depth}")
    if pos != n:
        raise DecodeError("bad_cbor", f"{n - pos} trailing bytes after the CBOR message")
    return items


def _tag_hook(tag: Any, immutable: bool) -> Any:
    number, value = tag.tag, tag.value
    if number == TAG_DECTRIS_COMPRESSION:
        if (not isinstance(value, list | tuple) or len(value) != 3 or not isinstance(value[0], str)
                or not isinstance(value[1], int) or isinstance(value[1], bool)
                or not isinstance(value[2], bytes)):
            raise DecodeError("bad_header", "tag 56500 must hold [algorithm, element size, bytes]")
        return Compressed(value[0], value[1], value[2])
    if 64 <= number <= 87:
        dtype = TYPED_ARRAY_TAGS.get(number)
        if dtype is None:
            raise DecodeError("bad_dtype", f"typed array tag {number} is not supported; allowed pixel types: "
                                           f"{', '.join(ALLOWED_DTYPES)}")
        if not isinstance(value, bytes | Compressed):
            raise DecodeError("bad_header", f"typed array tag {number} must wrap a byte string")
        return TypedArray(np.dtype(dtype), value)
    if number == TAG_MULTI_DIM_ARRAY:
        if not isinstance(value, list | tuple) or len(value) != 2 or not isinstance(value[0], list | tuple):
            raise DecodeError("bad_header", "tag 40 must hold [dimensions, typed array]")
        dims = value[0]
        if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
            raise DecodeError("bad_shape", f"array dimensions must be positive integers, got {list(dims)!r}")
        if not isinstance(value[1], TypedArray):
            raise DecodeError("bad_dtype", "tag 40 must wrap a typed array (RFC 8746 tags 64-87)")
        return MultiDimArray(tuple(int(d) for d in dims), value[1])
    return tag  # other tags stay inert CBORTag objects


def _decode_error_in(exc: BaseException) -> DecodeError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DecodeError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def loads(buf: bytes | memoryview, limits: DecodeLimits = DEFAULT_LIMITS) -> Any:
    """Decode one CBOR message after ``scan``; arrays stay lazy. Any failure is a ``DecodeError``."""
    import cbor2

    data = bytes(buf)
    if len(data) > limits.max_message_bytes:
        raise DecodeError("oversized", f"message is {len(data)} bytes, above max_message_bytes="
                                       f"{limits.max_message_bytes}")
    scan(data, limits)
    try:
        return cbor2.loads(data, tag_hook=_tag_hook, max_depth=limits.max_cbor_depth + 1,
                           allow_duplicate_keys=False, strict_hashable_types=True)
    except DecodeError:
        raise
    except Exception as exc:  # untrusted bytes: any library failure is a bad message, never a crash
        inner = _decode_error_in(exc)
        if inner is not None:
            raise DecodeError(inner.kind, str(inner)) from None
        raise DecodeError("bad_cbor", f"invalid CBOR: {exc}") from None


def as_mapping(obj: Any, what: str) -> Mapping[str, Any]:
    # cbor2 returns frozendict (not a dict subclass) for some maps: test mapping behaviour.
    if not isinstance(obj, Mapping):
        raise DecodeError("bad_header", f"{what} must be a CBOR map, got {type(obj).__name__}")
    return obj


def rational(value: Any, what: str) -> tuple[int, int] | None:
    """A DECTRIS Rational ``[numerator, denominator]`` (None when absent)."""
    if value is None:
        return None
    if (not isinstance(value, list | tuple) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value) or value[1] == 0):
        raise DecodeError("bad_header", f"{what} must be [numerator, denominator] of non-negative integers "
                                        f"with a non-zero denominator, got {value!r}")
    return int(value[0]), int(value[1])


