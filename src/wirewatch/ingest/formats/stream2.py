"""DECTRIS Stream V2: one CBOR map per message, ``type`` start / image / end.

The start message gives the series' channels and image size. Its ``pixel_size_x`` is the
*detector's* pixel (75 um on an EIGER2), not the sample's: it is kept in ``meta`` as
``detector_pixel_size_nm`` and never used for measurements. The sample pixel size is read only from
the start-message field the user names (``sample_pixel_key``, a dotted path, default
``user_data.sample_pixel_size_nm``), else the frame has none. Image messages carry ``data``: channel name -> tag
40 array whose typed array may be DECTRIS-compressed (tag 56500). Only the
selected channel is decompressed. Pixels equal to the dtype's maximum are
NODATA (``Frame.valid`` False there). An image from a series whose start was
not seen (we connected late) is preceded by an implicit ``SeriesStart``.

Ids: ``Frame.series_id`` / ``SeriesStart.series_id`` is the detector's
``series_unique_id`` (unique across arms); the plain series number is in
``meta['series_number']``. ``Frame.frame_id`` is ``image_id``.

Control messages are told apart without decompression or a full parse: the spec puts ``type`` first
in the map, so a message's first few dozen bytes say what it is (``stream2_type``). The encoders wrap
each message in the self-described tag 55799 as a DECTRIS detector sends it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wirewatch.errors import DecodeError
from wirewatch.ingest import _fields as f
from wirewatch.ingest import cbor
from wirewatch.ingest.base import Parts
from wirewatch.ingest.compression import compress
from wirewatch.ingest.formats.base import StreamFormat
from wirewatch.ingest.formats.common import (
    DEFAULT_SAMPLE_PIXEL_KEY,
    METRES_TO_NM,
    channel_summary,
    le_bytes,
    nodata_value,
    valid_mask,
)
from wirewatch.ingest.limits import DEFAULT_LIMITS, DecodeLimits, check_dtype, check_message_size
from wirewatch.types import Frame, SeriesEnd, SeriesStart, StreamEvent

__all__ = ["DEFAULT_SAMPLE_PIXEL_KEY", "FORMAT", "METRES_TO_NM", "STREAM2", "SeriesInfo", "Stream2Decoder",
           "Stream2Format", "channel_arrays", "encode_stream2_end", "encode_stream2_image", "encode_stream2_start",
           "nodata_value", "read_message", "stream2_type", "valid_mask"]

FORMAT = "stream2"
MESSAGE_TYPES = ("start", "image", "end")
# Start-message scalars copied into SeriesStart.meta when present and well-typed.
_START_META_NUMBERS = ("beam_center_x", "beam_center_y", "count_time", "frame_time", "detector_distance",
                       "incident_energy", "incident_wavelength", "sensor_thickness", "saturation_value",
                       "number_of_images", "pixel_size_x", "pixel_size_y")
_START_META_TEXT = ("detector_description", "detector_serial_number", "sensor_material")
_SELF_DESCRIBED = b"\xd9\xd9\xf7"
_TYPE_KEY = b"\x64type"
# numpy dtype name -> RFC 8746 little-endian typed-array tag
TYPED_ARRAY_TAG_LE: dict[str, int] = {"uint8": 64, "uint16": 69, "uint32": 70, "uint64": 71, "int8": 72,
                                      "int16": 77, "int32": 78, "int64": 79, "float32": 85, "float64": 86}
STREAM2_COMPRESSIONS: tuple[str | None, ...] = ("bslz4", "lz4", None)


def stream2_type(body: bytes) -> str | None:
    """``start`` / ``image`` / ``end`` read from the message prefix, or None if it does not look like one."""
    pos = 3 if body[:3] == _SELF_DESCRIBED else 0
    if pos >= len(body):
        return None
    initial = body[pos]
    if initial >> 5 != 5:  # not a map
        return None
    info = initial & 0x1F
    pos += 1 + {24: 1, 25: 2, 26: 4, 27: 8}.get(info, 0)
    if body[pos:pos + 5] != _TYPE_KEY:
        return None
    pos += 5
    if pos >= len(body) or body[pos] >> 5 != 3 or body[pos] & 0x1F >= 24:
        return None
    length = body[pos] & 0x1F
    try:
        return body[pos + 1:pos + 1 + length].decode("ascii")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class SeriesInfo:
    """What a start message told us about the series."""

    unique_id: str
    number: int
    channels: tuple[str, ...] = ()
    image_shape: tuple[int, int] | None = None  # (height, width) = (image_size_y, image_size_x)
    pixel_size_nm: float | None = None
    dtype: str | None = None  # start message image_dtype
    announced: bool = True  # False when inferred from an image (start message not seen)


def _series_ids(msg: Mapping[str, Any]) -> tuple[int, str]:
    number = f.integer(f.require(msg, "series_id", "stream2 message"), "series_id")
    unique = msg.get("series_unique_id")
    unique_id = f.text(unique, "series_unique_id") if unique is not None else str(number)
    return number, unique_id


def _timestamp(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    raise DecodeError("bad_header", f"field {name!r} must be a CBOR date/time (tag 0), got {type(value).__name__}")


def read_message(buf: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> Mapping[str, Any]:
    """Parse one Stream V2 message to a mapping with a validated ``type``; arrays stay lazy."""
    msg = cbor.as_mapping(cbor.loads(buf, limits), "stream2 message")
    kind = msg.get("type")
    if kind not in MESSAGE_TYPES:
        raise DecodeError("unknown_type", f"stream2 message type {kind!r} is not one of {', '.join(MESSAGE_TYPES)}")
    return msg


def channel_arrays(msg: Mapping[str, Any]) -> dict[str, cbor.MultiDimArray]:
    """The image message's ``data`` map, validated: channel name -> lazy 2-D array."""
    data = cbor.as_mapping(f.require(msg, "data", "stream2 image message"), "stream2 'data'")
    if not data:
        raise DecodeError("bad_header", "stream2 image message has no channels in 'data'")
    out: dict[str, cbor.MultiDimArray] = {}
    for name, arr in data.items():
        f.text(name, "channel name")
        if not isinstance(arr, cbor.MultiDimArray):
            raise DecodeError("bad_header", f"channel {name!r} is not a multi-dimensional array (tag 40)")
        if len(arr.dims) != 2:
            raise DecodeError("bad_shape", f"channel {name!r} has {len(arr.dims)} dimensions, expected 2")
        out[name] = arr
    return out


