"""Size limits applied to every untrusted message before anything big is allocated.

One frozen ``DecodeLimits`` travels with each decoder. The defaults fit the
largest detectors wirewatch is meant for (a 4M-pixel EIGER2 at 32 bits, a few
channels) with room to spare, and are far below what would hurt the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wirewatch.errors import DecodeError

MiB = 1 << 20

# Pixel types a frame may carry. Wider or exotic types (float16/128, complex,
# objects) are refused: nothing upstream sends them and each needs its own care.
ALLOWED_DTYPES: tuple[str, ...] = ("uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64")

# The stable ``kind`` labels of ``DecodeError`` (label of wirewatch_frame_errors_total{kind}).
ERROR_KINDS: tuple[str, ...] = (
    "oversized",  # message, part, header or decompressed size beyond the configured maximum
    "truncated",  # fewer bytes than the message itself announces
    "bad_header",  # a header field missing, of the wrong type or out of range; bad JSON
    "bad_dtype",  # a pixel type not in ALLOWED_DTYPES
    "bad_shape",  # shape not 2-D positive, or not what the series announced
    "bad_cbor",  # not CBOR, too deeply nested, too many items, trailing bytes
    "unknown_type",  # unknown message type / htype / compression algorithm / format
    "decompression",  # the compressed block is corrupt
    "size_lie",  # payload or compressed block claims a size other than shape x itemsize
    "unknown_channel",  # the configured channel is not in the image message
)


@dataclass(frozen=True)
class DecodeLimits:
    """Upper bounds checked before allocation; exceeding one is a ``DecodeError('oversized')``."""

    max_message_bytes: int = 256 * MiB  # whole multipart message as received
    max_pixels: int = 64 * MiB  # height x width of one image
    max_decompressed_bytes: int = 512 * MiB  # one decompressed block
    max_header_bytes: int = 1 * MiB  # one JSON header part
    max_parts: int = 16  # parts of one multipart message
    max_cbor_depth: int = 32  # nesting of CBOR containers and tags (user_data may nest a little)
    max_cbor_items: int = 200_000  # data items in one CBOR message (arrays, maps, scalars)

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_pixels", "max_decompressed_bytes", "max_header_bytes",
                     "max_parts", "max_cbor_depth", "max_cbor_items"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DecodeLimits.{name} must be positive, got {getattr(self, name)}")


DEFAULT_LIMITS = DecodeLimits()


def check_dtype(name: object) -> np.dtype:
    """The numpy dtype for an allowed type name, else ``DecodeError('bad_dtype')`` listing the allowed ones."""
    if not isinstance(name, str) or name not in ALLOWED_DTYPES:
        raise DecodeError("bad_dtype", f"pixel type {name!r} is not supported; allowed: {', '.join(ALLOWED_DTYPES)}")
    return np.dtype(name)


def check_shape_2d(shape: object, limits: DecodeLimits, what: str = "shape") -> tuple[int, int]:
    """``(height, width)`` from a 2-element list of positive ints within ``max_pixels``."""
    if (not isinstance(shape, list | tuple) or len(shape) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape)):
        raise DecodeError("bad_shape", f"{what} must be a list of two integers [height, width], got {shape!r}")
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise DecodeError("bad_shape", f"{what} must be positive, got {[h, w]}")
    if h * w > limits.max_pixels:
        raise DecodeError("oversized", f"{what} {[h, w]} has {h * w} pixels, above max_pixels={limits.max_pixels}")
    return h, w


def check_message_size(parts: list[bytes] | tuple[bytes, ...], limits: DecodeLimits) -> int:
    """Total size of a multipart message, checked against ``max_message_bytes`` and ``max_parts``."""
    if len(parts) > limits.max_parts:
        raise DecodeError("oversized", f"message has {len(parts)} parts, above max_parts={limits.max_parts}")
    total = sum(len(p) for p in parts)
    if total > limits.max_message_bytes:
        raise DecodeError("oversized",
                          f"message is {total} bytes, above max_message_bytes={limits.max_message_bytes}")
    return total
