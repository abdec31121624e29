"""``ModelSegmenter``: an engine (``wirewatch.segment.engine``) composed with the post-processing every model
backend shares, in one place.

Like torchvision's ``GeneralizedRCNN``, it is handed its parts already built (the engine, the mask refiner) and
only calls them in order: check the frame, level its background (``segment.background``), run the engine on
the frame and its mirror images (``segment.views``), paste the mask grids into the frame, correct them against
the frame (``segment.refine``) and fit shapes (``segment.shape_fit``). ``compose`` builds the parts from the
backend's keyword options (``segment.options``).

Frames larger than the model should see, their scale and polarity are handled one step out, for every backend
alike (watershed and ray included): ``wirewatch.segment.fit.FitSegmenter`` wraps a ``ModelSegmenter``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from wirewatch.errors import InputError
from wirewatch.segment.background import DEFAULT_RADIUS, check_background, prepared_input
from wirewatch.segment.engine import DetectionEngine, RawDetections, check_threshold
from wirewatch.segment.model_files import ModelMetadata
from wirewatch.segment.refine import MaskRefiner, load_refiner, resolve_refiner
from wirewatch.segment.shape_fit import check_mask_shape
from wirewatch.segment.views import check_views, segment_views
from wirewatch.types import Detections

log = logging.getLogger(__name__)

MIN_SIDE = 32
# segment.options that configure the composition, not the engine (the rest go to the engine's constructor)
COMPOSED_OPTIONS = ("mask_threshold", "views", "mask_shape", "background", "background_radius", "mask_refine")


def validate_image(image: object, min_side: int = MIN_SIDE) -> np.ndarray:
    """The segmenter input contract: 2-D float32, finite, at least ``min_side`` pixels each way."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and 1 in (image.shape[0], image.shape[-1]):
        raise InputError(f"image must be 2-D (height, width), got shape {image.shape}; "
                         "squeeze the single channel first")
    if image.ndim != 2:
        raise InputError(f"image must be 2-D grey (height, width), got shape {image.shape} "
                         f"({image.ndim} dimensions; colour/multi-channel input is not supported)")
    if image.dtype != np.float32:
        raise InputError(f"image dtype must be float32 scaled to 0..1, got {image.dtype}")
    if min(image.shape) < min_side:
        raise InputError(f"image {image.shape[0]}x{image.shape[1]} is too small (at least {min_side} px a side)")
    if not np.isfinite(image).all():
        raise InputError("image contains NaN or infinite values")
    return np.ascontiguousarray(image)


class ModelSegmenter:
    """``Segmenter`` made of a built ``DetectionEngine`` and the shared post-processing (module docstring)."""

    def __init__(self, engine: DetectionEngine, *, mask_threshold: float | None = None, views: int = 1,
                 mask_shape: str = "free", background: str = "level", background_radius: float = DEFAULT_RADIUS,
                 refiner: MaskRefiner | None = None) -> None:
        self.engine = engine
        self.name = engine.name
        self.views = check_views(views)  # passes per frame: the frame and its mirror images (segment.views)
        self.mask_shape = check_mask_shape(mask_shape)  # free masks, or fitted rectangles / rods (shape_fit)
        # the model knows zero backgrounds only: level the frame's own first (segment.background)
        self.background, self.background_radius = check_background(background, background_radius)
        threshold = engine.metadata.mask_threshold if mask_threshold is None else float(mask_threshold)
        self.mask_threshold = check_threshold("mask_threshold", threshold)
        self.refiner = refiner  # masks corrected against the frame (segment.refine), or None

    @property
    def metadata(self) -> ModelMetadata:
        return self.engine.metadata

    @property
    def score_threshold(self) -> float:
        return self.engine.score_threshold

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """What the engine sees of a validated frame: levelled (``background="level"``) or as given."""
        return prepared_input(image, self.background, self.background_radius)

    def detect(self, image: np.ndarray) -> RawDetections:
        """One pass of the engine on a prepared frame (``model_input``)."""
        return self.engine.infer(image)

    def segment(self, image: np.ndarray) -> Detections:
        image = validate_image(image)
        fixed = self.engine.input_shape
        if fixed is not None and image.shape != tuple(fixed):
            raise InputError(f"image {image.shape[0]}x{image.shape[1]} does not match the model input "
                             f"{fixed[0]}x{fixed[1]} the {self.name} engine is set up for")
        return segment_views(self.detect, self.model_input(image), self.views, self.mask_threshold,
                             self.mask_shape, self.refiner)


def build_refiner(mask_refine: object, engine: DetectionEngine) -> MaskRefiner | None:
    """The ``mask_refine`` option for ``engine``: ``auto`` loads the shipped refiner only when it was trained on
    the engine's model file (``segment.refine.load_refiner``); an engine without an ONNX file a refiner could
    name (TensorRT) gets none for ``auto``, and an explicit ``default`` or path as it is."""
    if engine.model_file is None:
        path = None if mask_refine == "auto" else resolve_refiner(mask_refine)
        return None if path is None else MaskRefiner(path, threads=engine.threads, spinning=engine.spinning)
    return load_refiner(mask_refine, engine.model_file, engine.threads, engine.spinning)


def compose(engine_factory: Callable[..., DetectionEngine], options: Mapping[str, Any]) -> ModelSegmenter:
    """``engine_factory(**engine options)`` composed into a ``ModelSegmenter`` by the rest of ``options``
    (``COMPOSED_OPTIONS``): what ``load_segmenter`` does for a name in ``ENGINES``. The composition's options are
    checked before the engine loads (a bad value costs no model load)."""
    rest = dict(options)
    post = {k: rest.pop(k) for k in COMPOSED_OPTIONS if k in rest}
    mask_refine = post.pop("mask_refine", "auto")
    check_views(post.get("views", 1))
    check_mask_shape(post.get("mask_shape", "free"))
    resolve_refiner(mask_refine)
    check_background(post.get("background", "level"), post.get("background_radius", DEFAULT_RADIUS))
    engine: DetectionEngine = engine_factory(**rest)
    return ModelSegmenter(engine, refiner=build_refiner(mask_refine, engine), **post)
