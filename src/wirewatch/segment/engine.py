"""What a model backend implements: an engine, "frame in, raw detections out".

An engine runs the exported detection graph (onnxruntime, TensorRT, ...) on one prepared frame and returns
what the graph returns, cut at its score threshold: boxes, scores and the mask head's M x M probability grids.
Everything after that (levelling the background, test-time views, pasting the grids into the frame, mask
refinement, shape fits) is the same for every engine and lives once, in ``wirewatch.segment.model``
(``ModelSegmenter``), which is handed a built engine. Adding a model backend is one engine module plus one
line in ``wirewatch.segment.ENGINES`` (docs/CONTRACTS.md, "Adding a model backend").
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from wirewatch.errors import InputError
from wirewatch.segment.model_files import ModelMetadata


class RawDetections(NamedTuple):
    """One pass of the graph, detections at or above the engine's score threshold, in the input's pixels.

    A tuple (boxes, scores, mask_probs) so that ``wirewatch.segment.views`` unpacks it as it unpacks any pass."""

    boxes: np.ndarray  # (N, 4) float32 x0, y0, x1, y1
    scores: np.ndarray  # (N,) float32
    mask_probs: np.ndarray  # (N, M, M) float32 mask probabilities inside each box


@runtime_checkable
class DetectionEngine(Protocol):
    """A loaded model that turns one prepared frame into ``RawDetections``.

    ``metadata``: what the exporter wrote into the model file (``mask_threshold`` is the composition's default).
    ``input_shape``: the (height, width) the engine was built for, or None when it takes any size.
    ``model_file``: the ONNX file a mask refiner may name as the model it was trained for (its sha256), or None
    where no refiner can (a TensorRT engine). ``threads`` / ``spinning``: the CPU threads for the work beside the
    engine (the mask refiner), and whether they may busy-wait.
    """

    name: str
    metadata: ModelMetadata
    score_threshold: float
    input_shape: tuple[int, int] | None
    model_file: Path | None
    threads: int
    spinning: bool

    def infer(self, image: np.ndarray) -> RawDetections: ...


def check_threshold(label: str, value: float) -> float:
    """A score or mask threshold within 0..1, else an error naming it."""
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{label} must be within 0..1, got {value}")
    return value