class Stream2Decoder:
    """Stateful decoder of one DECTRIS Stream V2 stream."""

    format_name = FORMAT

    def __init__(self, *, channel: str | None = None, limits: DecodeLimits = DEFAULT_LIMITS,
                 sample_pixel_key: str | None = DEFAULT_SAMPLE_PIXEL_KEY, sample_pixel_scale: float = 1.0) -> None:
        self.channel = channel
        self.limits = limits
        self.sample_pixel_key, self.sample_pixel_scale = sample_pixel_key, sample_pixel_scale
        self.series: SeriesInfo | None = None

    def is_control(self, parts: Parts) -> bool:
        return STREAM2.is_control(parts)

    def decode(self, parts: Parts, received_at: float | None = None) -> list[StreamEvent]:
        received_at = time.time() if received_at is None else received_at
        check_message_size(list(parts), self.limits)
        if len(parts) != 1:
            raise DecodeError("bad_header", f"stream2 messages have exactly 1 part, got {len(parts)}")
        msg = read_message(parts[0], self.limits)
        kind = msg["type"]
        if kind == "start":
            return [self._start(msg, received_at)]
        if kind == "end":
            return [self._end(msg, received_at)]
        return self._image(msg, received_at)

    def _start(self, msg: Mapping[str, Any], received_at: float) -> SeriesStart:
        number, unique_id = _series_ids(msg)
        channels: tuple[str, ...] = ()
        if msg.get("channels") is not None:
            raw = msg["channels"]
            if not isinstance(raw, list | tuple) or len(raw) > 64:
                raise DecodeError("bad_header", "field 'channels' must be a list of at most 64 names")
            channels = tuple(f.text(c, "channels[]") for c in raw)
        shape = None
        if msg.get("image_size_x") is not None or msg.get("image_size_y") is not None:
            width = f.integer(f.require(msg, "image_size_x", "stream2 start"), "image_size_x", minimum=1)
            height = f.integer(f.require(msg, "image_size_y", "stream2 start"), "image_size_y", minimum=1)
            if width * height > self.limits.max_pixels:
                raise DecodeError("oversized", f"image size {width} x {height} is above max_pixels="
                                               f"{self.limits.max_pixels}")
            shape = (height, width)
        pixel_size_nm = f.sample_pixel_size(msg, self.sample_pixel_key, self.sample_pixel_scale)
        dtype = None
        if msg.get("image_dtype") is not None:
            dtype = check_dtype(msg["image_dtype"]).name
        arm_time = _timestamp(msg.get("arm_date"), "arm_date")
        meta: dict[str, Any] = {"format": FORMAT, "series_number": number, "channels": channels}
        for key in _START_META_NUMBERS:
            if msg.get(key) is not None:
                meta[key] = f.number(msg[key], key)
        for key in _START_META_TEXT:
            if isinstance(msg.get(key), str):
                meta[key] = f.text(msg[key], key)
        if msg.get("pixel_size_x") is not None:  # the detector's pixel: recorded, never measured with
            meta["detector_pixel_size_nm"] = f.number(msg["pixel_size_x"], "pixel_size_x", positive=True) * METRES_TO_NM
        if pixel_size_nm is not None:
            meta["pixel_size_source"] = f"start message field {self.sample_pixel_key}"
        self.series = SeriesInfo(unique_id, number, channels, shape, pixel_size_nm, dtype)
        return SeriesStart(series_id=unique_id, time=arm_time if arm_time is not None else received_at,
                           pixel_size_nm=pixel_size_nm, meta=meta)

    def _end(self, msg: Mapping[str, Any], received_at: float) -> SeriesEnd:
        _number, unique_id = _series_ids(msg)
        if self.series is not None and self.series.unique_id == unique_id:
            self.series = None
        return SeriesEnd(series_id=unique_id, time=received_at)

    def _image(self, msg: Mapping[str, Any], received_at: float) -> list[StreamEvent]:
        number, unique_id = _series_ids(msg)
        image_id = f.integer(f.require(msg, "image_id", "stream2 image message"), "image_id")
        real_time = cbor.rational(msg.get("real_time"), "real_time")
        start_time = cbor.rational(msg.get("start_time"), "start_time")
        series_date = _timestamp(msg.get("series_date"), "series_date")
        arrays = channel_arrays(msg)

        events: list[StreamEvent] = []
        series = self.series
        if series is None or series.unique_id != unique_id:
            # committed to self.series only once the image decoded, so a bad first image cannot
            # swallow the implicit SeriesStart
            series = SeriesInfo(unique_id, number, announced=False)
            events.append(SeriesStart(series_id=unique_id, time=series_date or received_at, pixel_size_nm=None,
                                      meta={"format": FORMAT, "series_number": number, "implicit": True}))
        name = self._select_channel(arrays, series)
        arr = arrays[name]
        if series.image_shape is not None and arr.dims != series.image_shape:
            raise DecodeError("bad_shape", f"channel {name!r} has shape {list(arr.dims)}, the start message "
                                           f"announced {list(series.image_shape)}")
        if series.dtype is not None and arr.dtype.name != series.dtype:
            raise DecodeError("bad_dtype", f"channel {name!r} holds {arr.dtype.name}, the start message "
                                           f"announced {series.dtype}")
        image = arr.to_numpy(self.limits)
        acquired = received_at
        if series_date is not None and start_time is not None:
            acquired = series_date + start_time[0] / start_time[1]
        meta: dict[str, Any] = {"format": FORMAT, "channel": name, "channels": tuple(arrays),
                                "series_number": number, "image_id": image_id}
        if real_time is not None:
            meta["real_time"] = real_time
        self.series = series
        events.append(Frame(frame_id=image_id, image=image, time=acquired, series_id=unique_id,
                            pixel_size_nm=series.pixel_size_nm, modality="xray-detector", signal="intensity",
                            valid=valid_mask(image), received_at=received_at, meta=meta))
        return events

    def _select_channel(self, arrays: Mapping[str, cbor.MultiDimArray], series: SeriesInfo) -> str:
        if self.channel is not None:
            if self.channel not in arrays:
                raise DecodeError("unknown_channel", f"channel {self.channel!r} is not in the image message; it has "
                                                     f"{', '.join(arrays)}")
            return self.channel
        for name in series.channels:
            if name in arrays:
                return name
        return next(iter(arrays))


