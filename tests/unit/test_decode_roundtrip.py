"""Encode -> decode gives back the same pixels, ids, series events and metadata, for every format."""

from __future__ import annotations

import datetime as dt
import json

import cbor2
import numpy as np
import pytest

from wirewatch.errors import ConfigError
from wirewatch.ingest import encode as enc
from wirewatch.ingest.decoders import FORMATS, make_decoder
from wirewatch.ingest.stream2 import Stream2Decoder
from wirewatch.types import Frame, SeriesEnd, SeriesStart

DTYPES = ["uint8", "uint16", "uint32", "int16", "float32"]


def _images(dtype: str, n: int = 3, shape: tuple[int, int] = (37, 53)) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    if np.dtype(dtype).kind == "f":
        return [rng.normal(size=shape).astype(dtype) for _ in range(n)]
    hi = min(int(np.iinfo(dtype).max), 5000)
    return [rng.integers(0, hi, shape).astype(dtype) for _ in range(n)]


def _decode_all(fmt: str, messages: list[list[bytes]], **opts: object) -> list:
    decoder = make_decoder(fmt, **opts)
    out = []
    for parts in messages:
        out += decoder.decode(parts, received_at=123.0)
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_series_roundtrip_every_format_and_dtype(fmt: str, dtype: str) -> None:
    images = _images(dtype)
    events = _decode_all(fmt, enc.encode_series(fmt, images, series_id=4, first_frame=10, pixel_size_nm=12.5))
    frames = [e for e in events if isinstance(e, Frame)]
    assert [f.frame_id for f in frames] == [10, 11, 12]
    for frame, image in zip(frames, images, strict=True):
        assert frame.image.dtype == image.dtype and frame.image.shape == image.shape
        np.testing.assert_array_equal(frame.image, image)
        assert frame.pixel_size_nm == pytest.approx(12.5)
    if fmt == "array-1.0":
        assert len(events) == 3  # no series messages in array-1.0
    else:
        assert isinstance(events[0], SeriesStart) and isinstance(events[-1], SeriesEnd)
        assert events[0].pixel_size_nm == pytest.approx(12.5)
        assert events[0].series_id == events[-1].series_id == frames[0].series_id
        assert events[0].meta.get("implicit") is None


@pytest.mark.parametrize("compression", enc.STREAM2_COMPRESSIONS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (3, 3), (64, 64), (514, 1030)])
def test_stream2_compressions_and_odd_sizes(compression: str | None, shape: tuple[int, int]) -> None:
    image = np.arange(np.prod(shape), dtype=np.uint32).reshape(shape) % 70001
    (_, frame) = Stream2Decoder().decode(enc.encode_stream2_image(5, image, compression=compression), 0.0)
    np.testing.assert_array_equal(frame.image, image)


@pytest.mark.parametrize("encoding", ["<", "lz4<", "bs8-lz4<", "bs16-lz4<", "bs32-lz4<"])
def test_stream1_encodings(encoding: str) -> None:
    dtype = {"bs8-lz4<": "uint8", "bs32-lz4<": "uint32"}.get(encoding, "uint16")
    image = _images(dtype, 1, (29, 31))[0]
    events = _decode_all("stream1", [enc.encode_stream1_image(2, 9, image, encoding=encoding)])
    assert isinstance(events[0], SeriesStart) and events[0].meta["implicit"] is True  # header not seen
    np.testing.assert_array_equal(events[1].image, image)
    assert events[1].frame_id == 9 and events[1].series_id == "2"


