"""Every kind of bad message is a DecodeError of the right, stable kind, raised before big allocations."""

from __future__ import annotations

import json
import resource
import struct

import cbor2
import numpy as np
import pytest

from wirewatch.errors import DecodeError
from wirewatch.ingest import cbor as safe_cbor
from wirewatch.ingest import encode as enc
from wirewatch.ingest.compression import compress_bslz4, decompress_bounded
from wirewatch.ingest.decoders import make_decoder
from wirewatch.ingest.limits import ERROR_KINDS, DecodeLimits

IMG = (np.arange(48 * 40, dtype=np.uint16) % 1000).reshape(48, 40)


def kind_of(fmt: str, parts: list[bytes], **opts: object) -> str:
    with pytest.raises(DecodeError) as info:
        make_decoder(fmt, **opts).decode(parts, 0.0)
    assert info.value.kind in ERROR_KINDS
    return info.value.kind


def _a10(**changes: object) -> list[bytes]:
    header, payload = enc.encode_array10(1, IMG)
    h = json.loads(header) | changes
    return [json.dumps({k: v for k, v in h.items() if v is not None}).encode(), payload]


def _s2(msg: dict) -> list[bytes]:
    return [cbor2.dumps(msg)]


def _s2_image(**changes: object) -> dict:
    msg = cbor2.loads(enc.encode_stream2_image(0, IMG, compression=None)[0], tag_hook=lambda t, i: t)
    msg = dict(msg)
    msg.update(changes)
    return msg


def _block(alg: str, claimed: int, payload: bytes = b"\x00" * 8) -> cbor2.CBORTag:
    return cbor2.CBORTag(56500, [alg, 2 if alg == "bslz4" else 0, struct.pack(">QI", claimed, 8192) + payload])


def _mda(dims: list, inner: object) -> cbor2.CBORTag:
    return cbor2.CBORTag(40, [dims, inner])


# ------------------------------------------------------------------ array-1.0
@pytest.mark.parametrize(("parts", "kind"), [
    (lambda: [_a10()[0], _a10()[1][:-2]], "truncated"),
    (lambda: [_a10()[0], _a10()[1] + b"\0\0"], "size_lie"),
    (lambda: _a10(type="complex128"), "bad_dtype"),
    (lambda: _a10(type="object"), "bad_dtype"),
    (lambda: _a10(shape=[48]), "bad_shape"),
    (lambda: _a10(shape=[48, 0]), "bad_shape"),
    (lambda: _a10(shape=[48, -40]), "bad_shape"),
    (lambda: _a10(shape=[48.0, 40]), "bad_shape"),
    (lambda: _a10(shape=[1 << 40, 1 << 40]), "oversized"),
    (lambda: _a10(htype="array-2.0"), "unknown_type"),
    (lambda: _a10(htype=None), "bad_header"),
    (lambda: _a10(frame=-1), "bad_header"),
    (lambda: _a10(frame=True), "bad_header"),
    (lambda: _a10(frame="3"), "bad_header"),
    (lambda: _a10(timestamp="now"), "bad_header"),
    (lambda: _a10(pixel_size_nm=0), "bad_header"),
    (lambda: _a10(signal="phase"), "bad_header"),
    (lambda: _a10(i0=-5), "bad_header"),
    (lambda: _a10(i0="bright"), "bad_header"),
    (lambda: _a10(modality="x" * 1000), "bad_header"),
    (lambda: [b"{not json", _a10()[1]], "bad_header"),
    (lambda: [b"[1, 2]", _a10()[1]], "bad_header"),
    (lambda: [b"\xff\xfe", _a10()[1]], "bad_header"),
    (lambda: [b"[" * 100000, _a10()[1]], "bad_header"),
    (lambda: [_a10()[0].replace(b'"frame": 1', b'"frame": NaN'), _a10()[1]], "bad_header"),
    (lambda: _a10()[:1], "bad_header"),
    (lambda: [*_a10(), b"x"], "bad_header"),
    (lambda: [b" " * (2 << 20), b""], "oversized"),
])
def test_array10_bad_messages(parts: object, kind: str) -> None:
    assert kind_of("array-1.0", parts()) == kind  # type: ignore[operator]


def test_array10_nan_timestamp_is_refused() -> None:
    header = json.loads(_a10()[0]) | {"timestamp": float("nan")}
    assert kind_of("array-1.0", [json.dumps(header).encode(), _a10()[1]]) == "bad_header"