# ---------------------------------------------------------------- encoders (simulator, tests)

def _cbor(obj: Any) -> bytes:
    import cbor2

    return cbor2.dumps(cbor2.CBORTag(55799, obj))


def _stream2_array(image: np.ndarray, compression: str | None) -> Any:
    import cbor2

    if image.ndim != 2:
        raise ValueError(f"stream2 channel must be 2-D, got shape {image.shape}")
    tag = TYPED_ARRAY_TAG_LE.get(image.dtype.name)
    if tag is None:
        raise ValueError(f"no typed-array tag for {image.dtype.name}; use one of {', '.join(TYPED_ARRAY_TAG_LE)}")
    raw = le_bytes(image)
    if compression is None:
        payload: Any = raw
    elif compression in ("bslz4", "lz4"):
        elem = image.dtype.itemsize if compression == "bslz4" else 0
        payload = cbor2.CBORTag(56500, [compression, elem, compress(raw, compression, image.dtype.itemsize)])
    else:
        raise ValueError(f"unknown compression {compression!r}; allowed: bslz4, lz4, None")
    return cbor2.CBORTag(40, [[int(image.shape[0]), int(image.shape[1])], cbor2.CBORTag(tag, payload)])


def encode_stream2_start(*, series_id: int = 1, series_unique_id: str = "wirewatch-series-1",
                         channels: Sequence[str] = ("threshold_1",), image_shape: tuple[int, int] = (512, 512),
                         image_dtype: str = "uint16", pixel_size_nm: float | None = 75_000.0,
                         arm_date: dt.datetime | None = None, count_time: float = 0.001,
                         frame_time: float = 0.001, number_of_images: int = 1,
                         beam_center: tuple[float, float] | None = None, detector_distance: float | None = None,
                         sample_pixel_size_nm: float | None = None,
                         extra: Mapping[str, Any] | None = None) -> list[bytes]:
    """A start message (``type: start``).

    ``pixel_size_nm`` is the detector's pixel (written in metres as ``pixel_size_x`` as the spec says);
    ``sample_pixel_size_nm`` the sample's, written as ``user_data.sample_pixel_size_nm`` (where the
    decoder looks by default).
    """
    h, w = image_shape
    msg: dict[str, Any] = {
        "type": "start",
        "arm_date": arm_date or dt.datetime.now(dt.UTC),
        "channels": list(channels),
        "count_time": float(count_time),
        "frame_time": float(frame_time),
        "image_dtype": image_dtype,
        "image_size_x": int(w),
        "image_size_y": int(h),
        "number_of_images": int(number_of_images),
        "saturation_value": int(np.iinfo(image_dtype).max) - 1 if np.dtype(image_dtype).kind == "u" else 0,
        "series_id": int(series_id),
        "series_unique_id": series_unique_id,
    }
    if pixel_size_nm is not None:
        msg["pixel_size_x"] = msg["pixel_size_y"] = pixel_size_nm * 1e-9
    if sample_pixel_size_nm is not None:
        msg["user_data"] = {"sample_pixel_size_nm": float(sample_pixel_size_nm)}
    if beam_center is not None:
        msg["beam_center_x"], msg["beam_center_y"] = float(beam_center[0]), float(beam_center[1])
    if detector_distance is not None:
        msg["detector_distance"] = float(detector_distance)
    if extra:
        msg.update(extra)
    return [_cbor(msg)]


