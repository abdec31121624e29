"""NTNDArray -> Frame: every supported type, RGB, codecs (ADCore bare and DECTRIS-framed blocks through the
bounded Stream V2 decoder), attributes, time stamps, series boundaries, and each malformed-update kind."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

pytest.importorskip("p4p", reason="p4p (the epics extra) is not installed")

from wirewatch.epics.ntndarray import NTNDArrayDecoder, make_ntndarray, pack_update
from wirewatch.errors import DecodeError
from wirewatch.ingest import make_decoder
from wirewatch.ingest.limits import DecodeLimits
from wirewatch.types import Frame, SeriesStart


def image(dtype: Any, h: int = 13, w: int = 21) -> np.ndarray:
    rng = np.random.default_rng(3)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=(h, w)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 60000), size=(h, w)).astype(dtype)


def decode(value: Any, decoder: NTNDArrayDecoder | None = None, **kw: Any) -> list[Any]:
    return (decoder or NTNDArrayDecoder()).decode(pack_update(value, **kw), received_at=1000.0)


def frame(value: Any, **kw: Any) -> Frame:
    events = decode(value, **kw)
    assert isinstance(events[-1], Frame)
    return events[-1]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64"])
def test_every_value_type_round_trips_with_width_as_dimension_0(dtype: str) -> None:
    img = image(dtype)
    value = make_ntndarray(img, unique_id=42, timestamp=1_700_000_000.25)
    assert [d.size for d in value.dimension] == [21, 13]  # dimension[0] is the fastest axis: the width
    f = frame(value)
    assert f.image.dtype == np.dtype(dtype) and f.image.shape == (13, 21)
    np.testing.assert_array_equal(f.image, img)
    assert f.frame_id == 42 and f.time == pytest.approx(1_700_000_000.25) and f.received_at == 1000.0


@pytest.mark.parametrize("codec", ["lz4", "bslz4"])
@pytest.mark.parametrize("framed", [False, True], ids=["adcore-bare", "hdf5-framed"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "float32"])
def test_compressed_updates_decode_exactly(codec: str, framed: bool, dtype: str) -> None:
    img = image(dtype, 64, 50)
    value = make_ntndarray(img, unique_id=1, codec=codec, framed=framed)
    assert value.codec.name == codec and value.compressedSize < img.nbytes + 64
    np.testing.assert_array_equal(frame(value).image, img)


@pytest.mark.parametrize(("mode", "layout"), [(2, (0, 1, 2)), (3, (0, 2, 1)), (4, (2, 0, 1))])
def test_rgb_becomes_grey_in_every_colour_mode(mode: int, layout: tuple[int, int, int]) -> None:
    grey = image("uint8", 12, 10)
    rgb = np.stack([grey, grey, grey], axis=-1)  # (h, w, 3) = RGB1 in numpy order
    arranged = np.ascontiguousarray(np.transpose(rgb, layout))
    value = make_ntndarray(arranged, unique_id=3, attributes={"ColorMode": mode})
    f = frame(value)
    assert f.image.shape == (12, 10) and f.image.dtype == np.uint8
    np.testing.assert_array_equal(f.image, grey)


def test_attributes_pixel_size_and_missing_time_stamp() -> None:
    value = make_ntndarray(image("uint16"), unique_id=5, attributes={"PixelSize": 0.012, "Label": "scan 7"})
    value["timeStamp"] = {"secondsPastEpoch": 0, "nanoseconds": 0}
    f = frame(value, pixel_size_attribute="PixelSize", pixel_size_scale=1000.0)
    assert f.pixel_size_nm == pytest.approx(12.0)
    assert f.meta["Label"] == "scan 7" and f.time == 1000.0  # no time stamp: the receive time
    with pytest.raises(DecodeError) as err:
        bad = make_ntndarray(image("uint16"), unique_id=5, attributes={"PixelSize": -1.0})
        frame(bad, pixel_size_attribute="PixelSize")
    assert err.value.kind == "bad_header"


def test_unique_id_going_backwards_starts_a_new_series() -> None:
    d = NTNDArrayDecoder()
    kinds = []
    for uid in (1, 2, 3, 1, 2, 7):
        kinds.append([type(e).__name__ for e in decode(make_ntndarray(image("uint8"), unique_id=uid), d)])
    assert kinds == [["SeriesStart", "Frame"], ["Frame"], ["Frame"], ["SeriesStart", "Frame"], ["Frame"], ["Frame"]]
    assert d.series_count == 2


def test_registered_in_make_decoder() -> None:
    from wirewatch.epics.source import register_decoder

    register_decoder()
    assert isinstance(make_decoder("pva", limits=DecodeLimits()), NTNDArrayDecoder)


def kind_of(value: Any, limits: DecodeLimits | None = None) -> str:
    with pytest.raises(DecodeError) as err:
        NTNDArrayDecoder(limits=limits or DecodeLimits()).decode(pack_update(value))
    return err.value.kind


def test_malformed_updates_raise_named_kinds() -> None:
    from p4p.nt import NTNDArray

    img = image("uint16", 16, 16)
    v = make_ntndarray(img, unique_id=1)
    v["dimension"] = [{"size": 16}, {"size": 17}]
    assert kind_of(v) == "bad_shape"  # value length does not match the dimensions
    v = make_ntndarray(img, unique_id=1)
    v["dimension"] = [{"size": 16}]
    assert kind_of(v) == "bad_shape"  # 1-D
    v = make_ntndarray(img, unique_id=1, codec="bslz4")
    v["codec.name"] = "jpeg"
    assert kind_of(v) == "unknown_codec"
    v = make_ntndarray(img, unique_id=1, codec="bslz4")
    v["uncompressedSize"] = img.nbytes * 2
    assert kind_of(v) == "size_lie"
    v = make_ntndarray(img, unique_id=1, codec="bslz4")
    v["compressedSize"] = 3
    assert kind_of(v) == "size_lie"
    v = make_ntndarray(img, unique_id=1, codec="lz4", framed=True)
    v["dimension"] = [{"size": 16}, {"size": 8}]  # framed block claims 512 bytes, dimensions say 256
    assert kind_of(v) in ("size_lie", "decompression")
    v = make_ntndarray(img, unique_id=1, codec="bslz4")
    garbage = b"\x00\x00\x00\x05garbage-garbage"
    v["value"] = ("ubyteValue", np.frombuffer(garbage, np.uint8))
    v["compressedSize"] = len(garbage)
    assert kind_of(v) == "decompression"
    for bad in (np.zeros((4, 4), np.uint64), np.zeros((4, 4), np.int64), np.zeros((4, 4), bool)):
        v = NTNDArray().wrap(bad)
        assert kind_of(v) == "bad_dtype", bad.dtype
    v = make_ntndarray(img, unique_id=1, codec="lz4")
    v["codec.parameters"] = 4  # int64 elements
    assert kind_of(v) == "bad_dtype"
    v = make_ntndarray(np.zeros((64, 64), np.uint8), unique_id=1)
    assert kind_of(v, DecodeLimits(max_pixels=1000)) == "oversized"
    v = make_ntndarray(np.zeros((4, 5, 3), np.uint8), unique_id=1, attributes={"ColorMode": 3})
    assert kind_of(v) == "bad_shape"  # RGB2 needs the colours in dimension[1]


def test_hostile_headers_never_crash() -> None:
    d = NTNDArrayDecoder()
    good = json.loads(pack_update(make_ntndarray(image("uint8"), unique_id=1))[0])
    for key, bad in [("uniqueId", "x"), ("uniqueId", None), ("dims", "abc"), ("dims", [0, 3]), ("dims", [1e9, 1e9]),
                     ("union", 5), ("union", "stringValue"), ("time", [1, 2, 3]), ("time", [5, -1]),
                     ("codec", 7), ("attributes", [1]), ("codec_param", "x")]:
        header = dict(good, **{key: bad})
        if key == "codec_param":
            header["codec"] = "lz4"
            header["union"] = "ubyteValue"
        with pytest.raises(DecodeError):
            d.decode([json.dumps(header).encode(), b"\x00" * 273])
    for parts in ([b"{"], [b"[]", b""], [b"not json", b""], [b"{}", b"", b""]):
        with pytest.raises(DecodeError):
            d.decode(parts)


def test_empty_placeholder_update_is_not_a_frame() -> None:
    from p4p.nt import NTNDArray
    from p4p.wrapper import Value

    from wirewatch.epics.source import _is_empty

    assert _is_empty(Value(NTNDArray.buildType(), {}))
    assert not _is_empty(make_ntndarray(image("uint8"), unique_id=1))
    assert isinstance(decode(make_ntndarray(image("uint8"), unique_id=1))[0], SeriesStart)


def test_random_headers_and_payloads_raise_only_decode_errors() -> None:
    """Property: whatever an update claims, the decoder returns a frame or raises DecodeError, never
    anything else (nor allocates beyond the limits)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    good_parts = {c: pack_update(make_ntndarray(image("uint16", 16, 16), unique_id=1, codec=c))
                  for c in ("none", "lz4", "bslz4")}
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                        st.text(max_size=12))
    values = st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(st.text(max_size=5), scalars, max_size=3))
    keys = st.sampled_from(["uniqueId", "union", "dims", "codec", "codec_param", "compressedSize", "uncompressedSize",
                            "time", "attributes", "pixel_size_attribute", "pixel_size_scale"])
    limits = DecodeLimits(max_pixels=1 << 16, max_decompressed_bytes=1 << 20)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(codec=st.sampled_from(sorted(good_parts)), changes=st.dictionaries(keys, values, max_size=4),
           cut=st.integers(0, 600), flip=st.integers(0, 10_000))
    def check(codec: str, changes: dict[str, Any], cut: int, flip: int) -> None:
        header = dict(json.loads(good_parts[codec][0]), **changes)
        payload = bytearray(good_parts[codec][1])
        if payload and flip % 3 == 0:
            payload[flip % len(payload)] ^= 0xFF
        if flip % 5 == 0:
            payload = payload[:cut]
        try:
            events = NTNDArrayDecoder(limits=limits).decode([json.dumps(header).encode(), bytes(payload)])
        except DecodeError:
            return
        f = events[-1]
        assert isinstance(f, Frame) and f.image.ndim == 2 and f.image.size <= limits.max_pixels

    check()