def test_message_size_limit() -> None:
    limits = DecodeLimits(max_message_bytes=1000)
    assert kind_of("array-1.0", _a10(), limits=limits) == "oversized"
    assert kind_of("stream2", enc.encode_stream2_image(0, IMG, compression=None), limits=limits) == "oversized"
    assert kind_of("stream1", enc.encode_stream1_image(1, 0, IMG, encoding="<"), limits=limits) == "oversized"
    assert kind_of("array-1.0", [b"{}"] * 17) == "oversized"  # max_parts


# ------------------------------------------------------------------ Stream V2
@pytest.mark.parametrize(("body", "kind"), [
    (b"", "truncated"),
    (b"\xff\xff\xff", "bad_cbor"),
    (b"garbage that is not cbor", "bad_cbor"),
    (cbor2.dumps({"type": "image"}) + b"\x00", "bad_cbor"),  # trailing bytes
    (b"\x9b" + (10**12).to_bytes(8, "big"), "truncated"),  # array claiming 10^12 elements
    (b"\xbb" + (10**12).to_bytes(8, "big"), "truncated"),  # map claiming 10^12 pairs
    (b"\x5b" + (10**12).to_bytes(8, "big") + b"abc", "truncated"),  # byte string claiming 1 TB
    (b"\x81" * 1000 + b"\x00", "bad_cbor"),  # deeply nested arrays
    (b"\xd8\x28" * 1000 + b"\x00", "bad_cbor"),  # deeply nested tags
    (b"\x9f" * 1000 + b"\xff" * 1000, "bad_cbor"),  # deeply nested indefinite arrays
    (b"\x80" * 3, "bad_cbor"),
    (b"\x9c", "bad_cbor"),  # reserved additional information
    (b"\xf8\x10", "bad_cbor"),  # invalid two-byte simple value
    (b"\xd8\x1c\x81\xd8\x1d\x00", "bad_cbor"),  # value sharing (cycles)
    (b"\xd9\x01\x00\x80", "bad_cbor"),  # string references
    (cbor2.dumps([0] * 300_000), "bad_cbor"),  # too many items
    (cbor2.dumps([1, 2]), "bad_header"),  # not a map
    (cbor2.dumps({"type": "calibration"}), "unknown_type"),
    (cbor2.dumps({"kind": "image"}), "unknown_type"),
    (cbor2.dumps({"type": "end"}), "bad_header"),  # no series_id
    (cbor2.dumps({"type": "end", "series_id": -3}), "bad_header"),
    (cbor2.dumps({"type": "end", "series_id": 1, "series_unique_id": 5}), "bad_header"),
])
def test_stream2_bad_bodies(body: bytes, kind: str) -> None:
    assert kind_of("stream2", [body]) == kind


