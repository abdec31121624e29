"""The fallback segmenter: when the model stops seeing the wires, a model-free one takes over.

``quality.fallback: watershed`` (default: off) wraps the daemon's segmenter in ``FallbackSegmenter``. Every
frame is segmented by the model and its reliability scored (``reliability.score_frame``, the score in the
record). When it stays below ``below`` for ``frames`` frames in a row (the shipped ``SegmentationUnreliable``
rule's 0.45 and 10 frames), the fallback's masks are used instead; the model still runs on every frame, so
the switch back happens when its reliability stays at or above ``recover_above`` for ``recover_frames``
frames (hysteresis: a model hovering at the threshold does not flip-flop). Each frame's statistics carry
``segmenter_fallback`` (1: the fallback's masks, 0: the model's) and, while the fallback is in use,
``reliability_model`` (the model's own score); change points around a switch are marked ``suspect``
(the statistics moved because the segmenter changed).

How a frame's tag reaches its statistics: the segmenter's input array travels from the segment stage to
the measure stage with the frame (``Segmented.image``), so the wrapper files the tag under that array's
identity and the quality stage collects it (``produced_by``). Written here: a small state machine around
two segmenters; no library does this.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from wirewatch.config.base import StrictModel
from wirewatch.quality.reliability import score_frame
from wirewatch.segment.base import Segmenter
from wirewatch.types import Detections

log = logging.getLogger(__name__)

PENDING_TAGS = 256  # tags of frames segmented but not yet measured (frames dropped in between age out)


class FallbackConfig(StrictModel):
    """``quality.fallback``: which segmenter takes over while the model is unreliable, and when."""

    segmenter: str = Field(default="watershed", description="backend name (wirewatch segment --backend)")
    options: dict[str, Any] = Field(default_factory=dict, description="its options")
    below: float = Field(default=0.45, ge=0, le=1, description="model reliability below which a frame counts")
    frames: int = Field(default=10, ge=1, description="frames in a row below `below` before the fallback")
    recover_above: float = Field(default=0.55, ge=0, le=1, description="model reliability at or above which "
                                                                        "a frame counts towards the switch back")
    recover_frames: int = Field(default=10, ge=1, description="frames in a row above before the switch back")

    @model_validator(mode="after")
    def _hysteresis(self) -> FallbackConfig:
        if self.recover_above < self.below:
            raise ValueError(f"recover_above ({self.recover_above}) must be >= below ({self.below})")
        return self


class FallbackSegmenter:
    """``primary`` while its reliability holds, ``fallback`` while it stays low (see the module docstring)."""

    def __init__(self, primary: Segmenter, fallback: Segmenter, config: FallbackConfig | None = None) -> None:
        self.primary = primary
        self.fallback = fallback
        self.config = config or FallbackConfig()
        self.name = getattr(primary, "name", "segmenter")
        self.active = False  # the fallback's masks are in use
        self.switches = 0
        self._run = 0  # frames in a row on the other side of the threshold
        self._lock = threading.Lock()
        self._tags: OrderedDict[int, tuple[bool, float]] = OrderedDict()

    def segment(self, image: np.ndarray) -> Detections:
        detections = self.primary.segment(image)
        score = score_frame(image, detections).score
        with self._lock:
            use_fallback = self._step(score)
            self._tags[id(image)] = (use_fallback, score)
            while len(self._tags) > PENDING_TAGS:
                self._tags.popitem(last=False)
        return self.fallback.segment(image) if use_fallback else detections

    def _step(self, score: float) -> bool:
        c = self.config
        if not self.active:
            self._run = self._run + 1 if score < c.below else 0
            if self._run >= c.frames:
                self.active, self._run, self.switches = True, 0, self.switches + 1
                log.warning("segmentation unreliable for %d frames (model reliability %.2f < %.2f): the %s "
                            "fallback segments the frames until it recovers", c.frames, score, c.below,
                            self.fallback_name)
        else:
            self._run = self._run + 1 if score >= c.recover_above else 0
            if self._run >= c.recover_frames:
                self.active, self._run, self.switches = False, 0, self.switches + 1
                log.warning("model reliability back above %.2f for %d frames: the model segments again",
                            c.recover_above, c.recover_frames)
        return self.active

    @property
    def fallback_name(self) -> str:
        return str(getattr(self.fallback, "name", "fallback"))

    def produced_by(self, image: np.ndarray) -> dict[str, float]:
        """The tag of the frame whose segmenter input is ``image``: ``segmenter_fallback`` (1 / 0) and,
        when the fallback produced it, ``reliability_model``; empty when unknown."""
        with self._lock:
            tag = self._tags.pop(id(image), None)
        if tag is None:
            return {}
        fell_back, score = tag
        out = {"segmenter_fallback": 1.0 if fell_back else 0.0}
        if fell_back:
            out["reliability_model"] = score
        return out


def with_fallback(segmenter: Segmenter, config: FallbackConfig | None, *, max_side: int | None = None) -> Segmenter:
    """``segmenter`` wrapped in a ``FallbackSegmenter`` when ``config`` names a fallback, else as it is."""
    if config is None:
        return segmenter
    from wirewatch.segment import load_segmenter
    from wirewatch.segment.fit import FitSegmenter

    fallback = load_segmenter(config.segmenter, **config.options)
    fitted = FitSegmenter(fallback, max_side=max_side)
    return FallbackSegmenter(segmenter, fitted, config)