def test_stream2_start_metadata_channels_and_time() -> None:
    arm = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    a, b = _images("uint16", 2)
    start = enc.encode_stream2_start(series_id=3, series_unique_id="U3", channels=["t2", "t1"],
                                     image_shape=a.shape, pixel_size_nm=75_000.0, arm_date=arm,
                                     beam_center=(1.5, 2.5), detector_distance=0.12)
    image = enc.encode_stream2_image(4, {"t1": a, "t2": b}, series_id=3, series_unique_id="U3", series_date=arm,
                                     start_time=(3, 2), real_time=(1, 2))
    events = _decode_all("stream2", [start, image])
    s, frame = events
    # the detector's 75 um pixel is recorded, never taken as the sample pixel (issue 44)
    assert s.series_id == "U3" and s.time == arm.timestamp() and s.pixel_size_nm is None
    assert s.meta["detector_pixel_size_nm"] == pytest.approx(75_000.0)
    assert s.meta["beam_center_x"] == 1.5 and s.meta["detector_distance"] == 0.12 and s.meta["series_number"] == 3
    # default channel: the first one named by the start message, not the first in the data map
    assert frame.meta["channel"] == "t2"
    np.testing.assert_array_equal(frame.image, b)
    assert frame.time == arm.timestamp() + 1.5
    assert frame.meta["real_time"] == (1, 2)
    assert frame.pixel_size_nm is None
    # configured channel
    (_, f1) = _decode_all("stream2", [start, image], channel="t1")
    np.testing.assert_array_equal(f1.image, a)


def test_stream2_nodata_is_masked_and_image_read_only() -> None:
    image = np.zeros((8, 9), np.uint16)
    image[2, 3] = image[7, 8] = 65535
    (_, frame) = Stream2Decoder().decode(enc.encode_stream2_image(0, image), 0.0)
    assert frame.valid is not None and frame.valid.sum() == 70
    assert not frame.valid[2, 3] and not frame.valid[7, 8]
    assert not frame.image.flags.writeable  # a view of the received bytes: copy before editing


def test_stream2_big_endian_typed_array() -> None:
    image = np.arange(12, dtype=">u2").reshape(3, 4)
    arr = cbor2.CBORTag(40, [[3, 4], cbor2.CBORTag(65, image.tobytes())])
    body = cbor2.dumps({"type": "image", "series_id": 1, "image_id": 0, "data": {"x": arr}})
    (_, frame) = Stream2Decoder().decode([body], 0.0)
    assert frame.image.dtype == np.dtype("uint16") and frame.image.dtype.isnative
    np.testing.assert_array_equal(frame.image, np.arange(12).reshape(3, 4))
    assert frame.series_id == "1"  # no series_unique_id: the series number as text


def test_stream2_new_series_without_start_and_end_resets_state() -> None:
    img = _images("uint16", 1)[0]
    dec = Stream2Decoder()
    ev = dec.decode(enc.encode_stream2_start(series_unique_id="A", image_shape=img.shape, sample_pixel_size_nm=5.0), 0)
    ev += dec.decode(enc.encode_stream2_image(0, img, series_unique_id="A"), 0)
    ev += dec.decode(enc.encode_stream2_image(0, img, series_id=2, series_unique_id="B"), 0)
    assert [type(e).__name__ for e in ev] == ["SeriesStart", "Frame", "SeriesStart", "Frame"]
    assert ev[1].pixel_size_nm == 5.0 and ev[3].pixel_size_nm is None  # B's start was not seen
    assert ev[2].series_id == "B" and ev[2].meta["implicit"] is True
    ev = dec.decode(enc.encode_stream2_end(series_id=2, series_unique_id="B"), 0)
    assert isinstance(ev[0], SeriesEnd) and dec.series is None


def test_array10_optional_fields_and_areadetector_htype() -> None:
    image = _images("uint16", 1)[0]
    parts = enc.encode_array10(7, image, timestamp=1700000000.5, pixel_size_nm=3.0, modality="stxm",
                               signal="transmission", i0=4000.0, extra={"ndattr": {"x": 1}})
    header = json.loads(parts[0])
    header["htype"] = ["array-1.0"]
    (frame,) = make_decoder("array-1.0").decode([json.dumps(header).encode(), parts[1]], 5.0)
    assert (frame.frame_id, frame.time, frame.pixel_size_nm, frame.modality, frame.signal) == \
        (7, 1700000000.5, 3.0, "stxm", "transmission")
    assert frame.received_at == 5.0 and frame.valid is None and frame.meta["i0"] == 4000.0
    np.testing.assert_array_equal(frame.image, image)


