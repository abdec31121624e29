"""Encoders: the exact message parts a real sender produces, for the simulator and tests.

Each returns ``list[bytes]``: the parts of ONE ZeroMQ multipart message
(``send_multipart(parts)``). Stream V2 messages are single-part CBOR wrapped in
the self-described tag 55799 as a DECTRIS detector sends them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from wirewatch.ingest.compression import compress

# numpy dtype name -> RFC 8746 little-endian typed-array tag
TYPED_ARRAY_TAG_LE: dict[str, int] = {"uint8": 64, "uint16": 69, "uint32": 70, "uint64": 71, "int8": 72,
                                      "int16": 77, "int32": 78, "int64": 79, "float32": 85, "float64": 86}
STREAM2_COMPRESSIONS: tuple[str | None, ...] = ("bslz4", "lz4", None)


def _le_bytes(image: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(image)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


# ---------------------------------------------------------------- array-1.0

def encode_array10(frame_id: int, image: np.ndarray, *, timestamp: float | None = None,
                   pixel_size_nm: float | None = None, modality: str | None = None, signal: str | None = None,
                   i0: float | None = None, extra: Mapping[str, Any] | None = None) -> list[bytes]:
    """``[json header, little-endian pixel bytes]`` for a 2-D image."""
    if image.ndim != 2:
        raise ValueError(f"array-1.0 needs a 2-D image, got shape {image.shape}")
    header: dict[str, Any] = {"htype": "array-1.0", "shape": [int(image.shape[0]), int(image.shape[1])],
                              "type": image.dtype.name, "frame": int(frame_id)}
    optional = {"timestamp": timestamp, "pixel_size_nm": pixel_size_nm, "modality": modality, "signal": signal,
                "i0": i0}
    header.update({k: v for k, v in optional.items() if v is not None})
    if extra:
        header.update(extra)
    return [json.dumps(header).encode(), _le_bytes(image)]


# ---------------------------------------------------------------- Stream V2

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
    raw = _le_bytes(image)
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


# ---------------------------------------------------------------- Stream V1

def encode_stream1_header(series: int, *, header_detail: str = "basic", image_shape: tuple[int, int] | None = None,
                          pixel_size_nm: float | None = 75_000.0, extra: Mapping[str, Any] | None = None,
                          sample_pixel_size_nm: float | None = None) -> list[bytes]:
    """``dheader-1.0`` (+ the detector configuration part unless ``header_detail='none'``).

    ``pixel_size_nm`` is the detector's pixel (``x_pixel_size``); ``sample_pixel_size_nm`` the sample's
    (``user_data.sample_pixel_size_nm`` in the configuration part).
    """
    parts = [json.dumps({"htype": "dheader-1.0", "series": int(series), "header_detail": header_detail}).encode()]
    if header_detail != "none":
        config: dict[str, Any] = {}
        if pixel_size_nm is not None:
            config["x_pixel_size"] = config["y_pixel_size"] = pixel_size_nm * 1e-9
        if sample_pixel_size_nm is not None:
            config["user_data"] = {"sample_pixel_size_nm": float(sample_pixel_size_nm)}
        if image_shape is not None:
            config["y_pixels_in_detector"], config["x_pixels_in_detector"] = int(image_shape[0]), int(image_shape[1])
        if extra:
            config.update(extra)
        parts.append(json.dumps(config).encode())
    return parts


def stream1_encoding_for(dtype: np.dtype) -> str:
    return f"bs{8 * dtype.itemsize}-lz4<" if dtype.itemsize in (1, 2, 4) else "<"


def encode_stream1_image(series: int, frame: int, image: np.ndarray, *, encoding: str | None = None,
                         start_time_ns: int = 0, real_time_ns: int = 1_000_000) -> list[bytes]:
    """``dimage-1.0``, ``dimage_d-1.0``, data, ``dconfig-1.0``; default encoding bitshuffle-LZ4 for the dtype."""
    import lz4.block

    if image.ndim != 2:
        raise ValueError(f"stream1 image must be 2-D, got shape {image.shape}")
    encoding = encoding or stream1_encoding_for(image.dtype)
    raw = _le_bytes(image)
    if encoding == "<":
        blob = raw
    elif encoding == "lz4<":
        blob = lz4.block.compress(raw, store_size=False)
    elif encoding in ("bs8-lz4<", "bs16-lz4<", "bs32-lz4<"):
        blob = compress(raw, "bslz4", int(encoding[2:encoding.index("-")]) // 8)
    else:
        raise ValueError(f"unknown stream1 encoding {encoding!r}")
    h, w = image.shape
    return [
        json.dumps({"htype": "dimage-1.0", "series": int(series), "frame": int(frame),
                    "hash": hashlib.md5(blob).hexdigest()}).encode(),
        json.dumps({"htype": "dimage_d-1.0", "shape": [int(w), int(h)], "type": image.dtype.name,
                    "encoding": encoding, "size": len(blob)}).encode(),
        blob,
        json.dumps({"htype": "dconfig-1.0", "start_time": int(start_time_ns),
                    "stop_time": int(start_time_ns + real_time_ns), "real_time": int(real_time_ns)}).encode(),
    ]


def encode_stream1_end(series: int) -> list[bytes]:
    return [json.dumps({"htype": "dseries_end-1.0", "series": int(series)}).encode()]


# ---------------------------------------------------------------- whole series

def encode_series(format: str, images: Sequence[np.ndarray], *, series_id: int = 1, first_frame: int = 0,
                  pixel_size_nm: float | None = None, **options: Any) -> list[list[bytes]]:
    """All messages of one series in ``format`` (start, images, end where the protocol has them).

    ``pixel_size_nm`` is the sample pixel size: array-1.0's header field, the DECTRIS formats'
    ``user_data.sample_pixel_size_nm`` (their detector pixel stays the EIGER's 75 um).
    """
    if not images:
        return []
    shape = (int(images[0].shape[0]), int(images[0].shape[1]))
    if format == "array-1.0":
        return [encode_array10(first_frame + i, img, pixel_size_nm=pixel_size_nm, **options)
                for i, img in enumerate(images)]
    if format == "stream2":
        uid = options.pop("series_unique_id", f"wirewatch-series-{series_id}")
        msgs = [encode_stream2_start(series_id=series_id, series_unique_id=uid, image_shape=shape,
                                     image_dtype=images[0].dtype.name, sample_pixel_size_nm=pixel_size_nm,
                                     number_of_images=len(images))]
        msgs += [encode_stream2_image(first_frame + i, img, series_id=series_id, series_unique_id=uid, **options)
                 for i, img in enumerate(images)]
        return [*msgs, encode_stream2_end(series_id=series_id, series_unique_id=uid)]
    if format == "stream1":
        msgs = [encode_stream1_header(series_id, image_shape=shape, sample_pixel_size_nm=pixel_size_nm)]
        msgs += [encode_stream1_image(series_id, first_frame + i, img, **options) for i, img in enumerate(images)]
        return [*msgs, encode_stream1_end(series_id)]
    raise ValueError(f"unknown format {format!r}; allowed: array-1.0, stream2, stream1")