def encode_stream2_image(image_id: int, channels: Mapping[str, np.ndarray] | np.ndarray, *, series_id: int = 1,
                         series_unique_id: str = "wirewatch-series-1", compression: str | None = "bslz4",
                         series_date: dt.datetime | None = None, start_time: tuple[int, int] | None = None,
                         real_time: tuple[int, int] = (1, 1000), user_data: Any = None) -> list[bytes]:
    """An image message; a bare array is sent as channel ``threshold_1``."""
    if isinstance(channels, np.ndarray):
        channels = {"threshold_1": channels}
    start = start_time if start_time is not None else (int(image_id) * real_time[0], real_time[1])
    msg: dict[str, Any] = {
        "type": "image",
        "series_id": int(series_id),
        "series_unique_id": series_unique_id,
        "image_id": int(image_id),
        "real_time": list(real_time),
        "series_date": series_date or dt.datetime.now(dt.UTC),
        "start_time": list(start),
        "stop_time": [start[0] + real_time[0], start[1]],
        "user_data": user_data,
        "data": {name: _stream2_array(img, compression) for name, img in channels.items()},
    }
    return [_cbor(msg)]


def encode_stream2_end(*, series_id: int = 1, series_unique_id: str = "wirewatch-series-1") -> list[bytes]:
    return [_cbor({"type": "end", "series_id": int(series_id), "series_unique_id": series_unique_id})]


