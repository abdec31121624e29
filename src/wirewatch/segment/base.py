"""The segmenter interface every backend implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from wirewatch.types import Detections


@runtime_checkable
class Segmenter(Protocol):
    """Turns one 2-D image into instance detections in that image's coordinates.

    ``image`` is a 2-D float32 array already preprocessed to the model's
    convention (see ``wirewatch.segment.preprocess``): optical density scaled
    to 0..1, bright wires on a dark background. Backends may resize or tile
    internally but return masks at the input's shape.
    """

    name: str

    def segment(self, image: np.ndarray) -> Detections: ...
