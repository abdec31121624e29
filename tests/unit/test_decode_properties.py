"""Property tests: arbitrary bytes and mutated valid messages never raise anything but DecodeError, never hang."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wirewatch.errors import DecodeError
from wirewatch.ingest import cbor as safe_cbor
from wirewatch.ingest import encode as enc
from wirewatch.ingest.decoders import FORMATS, make_decoder
from wirewatch.ingest.limits import ERROR_KINDS, DecodeLimits
from wirewatch.types import Frame, SeriesEnd, SeriesStart

# Small limits so that a mutation that happens to announce a big (but "valid") image stays cheap.
LIMITS = DecodeLimits(max_pixels=1 << 16, max_decompressed_bytes=1 << 20, max_message_bytes=1 << 20)
PROFILE = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow],
                   derandomize=True)
IMAGES = [np.random.default_rng(1).integers(0, 3000, (24, 40)).astype(np.uint16),
          np.random.default_rng(2).integers(0, 250, (17, 9)).astype(np.uint8)]


def _valid_messages(fmt: str) -> list[list[bytes]]:
    msgs = []
    for image in IMAGES:
        msgs += enc.encode_series(fmt, [image], pixel_size_nm=5.0)
    if fmt == "stream2":
        msgs += [enc.encode_stream2_image(0, IMAGES[0], compression=c) for c in ("lz4", None)]
    if fmt == "stream1":
        msgs += [enc.encode_stream1_image(1, 0, IMAGES[0], encoding=e) for e in ("<", "lz4<")]
    return msgs


VALID = {fmt: _valid_messages(fmt) for fmt in FORMATS}


def _decode_or_error(fmt: str, parts: list[bytes]) -> None:
    try:
        events = make_decoder(fmt, limits=LIMITS).decode(parts, 0.0)
    except DecodeError as exc:
        assert exc.kind in ERROR_KINDS, exc.kind
        return
    for event in events:  # whatever is accepted is well formed
        assert isinstance(event, Frame | SeriesStart | SeriesEnd)
        if isinstance(event, Frame):
            assert event.image.ndim == 2 and event.image.size <= LIMITS.max_pixels
            assert event.valid is None or event.valid.shape == event.image.shape


@st.composite
def mutated(draw: st.DrawFn, fmt: str) -> list[bytes]:
    parts = [bytearray(p) for p in draw(st.sampled_from(VALID[fmt]))]
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(parts) - 1))
        part = parts[i]
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "drop_part", "dup_part"]))
        pos = draw(st.integers(0, max(len(part) - 1, 0)))
        if op == "flip" and part:
            part[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and part:
            part[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x9B, 0x5B, 0xBB, 0xD8, 0x1B]))
        elif op == "truncate":
            del part[pos:]
        elif op == "insert":
            part[pos:pos] = draw(st.binary(min_size=1, max_size=9))
        elif op == "delete":
            del part[pos:pos + draw(st.integers(1, 16))]
        elif op == "drop_part" and len(parts) > 1:
            parts.pop(i)
        elif op == "dup_part":
            parts.insert(i, bytearray(part))
    return [bytes(p) for p in parts]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", FORMATS)
@PROFILE
@given(data=st.data())
def test_mutated_valid_messages_only_raise_decode_error(fmt: str, data: st.DataObject) -> None:
    _decode_or_error(fmt, data.draw(mutated(fmt)))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", FORMATS)
@PROFILE
@given(parts=st.lists(st.binary(max_size=200), min_size=0, max_size=5))
def test_arbitrary_bytes_only_raise_decode_error(fmt: str, parts: list[bytes]) -> None:
    _decode_or_error(fmt, parts)


@pytest.mark.timeout(120)
@PROFILE
@given(prefix=st.sampled_from([b"", b"\xd9\xd9\xf7", b"\xa1\x64type", b"\xd8\x28\x82\x82"]),
       body=st.binary(max_size=300))
def test_cbor_scan_and_loads_agree_on_garbage(prefix: bytes, body: bytes) -> None:
    buf = prefix + body
    try:
        safe_cbor.loads(buf, LIMITS)
    except DecodeError as exc:
        assert exc.kind in ERROR_KINDS


@pytest.mark.timeout(120)
@settings(PROFILE, max_examples=150)
@given(json_value=st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                               lambda inner: st.lists(inner, max_size=4)
                               | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20),
       key=st.sampled_from(["htype", "shape", "type", "frame", "timestamp", "pixel_size_nm", "modality",
                            "signal"]))
def test_array10_any_json_value_in_any_field(json_value: object, key: str) -> None:
    import json

    header = json.loads(enc.encode_array10(0, IMAGES[0])[0]) | {key: json_value}
    _decode_or_error("array-1.0", [json.dumps(header).encode(), IMAGES[0].tobytes()])


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("fmt", FORMATS)
@settings(PROFILE, max_examples=5000, derandomize=False)
@given(data=st.data())
def test_mutated_valid_messages_soak(fmt: str, data: st.DataObject) -> None:
    _decode_or_error(fmt, data.draw(mutated(fmt)))
