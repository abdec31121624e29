"""Bounded decompression (``bslz4``, ``lz4``) and the matching compressors used by the encoders.

Both DECTRIS algorithms use HDF5 filter framing: an 8-byte big-endian total
uncompressed size, a 4-byte big-endian block size, then blocks each prefixed by
a 4-byte big-endian compressed size. ``dectris.compression.decompress`` trusts
the total size and allocates it, so ``decompress_bounded`` reads those 12
bytes first and refuses any block whose claimed size differs from what the
shape promises (``size_lie``) or exceeds the configured maximum
(``oversized``), and only then decompresses.

Compression (for the simulator and tests) uses python-lz4 for the LZ4 blocks
and numpy for the bit transposition of bitshuffle.
"""

from __future__ import annotations

import struct

import numpy as np

from wirewatch.errors import DecodeError
from wirewatch.ingest.limits import DEFAULT_LIMITS, DecodeLimits

ALGORITHMS: tuple[str, ...] = ("bslz4", "lz4")
FRAMING_HEADER_BYTES = 12
# bitshuffle's default block: 8 KiB of elements, a multiple of 8 elements.
BSHUF_TARGET_BLOCK_BYTES = 8192
BSHUF_MIN_BLOCK_ELEMENTS = 128
LZ4_BLOCK_BYTES = 1 << 30  # the HDF5 LZ4 filter's default: one block up to 1 GiB


def claimed_size(data: bytes | memoryview) -> int:
    """The uncompressed size written in the first 8 bytes of an HDF5-framed block."""
    if len(data) < FRAMING_HEADER_BYTES:
        raise DecodeError("truncated", f"compressed block is {len(data)} bytes, shorter than its "
                                       f"{FRAMING_HEADER_BYTES}-byte header")
    total, _block = struct.unpack_from(">QI", data, 0)
    return int(total)


def decompress_bounded(data: bytes | memoryview, algorithm: str, elem_size: int, expected_nbytes: int,
                       limits: DecodeLimits = DEFAULT_LIMITS) -> bytes:
    """Decompress one DECTRIS block after checking its claimed size; returns exactly ``expected_nbytes``."""
    from dectris.compression import decompress

    if algorithm not in ALGORITHMS:
        raise DecodeError("unknown_type", f"compression {algorithm!r} is not supported; allowed: "
                                          f"{', '.join(ALGORITHMS)}")
    if algorithm == "bslz4" and elem_size not in (1, 2, 4, 8):
        raise DecodeError("bad_header", f"bslz4 element size must be 1, 2, 4 or 8, got {elem_size!r}")
    claimed = claimed_size(data)
    if expected_nbytes > limits.max_decompressed_bytes:
        raise DecodeError("oversized", f"array of {expected_nbytes} bytes is above "
                                       f"max_decompressed_bytes={limits.max_decompressed_bytes}")
    if claimed != expected_nbytes:  # so a claim is never above the maximum either
        raise DecodeError("size_lie", f"compressed block claims {claimed} bytes but the array needs "
                                      f"{expected_nbytes}")
    _, block = struct.unpack_from(">QI", data, 0)
    if block == 0 or (algorithm == "bslz4" and block % elem_size):
        raise DecodeError("bad_header", f"{algorithm} block size {block} is invalid")
    try:
        out = decompress(bytes(data), algorithm, elem_size=elem_size)
    except (ValueError, RuntimeError, OSError, MemoryError) as exc:
        raise DecodeError("decompression", f"{algorithm} block is corrupt: {exc}") from None
    if len(out) != expected_nbytes:
        raise DecodeError("size_lie", f"{algorithm} block decompressed to {len(out)} bytes, "
                                      f"expected {expected_nbytes}")
    return out


def _bitshuffle_block(block: np.ndarray, elem_size: int) -> bytes:
    """Bit-transpose ``n`` elements (n a multiple of 8): byte b, bit k of every element packed together."""
    n = block.size // elem_size
    as_bytes = block.reshape(n, elem_size)
    bits = np.unpackbits(as_bytes[:, :, None], axis=2, bitorder="little")  # (n, elem, 8)
    planes = np.ascontiguousarray(bits.transpose(1, 2, 0))  # (elem, 8, n)
    return np.packbits(planes, axis=2, bitorder="little").tobytes()


def bshuf_block_elements(elem_size: int) -> int:
    size = BSHUF_TARGET_BLOCK_BYTES // elem_size
    return max(BSHUF_MIN_BLOCK_ELEMENTS, size - size % 8)


def compress_bslz4(raw: bytes | memoryview, elem_size: int) -> bytes:
    """Bitshuffle + LZ4 in HDF5 framing, as the bitshuffle HDF5 filter (and a DECTRIS detector) writes it."""
    import lz4.block

    buf = np.frombuffer(raw, np.uint8)
    if buf.size % elem_size:
        raise ValueError(f"{buf.size} bytes is not a whole number of {elem_size}-byte elements")
    n = buf.size // elem_size
    block_elems = bshuf_block_elements(elem_size)
    out = [struct.pack(">QI", buf.size, block_elems * elem_size)]
    start = 0
    while n - start >= 8:
        count = min(block_elems, n - start)
        count -= count % 8
        chunk = buf[start * elem_size:(start + count) * elem_size]
        packed = lz4.block.compress(_bitshuffle_block(chunk, elem_size), store_size=False)
        out.append(struct.pack(">I", len(packed)))
        out.append(packed)
        start += count
    out.append(buf[start * elem_size:].tobytes())  # fewer than 8 leftover elements go as they are
    return b"".join(out)


def compress_lz4(raw: bytes | memoryview) -> bytes:
    """LZ4 in HDF5 LZ4-filter framing (one block unless the data exceeds 1 GiB)."""
    import lz4.block

    data = bytes(raw)
    out = [struct.pack(">QI", len(data), min(LZ4_BLOCK_BYTES, max(len(data), 1)))]
    for start in range(0, len(data), LZ4_BLOCK_BYTES):
        chunk = data[start:start + LZ4_BLOCK_BYTES]
        packed = lz4.block.compress(chunk, store_size=False)
        if len(packed) >= len(chunk):  # the filter stores incompressible blocks as they are
            packed = chunk
        out.append(struct.pack(">I", len(packed)))
        out.append(packed)
    return b"".join(out)


def compress(raw: bytes | memoryview, algorithm: str, elem_size: int) -> bytes:
    if algorithm == "bslz4":
        return compress_bslz4(raw, elem_size)
    if algorithm == "lz4":
        return compress_lz4(raw)
    raise ValueError(f"unknown compression {algorithm!r}; allowed: {', '.join(ALGORITHMS)}")
