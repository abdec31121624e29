"""Property tests for the buffer accounting, encoder/decoder round trips and capture parsing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from wirewatch.errors import DecodeError
from wirewatch.ingest import encode as enc
from wirewatch.ingest.base import RawMessage
from wirewatch.ingest.buffer import MessageBuffer
from wirewatch.ingest.capture import ZMSG_MAGIC, _read_zmsg
from wirewatch.ingest.decoders import make_decoder
from wirewatch.ingest.limits import DEFAULT_LIMITS, ERROR_KINDS
from wirewatch.types import Frame

PROFILE = settings(max_examples=100, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@PROFILE
@given(capacity=st.integers(1, 5), control_capacity=st.integers(1, 4),
       ops=st.lists(st.one_of(st.tuples(st.just("put"), st.booleans()), st.just(("get", False))), max_size=80))
def test_buffer_latest_accounting_and_order(capacity: int, control_capacity: int,
                                            ops: list[tuple[str, bool]]) -> None:
    buf = MessageBuffer(capacity, "latest", control_capacity=control_capacity)
    seq = 0
    delivered: list[RawMessage] = []
    for op, control in ops:
        if op == "put":
            buf.put(RawMessage(parts=(b"",), received_at=0.0, seq=seq, control=control))
            seq += 1
        elif (m := buf.get(timeout=0)) is not None:
            delivered.append(m)
        held = list(buf._items)
        assert sum(not m.control for m in held) <= capacity
        assert sum(m.control for m in held) <= control_capacity
    # exact accounting, arrival order kept, and only overflow reasons
    assert buf.put_count == seq == buf.get_count + sum(buf.dropped.values()) + len(buf)
    assert [m.seq for m in delivered] == sorted(m.seq for m in delivered)
    assert set(buf.dropped) <= {"overflow", "control_overflow"}
    # start/end messages are only ever dropped for their own bound, never to make room for data
    puts_control = sum(1 for op, c in ops if op == "put" and c)
    if puts_control <= control_capacity:
        assert "control_overflow" not in buf.dropped


DTYPES = st.sampled_from(["uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64"])


@st.composite
def images(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(DTYPES))
    shape = draw(st.tuples(st.integers(1, 40), st.integers(1, 40)))
    elements = (st.floats(width=32, allow_nan=False, allow_infinity=False) if dtype.kind == "f"
                else st.integers(int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)))
    return draw(hnp.arrays(dtype, shape, elements=elements))


@PROFILE
@given(image=images(), fmt=st.sampled_from(["array-1.0", "stream2", "stream1"]),
       compression=st.sampled_from(["bslz4", "lz4", None]), frame_id=st.integers(0, 2**40))
def test_any_image_roundtrips_through_every_format(image: np.ndarray, fmt: str, compression: str | None,
                                                   frame_id: int) -> None:
    if fmt == "stream2":
        parts = enc.encode_stream2_image(frame_id, image, compression=compression)
    elif fmt == "stream1":
        encoding = {"bslz4": enc.stream1_encoding_for(image.dtype), "lz4": "lz4<", None: "<"}[compression]
        parts = enc.encode_stream1_image(1, frame_id, image, encoding=encoding)
    else:
        parts = enc.encode_array10(frame_id, image)
    (frame,) = [e for e in make_decoder(fmt).decode(parts, 0.0) if isinstance(e, Frame)]
    assert frame.frame_id == frame_id and frame.image.dtype == image.dtype
    np.testing.assert_array_equal(frame.image, image)
    if fmt != "array-1.0" and image.dtype.kind in "ui":
        assert frame.valid is not None
        np.testing.assert_array_equal(~frame.valid, image == np.iinfo(image.dtype).max)


@PROFILE
@given(parts=st.lists(st.binary(max_size=50), max_size=5), cut=st.integers(0, 400), junk=st.binary(max_size=20))
def test_zmsg_parsing_never_crashes(parts: list[bytes], cut: int, junk: bytes) -> None:
    import struct

    blob = ZMSG_MAGIC + struct.pack("<I", len(parts)) + b"".join(struct.pack("<Q", len(p)) + p for p in parts)
    assert _read_zmsg(blob, DEFAULT_LIMITS, "x") == parts
    for bad in (blob[:cut], blob + junk, junk + blob):
        if bad == blob:
            continue
        try:
            _read_zmsg(bad, DEFAULT_LIMITS, "x")
        except DecodeError as exc:
            assert exc.kind in ERROR_KINDS
        else:
            pytest.fail("a damaged capture was accepted")  # pragma: no cover
