"""Image-quality measures of one frame: what the instrument did, as opposed to what the sample did.

Each is chosen to move with the instrument and to stay put when the particles change:

- ``iq_blur_px``: the optics' edge blur, as the Gaussian sigma of the frame's sharpest edges. For a step
  of height ``h`` blurred by a Gaussian of sigma ``s`` the steepest gradient is ``h / (s sqrt(2 pi))``;
  ``h`` is read as the local range (max - min) around each of the strongest edge pixels. Unlike the
  variance of the Laplacian, it does not change when wires get wider or more numerous (a refocus does).
- ``iq_background``: the median of the raw frame over valid pixels (the wires are the minority phase),
  in the detector's units: a drop of beam intensity or a change of gain moves it.
- ``iq_contrast``: the 99th percentile minus the median of the raw frame.
- ``iq_shift_px``: the translation against the previous frame by phase correlation (OpenCV's
  ``phaseCorrelate`` with a Hann window, ~1 ms; scikit-image's ``phase_cross_correlation`` with
  upsampling cost ~50 ms) on a frame of at most 256 px: stage drift.
  Frames of a new scene (a simulator's independent draws) give noise of 20-55 px (256 px frames); a persistent
  scene reads under 0.3 px when still (tests/unit/test_quality.py).
- ``iq_wire_width_px``: the typical wire width (``segment.scale.estimate_wire_width``, the estimate
  ``scale: auto`` resizes by, ~1-3 ms), as the running median of the last ``WIDTH_FRAMES`` frames' estimates:
  a change of magnification moves it (fully once half the window has passed), and a steady series keeps it
  within 2 %: one frame's estimate alone varies by 6-22 % on the simulator's steady series, whose frames are
  independent scenes of a few to 30 wires, and the median of 61 frames by 0.4-2.1 %; on one field watched
  (fresh noise, jitter) by 0-0.5 % (``python -m wirewatch.bench.scale_stability``, docs/stats.md). Not an
  attributing measure: the magnification test compares the wires' length and width, which step at once.

Written here because they are a few lines of NumPy/OpenCV each; no library bundles these measures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from wirewatch.segment.scale import RunningWidth, estimate_wire_width

SQRT_2PI = math.sqrt(2.0 * math.pi)
EDGE_FRACTION = 0.02  # the strongest 2 % of gradient pixels are "the edges"
SHIFT_SIDE = 256  # phase correlation on a frame of at most this many pixels a side
WIDTH_FRAMES = 61  # iq_wire_width_px: running median over this many frames' width estimates
IQ_NAMES = ("iq_blur_px", "iq_background", "iq_contrast", "iq_shift_px", "iq_wire_width_px")


def blur_sigma_px(image: np.ndarray) -> float:
    """The Gaussian sigma (px) of the frame's sharpest edges; NaN for a flat frame."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 8:
        return math.nan
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3) / 8.0  # Sobel's 3x3 weights sum to 8 x the derivative
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    grad = np.hypot(gx, gy)
    cut = float(np.quantile(grad[::2, ::2], 1.0 - EDGE_FRACTION))  # a quarter of the pixels sets the cut
    if not cut > 0:
        return math.nan
    kernel = np.ones((11, 11), np.uint8)
    local_range = cv2.dilate(img, kernel) - cv2.erode(img, kernel)
    strong = grad >= cut
    ratio = local_range[strong] / (grad[strong] * SQRT_2PI)
    ratio = ratio[np.isfinite(ratio)]
    return float(np.median(ratio)) if ratio.size else math.nan


def _small(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    side = max(img.shape)
    if side > SHIFT_SIDE:
        f = SHIFT_SIDE / side
        img = np.asarray(cv2.resize(img, (max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f))),
                                    interpolation=cv2.INTER_AREA), np.float32)
    return img - float(img.mean())


@dataclass
class ImageQuality:
    """Per-frame image-quality measures (``measure(raw, valid)``); keeps the previous frame for the shift."""

    _previous: np.ndarray | None = None
    _previous_scale: float = 1.0
    _window: np.ndarray | None = None
    _widths: RunningWidth = field(default_factory=lambda: RunningWidth(WIDTH_FRAMES))

    def reset(self) -> None:
        self._previous = None
        self._widths.clear()

    def measure(self, raw: np.ndarray, image: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
        """``raw``: the frame as the detector sent it; ``image``: the 0..1 segmenter input."""
        values = np.asarray(raw, dtype=np.float32)
        if valid is not None and valid.shape == values.shape:
            values = values[valid]
        values = values[np.isfinite(values)]
        out = {name: math.nan for name in IQ_NAMES}
        if values.size:
            median, p99 = np.quantile(values, [0.5, 0.99])
            out["iq_background"], out["iq_contrast"] = float(median), float(p99 - median)
        out["iq_blur_px"] = blur_sigma_px(image)
        out["iq_shift_px"] = self._shift(image)
        out["iq_wire_width_px"] = self._wire_width(image)
        return out

    def _wire_width(self, image: np.ndarray) -> float:
        """Running median (of logs: a scale) of the last WIDTH_FRAMES frames' typical wire widths, px."""
        return self._widths.add(estimate_wire_width(image).width_px)

    def _shift(self, image: np.ndarray) -> float:
        small = _small(image)
        scale = max(image.shape) / max(small.shape)
        previous, self._previous, self._previous_scale = self._previous, small, scale
        if previous is None or previous.shape != small.shape or not small.any():
            return math.nan
        if self._window is None or self._window.shape != small.shape[::-1]:
            self._window = cv2.createHanningWindow(small.shape[::-1], cv2.CV_32F)
        (dx, dy), _ = cv2.phaseCorrelate(previous, small, self._window)
        return float(math.hypot(dx, dy) * scale)