@pytest.mark.parametrize(("changes", "kind"), [
    ({"image_id": -1}, "bad_header"),
    ({"image_id": "0"}, "bad_header"),
    ({"data": {}}, "bad_header"),
    ({"data": [1, 2]}, "bad_header"),
    ({"data": {"t": b"raw bytes"}}, "bad_header"),
    ({"real_time": [1, 0]}, "bad_header"),
    ({"series_date": "yesterday"}, "bad_header"),
    ({"data": {"t": _mda([48, 40], cbor2.CBORTag(69, b"\0" * 100))}}, "truncated"),
    ({"data": {"t": _mda([48, 40], cbor2.CBORTag(69, b"\0" * 5000))}}, "size_lie"),
    ({"data": {"t": _mda([48, 40, 2], cbor2.CBORTag(69, b"\0" * 7680))}}, "bad_shape"),
    ({"data": {"t": _mda([48, 0], cbor2.CBORTag(69, b""))}}, "bad_shape"),
    ({"data": {"t": _mda([48, -1], cbor2.CBORTag(69, b""))}}, "bad_shape"),
    ({"data": {"t": _mda([1 << 31, 1 << 31], cbor2.CBORTag(69, b""))}}, "oversized"),
    ({"data": {"t": _mda([2, 2], [1, 2, 3, 4])}}, "bad_dtype"),  # plain array, not a typed array
    ({"data": {"t": _mda([2, 2], cbor2.CBORTag(84, b"\0" * 8))}}, "bad_dtype"),  # float16
    ({"data": {"t": _mda([2, 2], cbor2.CBORTag(87, b"\0" * 64))}}, "bad_dtype"),  # float128
    ({"data": {"t": _mda([2, 2], cbor2.CBORTag(71, b"\0" * 32))}}, "bad_dtype"),  # uint64
    ({"data": {"t": _mda([2, 2], cbor2.CBORTag(69, "text"))}}, "bad_header"),
    ({"data": {"t": cbor2.CBORTag(40, [[2, 2]])}}, "bad_header"),
    # compression: the claimed decompressed size is checked BEFORE decompressing
    ({"data": {"t": _mda([48, 40], cbor2.CBORTag(69, _block("bslz4", 10**12)))}}, "size_lie"),
    ({"data": {"t": _mda([48, 40], cbor2.CBORTag(69, _block("bslz4", 3 << 30)))}}, "size_lie"),
    ({"data": {"t": _mda([48, 40], cbor2.CBORTag(69, _block("lz4", 3841)))}}, "size_lie"),
    ({"data": {"t": _mda([48, 40], cbor2.CBORTag(69, _block("bslz4", 3840)))}}, "decompression"),
    ({"data": {"t": _mda([48, 40], cbor2.CBORTag(69, _block("lz4", 3840, b"\xff" * 40)))}}, "decompression"),
    ({"data": {"t": _mda([48, 40], cbor2.CBORTag(69, _block("zstd", 3840)))}}, "unknown_type"),
    ({"data": {"t": _mda([48, 40], cbor2.CBORTag(69, cbor2.CBORTag(56500, ["bslz4", 2])))}}, "bad_header"),
    ({"data": {"t": _mda([48, 40], cbor2.CBORTag(69, cbor2.CBORTag(56500, ["bslz4", 4, b"\0" * 12])))}},
     "bad_header"),  # element size disagrees with uint16
    ({"data": {"t": _mda([48, 40], cbor2.CBORTag(69, cbor2.CBORTag(56500, ["lz4", 0, b"\0" * 5])))}},
     "truncated"),
])
def test_stream2_bad_image_messages(changes: dict, kind: str) -> None:
    assert kind_of("stream2", _s2(_s2_image(**changes))) == kind


def test_stream2_corrupt_bslz4_payload_of_the_right_claimed_size() -> None:
    good = compress_bslz4(IMG.tobytes(), 2)
    bad = good[:12] + bytes(b ^ 0x5A for b in good[12:])
    tag = _mda([48, 40], cbor2.CBORTag(69, cbor2.CBORTag(56500, ["bslz4", 2, bad])))
    assert kind_of("stream2", _s2(_s2_image(data={"t": tag}))) == "decompression"


def test_stream2_shape_must_match_the_start_message() -> None:
    dec = make_decoder("stream2")
    dec.decode(enc.encode_stream2_start(image_shape=(10, 10)), 0.0)
    with pytest.raises(DecodeError) as info:
        dec.decode(enc.encode_stream2_image(0, IMG), 0.0)
    assert info.value.kind == "bad_shape" and "[10, 10]" in str(info.value)


def test_stream2_dtype_must_match_the_start_message() -> None:
    dec = make_decoder("stream2")
    dec.decode(enc.encode_stream2_start(image_shape=IMG.shape, image_dtype="uint32"), 0.0)
    with pytest.raises(DecodeError) as info:
        dec.decode(enc.encode_stream2_image(0, IMG), 0.0)
    assert info.value.kind == "bad_dtype" and "uint32" in str(info.value)


@pytest.mark.parametrize(("extra", "kind"), [
    ({"image_dtype": "complex64"}, "bad_dtype"),
    ({"image_size_x": 0, "image_size_y": 10}, "bad_header"),
    ({"image_size_x": 1 << 20, "image_size_y": 1 << 20}, "oversized"),
    ({"pixel_size_x": -1.0}, "bad_header"),
    ({"channels": "threshold_1"}, "bad_header"),
    ({"channels": [1, 2]}, "bad_header"),
    ({"arm_date": 12}, "bad_header"),
    ({"count_time": "fast"}, "bad_header"),
])
def test_stream2_bad_start_messages(extra: dict, kind: str) -> None:
    assert kind_of("stream2", enc.encode_stream2_start(extra=extra)) == kind