def test_array10_frame_id_going_back_starts_a_series() -> None:
    image = _images("uint8", 1)[0]
    dec = make_decoder("array-1.0")
    kinds = []
    for fid in (0, 1, 2, 0, 1):
        kinds += [type(e).__name__ for e in dec.decode(enc.encode_array10(fid, image), 0.0)]
    assert kinds == ["Frame", "Frame", "Frame", "SeriesStart", "Frame", "Frame"]


def test_is_control_classifies_without_decoding() -> None:
    img = _images("uint16", 1)[0]
    for fmt in FORMATS:
        dec = make_decoder(fmt)
        msgs = enc.encode_series(fmt, [img])
        flags = [dec.is_control(m) for m in msgs]
        assert flags == ([False] if fmt == "array-1.0" else [True, False, True])
    assert not make_decoder("stream2").is_control([b"\xff\x00garbage"])


def test_make_decoder_rejects_unknown_format() -> None:
    with pytest.raises(ConfigError, match=r"allowed: array-1\.0, stream2, stream1"):
        make_decoder("hdf5")


def test_stream2_full_header_detail_start_is_decoded_lazily() -> None:
    # header_detail "all": flatfield and pixel mask per channel, count-rate table; none is decompressed
    shape = (300, 400)
    flat = np.ones(shape, np.float32)
    mask = np.zeros(shape, np.uint32)
    mask[0, :] = 1
    extra = {"flatfield": {"threshold_1": enc._stream2_array(flat, "bslz4")},
             "pixel_mask": {"threshold_1": enc._stream2_array(mask, "lz4")},
             "countrate_correction_lookup_table": cbor2.CBORTag(70, np.arange(1000, dtype="<u4").tobytes()),
             "goniometer": {"omega": {"increment": 0.1, "start": 0.0}}, "user_data": {"sample": ["a", 1]}}
    (start,) = Stream2Decoder().decode(enc.encode_stream2_start(image_shape=shape, extra=extra), 0.0)
    assert isinstance(start, SeriesStart) and start.meta["channels"] == ("threshold_1",)


def test_a_bad_first_image_does_not_swallow_the_implicit_series_start() -> None:
    img = _images("uint16", 1)[0]
    dec = Stream2Decoder(channel="t1")
    with pytest.raises(Exception, match="not in the image message"):
        dec.decode(enc.encode_stream2_image(0, {"other": img}, series_unique_id="S"), 0.0)
    events = dec.decode(enc.encode_stream2_image(1, {"t1": img}, series_unique_id="S"), 0.0)
    assert [type(e).__name__ for e in events] == ["SeriesStart", "Frame"]


@pytest.mark.parametrize("fmt", ["stream2", "stream1"])
def test_dectris_sample_pixel_only_from_the_named_field(fmt: str) -> None:
    image = _images("uint16", 1)[0]
    if fmt == "stream2":
        start = enc.encode_stream2_start(image_shape=image.shape, pixel_size_nm=75_000.0, sample_pixel_size_nm=7.5,
                                         extra={"user_data": {"sample_pixel_size_nm": 7.5, "step_um": 0.02}})
        body = enc.encode_stream2_image(0, image)
    else:
        start = enc.encode_stream1_header(1, image_shape=image.shape, pixel_size_nm=75_000.0,
                                          extra={"user_data": {"sample_pixel_size_nm": 7.5, "step_um": 0.02}})
        body = enc.encode_stream1_image(1, 0, image)
    s, frame = _decode_all(fmt, [start, body])
    assert s.pixel_size_nm == pytest.approx(7.5) and frame.pixel_size_nm == pytest.approx(7.5)
    assert s.meta["detector_pixel_size_nm"] == pytest.approx(75_000.0)
    assert "user_data.sample_pixel_size_nm" in s.meta["pixel_size_source"]
    # a user-named field with a unit factor (um -> nm)
    s, frame = _decode_all(fmt, [start, body], sample_pixel_key="user_data.step_um", sample_pixel_scale=1000.0)
    assert frame.pixel_size_nm == pytest.approx(20.0)
    # no key: no sample pixel size at all, even though the detector pixel is known
    s, frame = _decode_all(fmt, [start, body], sample_pixel_key=None)
    assert s.pixel_size_nm is None and frame.pixel_size_nm is None
