"""The segmenter interface every backend implements (``wirewatch.segment.BACKENDS``)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from wirewatch.types import Detections


@runtime_checkable
class Segmenter(Protocol):
    """Turns one 2-D image into instance detections (``Detections``) in that image's coordinates.

    ``image`` is a 2-D float32 array in the segmenter convention made by ``wirewatch.preprocess.prepare``:
    0..1, bright wires on a dark background, NODATA pixels at 0. Frames larger than a model should see
    are resized or tiled around the segmenter by ``wirewatch.segment.fit.FitSegmenter`` (itself a
    ``Segmenter``); a backend returns masks at the shape it was given. Model backends are a
    ``DetectionEngine`` composed with the shared post-processing (``wirewatch.segment.model``).

    Optional, looked up by the daemon when present: ``close()`` (resources such as the ray backend's
    replicas), ``max_in_flight`` (frames it may segment at once) and ``ready()`` (part of ``/readyz``).
    """

    name: str

    def segment(self, image: np.ndarray) -> Detections: ...