def test_decompression_bound_holds_before_allocation() -> None:
    # A block claiming 10^12 bytes for an array that needs 10^12 bytes: refused by max_decompressed_bytes,
    # without the allocation that dectris.compression would attempt.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DecodeError) as info:
        decompress_bounded(struct.pack(">QI", 10**12, 8192) + b"\0" * 16, "bslz4", 2, 10**12)
    assert info.value.kind == "oversized"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB


def test_cbor_scan_counts_items_without_building() -> None:
    assert safe_cbor.scan(cbor2.dumps({"a": [1, 2, {"b": b"xyz"}]})) == 8
    assert safe_cbor.scan(b"\x9f\x01\x02\xff") == 3
    assert safe_cbor.scan(b"\x5f\x41a\x41b\xff") == 3  # indefinite byte string in chunks


# ------------------------------------------------------------------ Stream V1
def _s1_image(**desc_changes: object) -> list[bytes]:
    parts = enc.encode_stream1_image(3, 1, IMG)
    desc = json.loads(parts[1]) | desc_changes
    return [parts[0], json.dumps(desc).encode(), *parts[2:]]


def _raw_s1(blob: bytes) -> list[bytes]:
    parts = enc.encode_stream1_image(3, 1, IMG, encoding="<")
    return [parts[0], json.dumps(json.loads(parts[1]) | {"size": len(blob)}).encode(), blob]


@pytest.mark.parametrize(("parts", "kind"), [
    (lambda: [], "truncated"),
    (lambda: [b'{"htype": "dimage-1.0", "series": 1, "frame": 0}'], "truncated"),
    (lambda: [b'{"htype": "dflatfield-1.0", "series": 1}'], "unknown_type"),
    (lambda: [b'{"htype": "dheader-1.0"}'], "bad_header"),
    (lambda: [b'{"htype": "dheader-1.0", "series": 1, "header_detail": "most"}'], "bad_header"),
    (lambda: [b'{"htype": "dheader-1.0", "series": 1}', b'{"x_pixel_size": "big"}'], "bad_header"),
    (lambda: _s1_image(encoding="bs64-zstd<"), "bad_header"),
    (lambda: _s1_image(encoding="bs32-lz4<"), "bad_header"),  # disagrees with uint16
    (lambda: _s1_image(type="float16"), "bad_dtype"),
    (lambda: _s1_image(shape=[40]), "bad_shape"),
    (lambda: _s1_image(size=10), "size_lie"),
    (lambda: _s1_image(size=10**9), "truncated"),
    (lambda: _s1_image(htype="dimage_x-1.0"), "unknown_type"),
    (lambda: _s1_image(shape=[400, 480]), "size_lie"),
    (lambda: [*enc.encode_stream1_image(3, 1, IMG, encoding="<")[:2], b"\0" * 10, b"{}"], "truncated"),
    (lambda: [*enc.encode_stream1_image(3, 1, IMG, encoding="lz4<")[:2], b"\xff" * 10], "truncated"),
    (lambda: _raw_s1(b"\0" * 10), "truncated"),
    (lambda: _raw_s1(b"\0" * 4000), "size_lie"),
])
def test_stream1_bad_messages(parts: object, kind: str) -> None:
    assert kind_of("stream1", parts()) == kind  # type: ignore[operator]


def test_stream1_corrupt_raw_lz4_block() -> None:
    parts = enc.encode_stream1_image(3, 1, IMG, encoding="lz4<")
    bad = bytes(b ^ 0xA5 for b in parts[2])
    desc = json.loads(parts[1]) | {"size": len(bad)}
    assert kind_of("stream1", [parts[0], json.dumps(desc).encode(), bad]) == "decompression"


def test_stream1_shape_must_match_the_header() -> None:
    dec = make_decoder("stream1")
    dec.decode(enc.encode_stream1_header(3, image_shape=(10, 10)), 0.0)
    with pytest.raises(DecodeError) as info:
        dec.decode(enc.encode_stream1_image(3, 0, IMG), 0.0)
    assert info.value.kind == "bad_shape"


def test_good_frames_keep_flowing_after_bad_ones() -> None:
    dec = make_decoder("stream2")
    good = enc.encode_stream2_image(0, IMG)
    for body in (b"garbage", b"\x9b" + (10**12).to_bytes(8, "big"), good[0][:-5]):
        with pytest.raises(DecodeError):
            dec.decode([body], 0.0)
    events = dec.decode(good, 0.0)
    np.testing.assert_array_equal(events[-1].image, IMG)
