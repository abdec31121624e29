"""The onnxruntime engine: the exported Mask R-CNN graph run in onnxruntime (``OnnxEngine``).

CPU by default; CUDA and TensorRT execution providers are used when onnxruntime-gpu
provides them (or when asked for by name, with a clear error when absent). Levelling, views,
mask pasting, refinement and shape fits are ``ModelSegmenter``'s (``wirewatch.segment.model``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.errors import BackendUnavailable, InputError, ModelError
from wirewatch.segment.engine import RawDetections, check_threshold
from wirewatch.segment.model import MIN_SIDE, ModelSegmenter, compose, validate_image
from wirewatch.segment.model_files import DEFAULT_MODEL, OUTPUT_NAMES, ModelMetadata, resolve_model_path

log = logging.getLogger(__name__)

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
__all__ = ["MIN_SIDE", "OnnxEngine", "OnnxSegmenter", "choose_providers", "usable_cores", "validate_image"]


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


def usable_cores() -> int:
    """CPU cores this process may run on (affinity / container limits), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxEngine:
    """``DetectionEngine`` running an exported model in onnxruntime."""

    name = "onnxruntime"

    def __init__(self, model: str | Path = DEFAULT_MODEL, providers: Sequence[str] | None = None,
                 score_threshold: float | None = None, input_size: tuple[int, int] | None = None,
                 threads: int | None = None, spinning: bool = False) -> None:
        import onnxruntime as ort

        self.model_path = resolve_model_path(model)
        self.model_file: Path | None = self.model_path  # a mask refiner names the ONNX file it was trained for
        self.providers = choose_providers(providers)
        if threads is not None and threads < 1:
            raise InputError(f"threads must be at least 1, got {threads}")
        self.threads = usable_cores() if threads is None else int(threads)
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
        self.input_shape: tuple[int, int] | None = None if input_size is None else (int(input_size[0]),
                                                                                    int(input_size[1]))
        threshold = self.metadata.score_threshold if score_threshold is None else float(score_threshold)
        self.score_threshold = check_threshold("score_threshold", threshold)
        self.active_providers = self.session.get_providers()
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
        if tuple(outputs) != OUTPUT_NAMES:
            raise ModelError(f"{self.model_path}: expected outputs {list(OUTPUT_NAMES)}, got {outputs}")
        # The paste reads any M x M grid, but a grid that contradicts the metadata means a mislabelled file.
        grid = self.session.get_outputs()[3].shape[1:]
        if all(isinstance(d, int) for d in grid) and tuple(grid) != (self.metadata.mask_size,) * 2:
            raise ModelError(f"{self.model_path}: mask_probs are {grid[0]}x{grid[1]} but the metadata says "
                             f"mask_size {self.metadata.mask_size}")
        # the inputs are found by their shapes, so graphs whose inputs are not named as export names them run too
        self.input_name = image_inputs[0].name
        self.threshold_input = scalar_inputs[0].name if scalar_inputs else None

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The graph's outputs for a validated image: boxes, scores, labels, M x M mask probabilities."""
        feed: dict[str, np.ndarray] = {self.input_name: image}
        if self.threshold_input is not None:
            feed[self.threshold_input] = np.asarray(self.score_threshold, np.float32)
        boxes, scores, labels, probs = self.session.run(None, feed)
        return boxes, scores, labels, probs

    def infer(self, image: np.ndarray) -> RawDetections:
        """Boxes, scores and M x M mask probabilities of the detections at or above the score threshold."""
        boxes, scores, _, probs = self.raw(image)
        keep = scores >= self.score_threshold
        return RawDetections(boxes[keep].astype(np.float32).reshape(-1, 4), scores[keep].astype(np.float32),
                             probs[keep])


def OnnxSegmenter(model: str | Path = DEFAULT_MODEL, **options: Any) -> ModelSegmenter:
    """The onnxruntime engine composed with the shared post-processing: what ``load_segmenter("onnxruntime")``
    builds (the name of the class this used to be; options as ``OnnxEngine`` and ``ModelSegmenter`` take them)."""
    return compose(OnnxEngine, {"model": model, **options})
