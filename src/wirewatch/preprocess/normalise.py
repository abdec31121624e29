"""Frame pixels -> the segmenter's image convention: float32 0..1, wires bright, NODATA at 0."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wirewatch.errors import InputError
from wirewatch.preprocess.config import PreprocessConfig
from wirewatch.types import Frame

_EPS = 1e-6


@dataclass(frozen=True)
class Prepared:
    """A frame ready for segmentation.

    ``image``: float32 in [0, 1] in frame coordinates (segmenter convention); ``signal``: float32
    signal the statistics use for the ``od_*`` columns (optical density for transmission input,
    else the normalised image, which for optical-density input is OD on the 0..1 scale);
    ``valid``: bool mask of pixels that carry data (None = all); ``i0``: the I0 used, if any.
    """

    image: np.ndarray
    signal: np.ndarray
    valid: np.ndarray | None
    i0: float | None = None


def prepare(frame: Frame, config: PreprocessConfig) -> Prepared:
    """Convert one frame; raises ``InputError`` for images that cannot be used (not 2-D, no valid pixel)."""
    raw = frame.image
    if raw.ndim != 2 or raw.size == 0:
        raise InputError(f"frame {frame.frame_id}: expected a non-empty 2-D image, got shape {raw.shape}")
    valid = _valid_mask(frame)
    if valid is not None and not valid.any():
        # Nothing to segment: a blank image keeps the pipeline flowing (the frame is still recorded).
        zeros = np.zeros(raw.shape, np.float32)
        return Prepared(image=zeros, signal=zeros, valid=valid)
    values = raw.astype(np.float32, copy=False)
    signal_kind = frame.signal if config.signal == "auto" else config.signal
    i0: float | None = None
    if signal_kind == "transmission":
        i0 = _incident_intensity(frame, values, valid, config)
        signal = -np.log(np.clip(values, _EPS * i0, None) / i0).astype(np.float32)
        signal = np.clip(signal, 0.0, None)  # counts above I0 are noise, not negative material
        image = _percentile_scale(signal, valid, config) if config.normalise != "fixed" else signal / config.scale
    else:
        image = _normalise(raw, values, valid, config)
    if config.invert:
        image = 1.0 - image
    image = np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
    if signal_kind != "transmission":
        signal = image
    if valid is not None:
        image = np.where(valid, image, np.float32(0.0))
        signal = np.where(valid, signal, np.float32(0.0))
    return Prepared(image=np.ascontiguousarray(image), signal=signal.astype(np.float32, copy=False),
                    valid=valid, i0=i0)


def _valid_mask(frame: Frame) -> np.ndarray | None:
    if frame.valid is None:
        return None
    if frame.valid.shape != frame.image.shape:
        raise InputError(f"frame {frame.frame_id}: valid mask shape {frame.valid.shape} differs from "
                         f"image shape {frame.image.shape}")
    valid = frame.valid.astype(bool, copy=False)
    return None if valid.all() else valid


def _incident_intensity(frame: Frame, values: np.ndarray, valid: np.ndarray | None,
                        config: PreprocessConfig) -> float:
    header_i0 = frame.meta.get("i0") if frame.meta else None
    if isinstance(header_i0, int | float) and not isinstance(header_i0, bool) and header_i0 > 0:
        return float(header_i0)
    if config.i0 is not None:
        return config.i0
    sample = values[valid] if valid is not None else values
    estimate = float(np.percentile(sample, config.i0_percentile))
    if not estimate > 0:
        raise InputError(f"frame {frame.frame_id}: cannot estimate I0 for a transmission image whose "
                         f"{config.i0_percentile} percentile is {estimate}; set preprocess.i0")
    return estimate


def _normalise(raw: np.ndarray, values: np.ndarray, valid: np.ndarray | None,
               config: PreprocessConfig) -> np.ndarray:
    mode = config.normalise
    if mode == "auto":
        mode = "dtype" if raw.dtype == np.uint8 else "percentile"
    if mode == "fixed":
        return values / config.scale
    if mode == "dtype":
        if raw.dtype.kind in "ui":
            return values / float(np.iinfo(raw.dtype).max)
        return values  # float data are taken as already 0..1
    return _percentile_scale(values, valid, config)


def _percentile_scale(values: np.ndarray, valid: np.ndarray | None, config: PreprocessConfig) -> np.ndarray:
    sample = values[valid] if valid is not None else values
    # A strided sample is enough for percentiles and keeps big frames cheap.
    step = max(1, sample.size // 65536)
    lo, hi = np.percentile(sample.ravel()[::step], [config.percentile_low, config.percentile_high])
    if not hi > lo:
        return np.zeros_like(values)
    return (values - np.float32(lo)) / np.float32(hi - lo)
