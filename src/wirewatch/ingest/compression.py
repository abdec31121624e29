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


_M1, _M2, _M3 = np.uint64(0x00AA00AA00AA00AA), np.uint64(0x0000CCCC0000CCCC), np.uint64(0x00000000F0F0F0F0)
_S7, _S14, _S28 = np.uint64(7), np.uint64(14), np.uint64(28)


def _bitshuffle_blocks(blocks: np.ndarray) -> np.ndarray:
    """Bit-transpose blocks of shape (count, n, elem_size) bytes, n a multiple of 8.

    Per block the output holds, for byte b then bit k (least significant first), bit k of
    byte b of every element, packed 8 elements per byte: bitshuffle's layout. Each group of
    8 elements' byte b is one 64-bit word; transposing it as an 8 x 8 bit matrix (Hacker's
    Delight, transpose8) puts bit k of the 8 elements into byte k.
    """
    count, n, elem = blocks.shape
    x = np.ascontiguousarray(blocks.transpose(0, 2, 1)).view("<u8")  # (count, elem, n / 8)
    t = (x ^ (x >> _S7)) & _M1
    x = x ^ t ^ (t << _S7)
    t = (x ^ (x >> _S14)) & _M2
    x = x ^ t ^ (t << _S14)
    t = (x ^ (x >> _S28)) & _M3
    x = x ^ t ^ (t << _S28)
    planes = x.astype("<u8", copy=False).view(np.uint8).reshape(count, elem, n // 8, 8).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(planes).reshape(count, -1)


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
    full = n // block_elems
    tail = (n - full * block_elems) - (n - full * block_elems) % 8  # last partial block, multiple of 8
    chunks: list[np.ndarray] = []
    if full:
        chunks += list(_bitshuffle_blocks(buf[:full * block_elems * elem_size].reshape(full, block_elems, elem_size)))
    if tail:
        start = full * block_elems * elem_size
        chunks += list(_bitshuffle_blocks(buf[start:start + tail * elem_size].reshape(1, tail, elem_size)))
    for chunk in chunks:
        packed = lz4.block.compress(chunk.tobytes(), store_size=False)
        out.append(struct.pack(">I", len(packed)))
        out.append(packed)
    out.append(buf[(full * block_elems + tail) * elem_size:].tobytes())  # < 8 leftover elements go as they are
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
