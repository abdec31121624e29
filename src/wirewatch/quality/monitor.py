"""The daemon's quality stage: per-frame image quality and segmentation reliability, and the
attribution of each change point to the instrument or the sample.

``QualityMonitor.measure(frame, segmented image, detections)`` returns aggregates to add to the frame's
statistics (``reliability``, ``iq_*``, ...). ``QualityMonitor.judge(change_point)`` returns it with
``attribution`` and ``suspect`` set:

- ``instrument`` when, around the change, an image-quality measure moved by more than ``z_threshold``
  robust standard deviations of its own recent history (edge blur, by at least ``min_blur_step`` of its
  level as well: a refocus; background level: the
  beam or the gain; the frame-to-frame shift: stage drift), or when the typical wire
  length and width moved together by the same factor and the number of wires the other way (a change
  of magnification: a growing sample does not widen and lengthen every wire by one factor at one
  frame, and magnifying by m shows about 1/m^2 as many wires, where wires that grow stay as many);
- ``suspect`` when the median reliability over the frames around the change is below
  ``unreliable_below``: the statistics moved because the model stopped seeing the wires.

``QualityMonitor.instrument_steps(frame_id)`` also reports a step of an image-quality measure on its
own (median of the last ``STEP_FRAMES`` frames against the ``window`` before, same robust z): a refocus
that moves no morphology statistic still raises ``InstrumentChanged``.

The alert rules then decide: the shipped ``MorphologyChanged`` rule fires for ``sample`` change points
that are not suspect, ``InstrumentChanged`` (severity info) for ``instrument`` ones.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from pydantic import Field, field_validator

from wirewatch.config.base import StrictModel
from wirewatch.quality.fallback import FallbackConfig, FallbackSegmenter, with_fallback
from wirewatch.quality.image import IQ_NAMES, ImageQuality
from wirewatch.quality.reliability import score_frame
from wirewatch.segment.base import Segmenter
from wirewatch.types import Attribution, ChangePoint, Detections

# The measures that attribute a change to the instrument. iq_contrast is recorded but not among them:
# more wires (more crossings) raise the frame's 99th percentile as a brighter beam would.
ATTRIBUTING = ("iq_blur_px", "iq_background", "iq_shift_px")
STEP_FRAMES = 3  # instrument_steps: the median of this many newest frames against the window before
SHIFT_FLOOR_PX = 0.25  # least noise scale of iq_shift_px (px per frame)
SPLIT_SLACK = 5  # frames either side of a change point's frame where the instrument's step may lie
# The statistics the magnification test compares; all are per-frame aggregates of wirewatch.stats.
_LENGTH, _WIDTH, _COUNT = "length_px_median", "width_px_median", "particle_count"


class QualityConfig(StrictModel):
    """The ``quality`` section of the daemon config."""

    enabled: bool = True
    reliability: bool = True  # the per-frame segmentation reliability score (about 2-5 ms a 512 px frame)
    image_quality: bool = True  # iq_blur_px, iq_background, iq_contrast, iq_shift_px
    window: int = Field(default=15, ge=3, le=1000, description="frames before a change compared with after it")
    z_threshold: float = Field(default=8.0, gt=0, description="robust z of an image-quality step that "
                                                             "makes a change point 'instrument'")
    magnification_tolerance: float = Field(default=0.25, gt=0, lt=1, description="length and width factors "
                                           "within this relative difference (and both above min_step) read "
                                           "as a magnification change")
    min_step: float = Field(default=0.2, gt=0, description="smallest relative step of length and width "
                                                          "taken as a magnification change")
    count_share: float = Field(default=0.5, ge=0, description="a magnification change moves the number of "
                               "wires the other way by at least this share of the wires' length step (logs; "
                               "about 2 for a field wider than the sample's wires, less where the model misses "
                               "small wires)")
    min_blur_step: float = Field(default=0.2, ge=0, description="smallest relative change of the edge blur "
                                                                "that can be the instrument's")
    unreliable_below: float = Field(default=0.45, ge=0, le=1, description="median reliability below "
                                                                           "which change points are suspect")
    # a segmenter that takes over while the model is unreliable (quality/fallback.py); `watershed` is
    # short for {segmenter: watershed}; off by default
    fallback: FallbackConfig | None = None

    @field_validator("fallback", mode="before")
    @classmethod
    def _fallback_by_name(cls, value: object) -> object:
        if value is False or (isinstance(value, str) and value.lower() in {"", "none", "off"}):
            return None
        return {"segmenter": value} if isinstance(value, str) else value


class QualityMonitor:
    """Keeps a short history of each frame's quality measures to judge change points against."""

    def __init__(self, config: QualityConfig | None = None, history: int = 1024) -> None:
        self.config = config or QualityConfig()
        self.fallback: FallbackSegmenter | None = None  # set by wrap_segmenter when quality.fallback is on
        self._image = ImageQuality()
        self._history: deque[tuple[int, dict[str, float]]] = deque(maxlen=history)
        self._last_step = -(1 << 62)  # frame of the last instrument step reported (one per window)

    def reset(self) -> None:
        self._image.reset()
        self._history.clear()
        self._last_step = -(1 << 62)

    def wrap_segmenter(self, segmenter: Segmenter, *, max_side: int | None = None) -> Segmenter:
        """``segmenter`` behind the configured fallback (``quality.fallback``), or as it is."""
        wrapped = with_fallback(segmenter, self.config.fallback, max_side=max_side)
        if isinstance(wrapped, FallbackSegmenter):
            self.fallback = wrapped
        return wrapped

    def measure(self, raw: np.ndarray, image: np.ndarray, detections: Detections,
                valid: np.ndarray | None = None) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.fallback is not None:  # which segmenter produced this frame (``image`` is its input)
            out.update(self.fallback.produced_by(image))
        if self.config.image_quality:
            out.update(self._image.measure(raw, image, valid))
        if self.config.reliability:
            out.update(score_frame(image, detections).as_aggregates())
        return out

    def remember(self, frame_id: int, aggregates: Mapping[str, float]) -> None:
        """Record the frame's measures (quality and the statistics the magnification test needs)."""
        keep = (*IQ_NAMES, "reliability", _LENGTH, _WIDTH, _COUNT, "segmenter_fallback")
        self._history.append((frame_id, {k: float(aggregates[k]) for k in keep if k in aggregates}))

    def instrument_steps(self, frame_id: int) -> list[ChangePoint]:
        """Change points of the image-quality measures themselves, ending at ``frame_id`` (instrument)."""
        window = self.config.window
        if frame_id - self._last_step < window or len(self._history) < window + STEP_FRAMES:
            return []
        rows = list(self._history)[-(window + STEP_FRAMES):]
        before, after = [v for _, v in rows[:window]], [v for _, v in rows[window:]]
        for name in ATTRIBUTING:
            z, b, a = self._step(name, before, after)
            if abs(z) > self.config.z_threshold:
                self._last_step = frame_id
                # the step's frame: the first of the newest frames past half-way from the old level to the new
                first = next((f for f, v in rows[window:] if abs(v.get(name, b) - b) > abs(a - b) / 2), rows[window][0])
                return [ChangePoint(frame=first, detected_at=frame_id, statistics=(name,),
                                    before={name: b}, after={name: a}, effect_size=z, detector="quality",
                                    severity="info", attribution="instrument")]
        return []

    def judge(self, cp: ChangePoint) -> ChangePoint:
        """``cp`` with ``attribution`` and ``suspect`` from the measures around ``cp.frame``.

        A detector places a change within a few frames of where it happened, and reports it a few frames
        later: the instrument is tested at every split within ``SPLIT_SLACK`` frames of ``cp.frame``,
        comparing up to ``window`` frames before the split with those from it to ``cp.detected_at``.
        """
        attribution: Attribution = cp.attribution
        if cp.statistics and all(s in IQ_NAMES for s in cp.statistics):
            # only image-quality measures moved: the instrument's by definition, never a sample alert
            return replace(cp, attribution="instrument")
        tested = False
        for split in range(cp.frame - SPLIT_SLACK, cp.frame + SPLIT_SLACK + 1):
            before = [v for f, v in self._history if split - self.config.window <= f < split]
            after = [v for f, v in self._history if split <= f <= cp.detected_at]
            if len(before) < 3 or len(after) < min(2, cp.detected_at - split + 1) or not after:
                continue
            tested = True
            if self._instrument_moved(before, after):
                attribution = "instrument"
                break
        if tested and attribution != "instrument":
            attribution = "sample"
        around = _values([v for f, v in self._history
                          if cp.frame - SPLIT_SLACK <= f <= max(cp.detected_at, cp.frame + SPLIT_SLACK)], "reliability")
        suspect = bool(around.size) and float(np.median(around)) < self.config.unreliable_below
        switched = _values([v for f, v in self._history if cp.frame - SPLIT_SLACK <= f <= cp.detected_at],
                           "segmenter_fallback")
        suspect = suspect or bool(switched.size and switched.min() != switched.max())  # the segmenter changed
        return replace(cp, attribution=attribution, suspect=suspect)

    def _step(self, name: str, before: list[dict[str, float]], after: list[dict[str, float]]
              ) -> tuple[float, float, float]:
        """(robust z of the step, median before, median after) of measure ``name``; z 0 without data."""
        b, a = _values(before, name), _values(after, name)
        if b.size < 3 or a.size < 1:
            return 0.0, math.nan, math.nan
        centre, moved = float(np.median(b)), float(np.median(a))
        spread = 1.4826 * float(np.median(np.abs(b - centre)))
        # floors: a perfectly steady measure must not turn noise into an event
        scale = max(spread, 0.02 * abs(centre), 1e-9)
        if name == "iq_background":
            contrast = _values(before, "iq_contrast")
            level = float(np.median(contrast)) if contrast.size else 0.0
            scale = max(scale, 0.01 * level)  # a background of 0 (optical density) moves by a grey level
        if name == "iq_shift_px":
            # sub-pixel jitter of the correlation peak is not a drift (a persistent scene reads < 0.3 px; the
            # simulator's independent scenes 20-55 px): a step of 2 px per frame or more is, at z 8
            scale = max(scale, SHIFT_FLOOR_PX)
        if name == "iq_blur_px" and abs(moved - centre) < self.config.min_blur_step * abs(centre):
            # wider wires read ~5-10 % more edge blur at 1-2 px of blur (the demo's width x1.6: +9 %,
            # z 8.5); a refocus moves it by tens of per cent (x2 blur: +67 %, x2.5: +80 %)
            return 0.0, centre, moved
        return (moved - centre) / scale, centre, moved

    def _instrument_moved(self, before: list[dict[str, float]], after: list[dict[str, float]]) -> bool:
        # Two frames after the split at least: one frame's edge blur can read +30 % (the demo's frame 77, while
        # its wires widen), one frame's ~20 wires can read 1.3x longer and wider and fewer (its frame 227, as
        # they align); a refocus or a zoom moves every frame after it.
        if len(after) < 2:
            return False
        if any(abs(self._step(name, before, after)[0]) > self.config.z_threshold for name in ATTRIBUTING):
            return True
        return self._magnified(before, after)

    def _magnified(self, before: list[dict[str, float]], after: list[dict[str, float]]) -> bool:
        length, width = _median_ratio(before, after, _LENGTH), _median_ratio(before, after, _WIDTH)
        if length is None or width is None:
            return False
        c = self.config
        both_moved = abs(math.log(length)) > math.log1p(c.min_step) and abs(math.log(width)) > math.log1p(c.min_step)
        if not (both_moved and abs(math.log(length / width)) < math.log1p(c.magnification_tolerance)):
            return False
        # Fewer wires after a zoom in, more after a zoom out: a few-particle frame's median length and width
        # can both jump by chance when the wires widen (the demo's width x1.6 under the watershed, 7 wires
        # a frame), but their number stays. Without counts in the history the test is as before.
        count = _median_ratio(before, after, _COUNT, floor=0.5)
        if count is None:
            return True
        return -math.log(count) * math.copysign(1.0, math.log(length)) >= c.count_share * abs(math.log(length))


def _median_ratio(before: list[dict[str, float]], after: list[dict[str, float]], name: str,
                  floor: float = 0.0) -> float | None:
    """median after / median before of ``name`` (the median after raised to ``floor``: a count may fall to 0);
    None with fewer than 3 frames before, none after, or a median before that is not positive."""
    b, a = _values(before, name), _values(after, name)
    if b.size < 3 or a.size < 1 or not float(np.median(b)) > 0:
        return None
    return max(float(np.median(a)), floor) / float(np.median(b))


def _values(rows: list[dict[str, float]], name: str) -> np.ndarray:
    v = np.array([r[name] for r in rows if name in r], dtype=float)
    return v[np.isfinite(v)]