class Stream2Writer:
    """Series writer: start, images (one channel, ``threshold_1``), end; the sample pixel size in the start."""

    def __init__(self, *, series_id: int, series_unique_id: str, pixel_size_nm: float | None,
                 compression: str | None = "bslz4") -> None:
        self.series_id, self.uid, self.pixel_size_nm = series_id, series_unique_id, pixel_size_nm
        self.compression = compression

    def start(self, shape: tuple[int, int], dtype: str, count: int) -> list[list[bytes]]:
        return [encode_stream2_start(series_id=self.series_id, series_unique_id=self.uid, image_shape=shape,
                                     image_dtype=dtype, sample_pixel_size_nm=self.pixel_size_nm,
                                     number_of_images=count)]

    def image(self, frame: int, image: np.ndarray, *, time: float | None = None) -> list[bytes]:
        return encode_stream2_image(frame, image, series_id=self.series_id, series_unique_id=self.uid,
                                    compression=self.compression)

    def end(self) -> list[list[bytes]]:
        return [encode_stream2_end(series_id=self.series_id, series_unique_id=self.uid)]


# ---------------------------------------------------------------- the format

class Stream2Format(StreamFormat):
    name = FORMAT
    summary = "DECTRIS Stream V2 (SIMPLON 1.8+): one CBOR message per start / image / end"
    decoder_options = frozenset({"channel", "sample_pixel_key", "sample_pixel_scale"})
    reserves_nodata = True
    capture_suffix = ".cbor"
    compressions = STREAM2_COMPRESSIONS

    def decoder(self, *, limits: DecodeLimits = DEFAULT_LIMITS, **options: Any) -> Stream2Decoder:
        return Stream2Decoder(limits=limits, **options)

    def is_control(self, parts: Parts) -> bool:
        return len(parts) == 1 and stream2_type(parts[0]) in ("start", "end")

    def writer(self, *, series_id: int = 1, series_unique_id: str | None = None,
               pixel_size_nm: float | None = None, signal: str | None = None, i0: float | None = None,
               modality: str | None = None, **options: Any) -> Stream2Writer:
        uid = series_unique_id or f"wirewatch-series-{series_id}"
        return Stream2Writer(series_id=series_id, series_unique_id=uid, pixel_size_nm=pixel_size_nm, **options)

    def describe(self, parts: list[bytes], limits: DecodeLimits) -> dict[str, Any]:
        if len(parts) != 1:
            raise DecodeError("bad_header", f"stream2 messages have exactly 1 part, got {len(parts)}")
        msg = read_message(parts[0], limits)
        out: dict[str, Any] = {"type": msg["type"]}
        for key in ("series_id", "series_unique_id"):
            if key in msg:
                out[key] = msg[key]
        if msg["type"] == "start":
            for key in ("image_size_x", "image_size_y", "pixel_size_x", "pixel_size_y", "image_dtype"):
                if key in msg and isinstance(msg[key], int | float | str):
                    out[key] = msg[key]
            if isinstance(msg.get("channels"), list | tuple):
                out["channel_names"] = [str(c) for c in msg["channels"]]
        if msg["type"] == "image":
            out["image_id"] = f.integer(f.require(msg, "image_id", "stream2 image message"), "image_id")
            rt = cbor.rational(msg.get("real_time"), "real_time")
            if rt is not None:
                out["real_time"] = list(rt)
            arrays = channel_arrays(msg)
            out["channels"] = {name: channel_summary(arr.to_numpy(limits)) for name, arr in arrays.items()}
        return out

    def sniff(self, parts: Sequence[bytes]) -> bool:
        return len(parts) == 1 and stream2_type(parts[0]) is not None


STREAM2 = Stream2Format()
