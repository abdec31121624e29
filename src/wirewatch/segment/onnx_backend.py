"""The onnxruntime segmenter: the exported Mask R-CNN, masks pasted with numpy/OpenCV.

CPU by default; CUDA and TensorRT execution providers are used when onnxruntime-gpu
provides them (or when asked for by name, with a clear error when absent).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wirewatch.errors import BackendUnavailable, InputError, ModelError
from wirewatch.segment.background import DEFAULT_RADIUS, check_background, prepared_input
from wirewatch.segment.model_files import DEFAULT_MODEL, ModelMetadata, resolve_model_path
from wirewatch.segment.refine import load_refiner, resolve_refiner
from wirewatch.segment.shape_fit import check_mask_shape
from wirewatch.segment.views import check_views, segment_views
from wirewatch.types import Detections

log = logging.getLogger(__name__)

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
EXPECTED_OUTPUTS = ("boxes", "scores", "labels", "mask_probs")
MIN_SIDE = 32


def choose_providers(requested: Sequence[str] | None) -> list[str]:
    """Requested providers (all must exist) or the best available ones, GPU first."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested is None:
        return [p for p in PREFERRED_PROVIDERS if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        raise BackendUnavailable(
            f"onnxruntime execution provider(s) {', '.join(missing)} not available on this machine "
            f"(available: {', '.join(available)}); GPU providers need onnxruntime-gpu and an NVIDIA GPU")
    return list(requested)


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


def usable_cores() -> int:
    """CPU cores this process may run on (affinity / container limits), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxSegmenter:
    """``Segmenter`` running an exported model in onnxruntime."""

    name = "onnxruntime"

    def __init__(self, model: str | Path = DEFAULT_MODEL, providers: Sequence[str] | None = None,
                 score_threshold: float | None = None, mask_threshold: float | None = None,
                 input_size: tuple[int, int] | None = None, threads: int | None = None,
                 spinning: bool = False, views: int = 1, mask_shape: str = "free",
                 background: str = "level", background_radius: float = DEFAULT_RADIUS,
                 mask_refine: object = "auto") -> None:
        import onnxruntime as ort

        self.model_path = resolve_model_path(model)
        self.providers = choose_providers(providers)
        if threads is not None and threads < 1:
            raise InputError(f"threads must be at least 1, got {threads}")
        self.threads = usable_cores() if threads is None else int(threads)
        self.views = check_views(views)  # passes per frame: the frame and its mirror images (segment.views)
        self.mask_shape = check_mask_shape(mask_shape)  # free masks, or fitted rectangles / rods (shape_fit)
        resolve_refiner(mask_refine)  # a bad value is refused before the model loads
        # the model knows zero backgrounds only: level the frame's own first (segment.background)
        self.background, self.background_radius = check_background(background, background_radius)
        self.spinning = bool(spinning)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = self.threads
        # Busy-waiting pool threads burn the core that the daemon's other stages (and, beside a microscope,
        # other programs) need: with one of 2 cores taken by another process, the daemon ran 512 px frames at
        # 1.65 frames/s and 0.58 CPU s per frame with spinning threads, 2.19 and 0.44 without (docs/daemon.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        try:
            self.session = ort.InferenceSession(str(self.model_path), sess_options=options,
                                                providers=self.providers)
        except Exception as exc:
            raise ModelError(f"cannot load ONNX model {self.model_path}: {exc}") from None
        self.metadata = ModelMetadata.from_mapping(self.session.get_modelmeta().custom_metadata_map,
                                                   str(self.model_path))
        self._check_graph()
        if input_size is not None and tuple(input_size) != (self.metadata.input_height, self.metadata.input_width):
            raise ModelError(f"model {self.model_path} was exported for {self.metadata.input_height}x"
                             f"{self.metadata.input_width} input, not the requested {input_size[0]}x{input_size[1]}")
        self.input_size = input_size
        self.score_threshold = self.metadata.score_threshold if score_threshold is None else float(score_threshold)
        self.mask_threshold = self.metadata.mask_threshold if mask_threshold is None else float(mask_threshold)
        for label, value in (("score_threshold", self.score_threshold), ("mask_threshold", self.mask_threshold)):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{label} must be within 0..1, got {value}")
        self.active_providers = self.session.get_providers()
        # masks corrected against the frame (segment.refine): by default the refiner trained for this model file
        self.refiner = load_refiner(mask_refine, self.model_path, self.threads, self.spinning)
        log.info("onnxruntime model %s (%s, %s) on %s, %d thread(s)%s", self.model_path.name, self.metadata.variant,
                 self.metadata.raw.get("precision", "fp32"), ", ".join(self.active_providers), self.threads,
                 ", spinning" if self.spinning else "")

    def _check_graph(self) -> None:
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        # One 2-D image input, optionally a scalar score threshold (applied before the mask head).
        image_inputs = [i for i in inputs if len(i.shape) == 2]
        scalar_inputs = [i for i in inputs if len(i.shape) == 0]
        if len(image_inputs) != 1 or len(scalar_inputs) > 1 or len(inputs) != len(image_inputs) + len(scalar_inputs):
            raise ModelError(f"{self.model_path}: expected one 2-D input (height, width) and optionally a "
                             f"scalar score threshold, got {[(i.name, i.shape) for i in inputs]}")
        if tuple(outputs) != EXPECTED_OUTPUTS:
            raise ModelError(f"{self.model_path}: expected outputs {list(EXPECTED_OUTPUTS)}, got {outputs}")
        # The paste reads any M x M grid, but a grid that contradicts the metadata means a mislabelled file.
        grid = self.session.get_outputs()[3].shape[1:]
        if all(isinstance(d, int) for d in grid) and tuple(grid) != (self.metadata.mask_size,) * 2:
            raise ModelError(f"{self.model_path}: mask_probs are {grid[0]}x{grid[1]} but the metadata says "
                             f"mask_size {self.metadata.mask_size}")
        self.input_name = image_inputs[0].name
        self.threshold_input = scalar_inputs[0].name if scalar_inputs else None

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The graph's outputs for a validated image: boxes, scores, labels, M x M mask probabilities."""
        feed: dict[str, np.ndarray] = {self.input_name: image}
        if self.threshold_input is not None:
            feed[self.threshold_input] = np.asarray(self.score_threshold, np.float32)
        boxes, scores, labels, probs = self.session.run(None, feed)
        return boxes, scores, labels, probs

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """What the model sees of a validated frame: levelled (``background="level"``) or as given."""
        return prepared_input(image, self.background, self.background_radius)

    def segment(self, image: np.ndarray) -> Detections:
        image = validate_image(image)
        if self.input_size is not None and image.shape != tuple(self.input_size):
            raise InputError(f"image {image.shape[0]}x{image.shape[1]} does not match the configured model input "
                             f"{self.input_size[0]}x{self.input_size[1]}")
        return segment_views(self._detect, self.model_input(image), self.views, self.mask_threshold,
                             self.mask_shape, self.refiner)

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes, scores and M x M mask probabilities of the detections at or above the score threshold."""
        boxes, scores, _, probs = self.raw(image)
        keep = scores >= self.score_threshold
        return boxes[keep].astype(np.float32).reshape(-1, 4), scores[keep].astype(np.float32), probs[keep]
