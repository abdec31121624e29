"""Compressors round-trip through dectris-compression; the real detector's blocks round-trip through ours."""

from __future__ import annotations

import struct
from pathlib import Path

import cbor2
import numpy as np
import pytest
from dectris.compression import decompress

from wirewatch.errors import DecodeError
from wirewatch.ingest.compression import (
    claimed_size,
    compress,
    compress_bslz4,
    compress_lz4,
    decompress_bounded,
)
from wirewatch.ingest.limits import DecodeLimits

CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dectris-stream2"


@pytest.mark.parametrize("elem_size", [1, 2, 4, 8])
@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 4095, 4096, 4097, 12345])
def test_bslz4_roundtrip_with_reference_decompressor(elem_size: int, count: int) -> None:
    raw = np.random.default_rng(count).integers(0, 40, count * elem_size, dtype=np.uint8).tobytes()
    block = compress_bslz4(raw, elem_size)
    assert claimed_size(block) == len(raw)
    assert decompress(block, "bslz4", elem_size=elem_size) == raw
    assert decompress_bounded(block, "bslz4", elem_size, len(raw)) == raw


@pytest.mark.parametrize("count", [0, 1, 100, 1 << 16])
def test_lz4_roundtrip(count: int) -> None:
    raw = (b"wirewatch" * (count // 9 + 1))[:count]
    assert decompress_bounded(compress_lz4(raw), "lz4", 0, len(raw)) == raw
    noise = np.random.default_rng(0).bytes(count)  # incompressible: stored as is, like the HDF5 filter
    assert decompress(compress(noise, "lz4", 1), "lz4") == noise


@pytest.mark.skipif(not CAPTURES.exists(), reason=f"shared DECTRIS captures not found at {CAPTURES}")
@pytest.mark.parametrize("name", ["bslz4_16bit/000001.cbor", "lz4_8bit/000001.cbor"])
def test_detector_blocks_roundtrip_through_our_compressor(name: str) -> None:
    blocks = []

    def hook(tag: cbor2.CBORTag, immutable: bool) -> object:
        if tag.tag == 56500:
            blocks.append(tag.value)
        return tag

    cbor2.loads((CAPTURES / name).read_bytes(), tag_hook=hook)
    assert len(blocks) == 3
    for algorithm, elem, data in blocks:
        raw = decompress(data, algorithm, elem_size=elem)
        ours = compress(raw, algorithm, elem or 1)
        assert decompress(ours, algorithm, elem_size=elem) == raw
        # same framing header as the detector: total size and the 8 KiB block
        assert struct.unpack_from(">Q", ours)[0] == struct.unpack_from(">Q", data)[0]
        if algorithm == "bslz4":
            assert ours[8:12] == data[8:12]


def test_bounded_decompression_refuses_before_allocating() -> None:
    block = compress_bslz4(b"\x01\x00" * 1000, 2)
    with pytest.raises(DecodeError) as info:
        decompress_bounded(block, "bslz4", 2, 1998)
    assert info.value.kind == "size_lie"
    with pytest.raises(DecodeError) as info:
        decompress_bounded(block, "bslz4", 2, 2000, DecodeLimits(max_decompressed_bytes=1024))
    assert info.value.kind == "oversized"
    with pytest.raises(DecodeError) as info:
        decompress_bounded(block[:5], "bslz4", 2, 2000)
    assert info.value.kind == "truncated"
    with pytest.raises(DecodeError) as info:
        decompress_bounded(block, "bslz4", 3, 2000)
    assert info.value.kind == "bad_header"
    with pytest.raises(DecodeError) as info:
        decompress_bounded(block[:12] + b"\0\0\0\0" + block[16:], "bslz4", 2, 2000)
    assert info.value.kind == "decompression"
    with pytest.raises(DecodeError) as info:
        decompress_bounded(block, "bszstd", 2, 2000)
    assert info.value.kind == "unknown_type"
