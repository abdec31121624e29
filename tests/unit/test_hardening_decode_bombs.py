"""Decoder bombs: messages that claim enormous sizes or nesting are refused with the right kind AND without
allocating anything in proportion to the claim. Memory is measured with ``tracemalloc`` (Python objects and
numpy buffers) around each decode: the peak must stay near the size of the message itself.

The kinds themselves are covered case by case in ``test_decode_malformed.py``; this file adds the memory
bound of issue 8 ("no input allocates beyond the configured maximum")."""

from __future__ import annotations

import json
import struct
import tracemalloc
from collections.abc import Callable

import cbor2
import numpy as np
import pytest

from wirewatch.errors import DecodeError
from wirewatch.ingest import encode as enc
from wirewatch.ingest.decoders import make_decoder
from wirewatch.ingest.limits import DecodeLimits

MiB = 1 << 20
SMALL = np.zeros((48, 40), np.uint16)
# A real frame bigger than the limits below (8 MiB of uint16) but cheap to compress (zeros).
BIG = np.zeros((2048, 2048), np.uint16)
TIGHT_BYTES = DecodeLimits(max_decompressed_bytes=1 * MiB)  # pixel limit left at its default (64 Mi)
TIGHT_PIXELS = DecodeLimits(max_pixels=1 << 20)


def _block(alg: str, claimed: int) -> cbor2.CBORTag:
    return cbor2.CBORTag(56500, [alg, 2 if alg == "bslz4" else 0, struct.pack(">QI", claimed, 8192) + b"\0" * 16])


def _s2_image(dims: list[int], typed: object) -> list[bytes]:
    msg = cbor2.loads(enc.encode_stream2_image(0, SMALL, compression=None)[0], tag_hook=lambda t, i: t)
    msg = dict(msg)
    msg["data"] = {"threshold_1": cbor2.CBORTag(40, [dims, typed])}
    return [cbor2.dumps(msg)]


def _s1_claiming(total: int) -> list[bytes]:
    parts = enc.encode_stream1_image(3, 1, SMALL)  # bs16-lz4<: 12-byte header (total size, block size)
    blob = struct.pack(">QI", total, 8192) + parts[2][12:]
    return [parts[0], parts[1], blob, *parts[3:]]


def _a10_claiming(shape: list[int]) -> list[bytes]:
    header, payload = enc.encode_array10(1, SMALL)
    return [json.dumps(json.loads(header) | {"shape": shape}).encode(), payload]


BOMBS: dict[str, tuple[str, Callable[[], list[bytes]], str, DecodeLimits | None]] = {
    "cbor array claiming 10^12 items": ("stream2", lambda: [b"\x9b" + (10**12).to_bytes(8, "big")], "truncated", None),
    "cbor map claiming 10^12 pairs": ("stream2", lambda: [b"\xbb" + (10**12).to_bytes(8, "big")], "truncated", None),
    "cbor byte string claiming 1 TB": ("stream2", lambda: [b"\x5b" + (10**12).to_bytes(8, "big") + b"abc"],
                                       "truncated", None),
    "cbor nested 100000 deep": ("stream2", lambda: [b"\x81" * 100_000 + b"\x00"], "bad_cbor", None),
    "cbor indefinite nesting 100000 deep": ("stream2", lambda: [b"\x9f" * 100_000 + b"\xff" * 100_000],
                                            "bad_cbor", None),
    "cbor tags nested 100000 deep": ("stream2", lambda: [b"\xd8\x28" * 100_000 + b"\x00"], "bad_cbor", None),
    # above max_cbor_items (lowered to 10 000 here: the pure-Python scan is slow under tracemalloc)
    "cbor array of 20000 tiny items": ("stream2", lambda: [b"\x9a" + (20_000).to_bytes(4, "big") + b"\x00" * 20_000],
                                       "bad_cbor", DecodeLimits(max_cbor_items=10_000)),
    "bslz4 block claiming 10^12 bytes": ("stream2", lambda: _s2_image([48, 40], cbor2.CBORTag(69, _block("bslz4", 10**12))),
                                         "size_lie", None),
    "image claiming 2^31 x 2^31 pixels": ("stream2", lambda: _s2_image([1 << 31, 1 << 31],
                                                                       cbor2.CBORTag(69, _block("bslz4", 1 << 63))),
                                          "oversized", None),
    "stream1 bs16-lz4 header claiming 10^12 bytes": ("stream1", lambda: _s1_claiming(10**12), "size_lie", None),
    "array-1.0 shape 2^40 x 2^40": ("array-1.0", lambda: _a10_claiming([1 << 40, 1 << 40]), "oversized", None),
    # honest messages that are simply bigger than the configured maximum
    "real bslz4 frame above max_decompressed_bytes": (
        "stream2", lambda: enc.encode_stream2_image(0, BIG, compression="bslz4"), "oversized", TIGHT_BYTES),
    "real lz4 frame above max_decompressed_bytes": (
        "stream2", lambda: enc.encode_stream2_image(0, BIG, compression="lz4"), "oversized", TIGHT_BYTES),
    "real bslz4 frame above max_pixels": (
        "stream2", lambda: enc.encode_stream2_image(0, BIG, compression="bslz4"), "oversized", TIGHT_PIXELS),
    "real stream1 bslz4 frame above max_decompressed_bytes": (
        "stream1", lambda: enc.encode_stream1_image(3, 1, BIG), "oversized", TIGHT_BYTES),
    "real array-1.0 frame above max_pixels": (
        "array-1.0", lambda: enc.encode_array10(0, BIG), "oversized", TIGHT_PIXELS),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_bomb_is_refused_without_allocating_what_it_claims(name: str) -> None:
    fmt, build, kind, limits = BOMBS[name]
    parts = build()
    size = sum(len(p) for p in parts)
    decoder = make_decoder(fmt, limits=limits) if limits is not None else make_decoder(fmt)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(DecodeError) as info:
            decoder.decode(parts, 0.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.kind == kind, info.value
    # the message bytes are already in memory; decoding may copy a few KiB of header, never the claim
    bound = 2 * size + 2 * MiB
    assert peak < bound, f"{name}: peak {peak / MiB:.1f} MiB for a {size / MiB:.2f} MiB message"
