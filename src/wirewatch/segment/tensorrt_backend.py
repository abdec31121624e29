"""TensorRT engine segmenter (NVIDIA GPUs). No torch: the ``tensorrt`` package plus ``cuda-python``.

The engine is built by ``wirewatch export --format tensorrt`` from the same ONNX graph
(outputs ``boxes``, ``scores``, ``labels``, ``mask_probs``, fixed input size) and its
metadata lives in the side-car ``ENGINE.json``. Masks are pasted on the CPU with the
same code as the onnxruntime backend, so both return the same ``Detections``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.errors import BackendUnavailable, InputError, ModelError
from wirewatch.segment.background import DEFAULT_RADIUS, check_background, prepared_input
from wirewatch.segment.model_files import read_engine_metadata, resolve_model_path
from wirewatch.segment.onnx_backend import validate_image
from wirewatch.segment.refine import MaskRefiner, resolve_refiner
from wirewatch.segment.shape_fit import check_mask_shape
from wirewatch.segment.views import check_views, segment_views
from wirewatch.types import Detections


def gpu_unavailable_reason() -> str | None:
    """Why TensorRT cannot run here (None when it can): package, CUDA bindings, driver, device."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the tensorrt package is not installed (pip install 'wirewatch[gpu]' on a machine with an NVIDIA GPU)"
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        return "cuda-python is not installed (pip install cuda-python), needed to move data to the GPU"
    if shutil.which("nvidia-smi") is None and not Path("/dev/nvidia0").exists():
        return "no NVIDIA GPU or driver found (no nvidia-smi, no /dev/nvidia0)"
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count == 0:
        return f"CUDA reports no usable GPU ({err})"
    return None


def _check(result: Any) -> Any:
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise ModelError(f"CUDA call failed: {err}")
    return rest[0] if len(rest) == 1 else rest


class TensorRTSegmenter:
    """``Segmenter`` running a serialised TensorRT engine on the first GPU."""

    name = "tensorrt"

    def __init__(self, model: str | Path, score_threshold: float | None = None,
                 mask_threshold: float | None = None, views: int = 1, mask_shape: str = "free",
                 background: str = "level", background_radius: float = DEFAULT_RADIUS,
                 mask_refine: object = "auto") -> None:
        self.views = check_views(views)  # passes per frame: the frame and its mirror images (segment.views)
        self.mask_shape = check_mask_shape(mask_shape)  # free masks, or fitted rectangles / rods (shape_fit)
        # masks corrected against the frame (segment.refine), on the CPU; an engine is no ONNX file whose sha256
        # a refiner could name, so "auto" means none here: ask for mask_refine=default (or a path) explicitly
        refiner_path = None if mask_refine == "auto" else resolve_refiner(mask_refine)
        # the model knows zero backgrounds only: level the frame's own first (segment.background)
        self.background, self.background_radius = check_background(background, background_radius)
        reason = gpu_unavailable_reason()
        if reason is not None:
            raise BackendUnavailable(f"tensorrt backend unavailable: {reason}")
        import tensorrt as trt
        from cuda.bindings import runtime as cudart

        if str(model) == "default":
            raise ModelError("the tensorrt backend needs an engine file built on this GPU: "
                             "wirewatch export --format tensorrt --onnx <default.onnx> --out model.engine")
        self.engine_path = resolve_model_path(model, suffix=".engine")
        self.metadata = read_engine_metadata(self.engine_path)
        self.score_threshold = self.metadata.score_threshold if score_threshold is None else score_threshold
        self.mask_threshold = self.metadata.mask_threshold if mask_threshold is None else mask_threshold
        self._trt = trt
        self._cudart = cudart
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if engine is None:
            raise ModelError(f"{self.engine_path} is not a TensorRT engine for this GPU / TensorRT version")
        self.engine = engine
        self.context = engine.create_execution_context()
        self.stream = _check(cudart.cudaStreamCreate())
        self.shape = (self.metadata.input_height, self.metadata.input_width)
        self.refiner = None if refiner_path is None else MaskRefiner(refiner_path, threads=2)
        self._buffers: dict[str, tuple[np.ndarray, int]] = {}
        self._inputs: list[str] = []
        self.max_detections = int(self.metadata.raw.get("max_detections", 100))
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = tuple(engine.get_tensor_shape(name))
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            if is_input:
                shape = self.shape if name == "image" else ()  # the other input is the scalar score threshold
                self.context.set_input_shape(name, shape)
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            # Data-dependent output sizes (-1) get room for the fixed maximum number of detections.
            host = np.zeros([int(s) if int(s) >= 0 else self.max_detections for s in shape], dtype)
            if is_input:
                self._inputs.append(name)
                if name != "image":
                    host[...] = self.score_threshold
            device = _check(cudart.cudaMalloc(host.nbytes))
            self.context.set_tensor_address(name, device)
            self._buffers[name] = (host, device)

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """What the model sees of a validated frame: levelled (``background="level"``) or as given."""
        return prepared_input(image, self.background, self.background_radius)

    def segment(self, image: np.ndarray) -> Detections:
        image = validate_image(image)
        if image.shape != self.shape:
            raise InputError(f"image {image.shape[0]}x{image.shape[1]} does not match the engine's fixed input "
                             f"{self.shape[0]}x{self.shape[1]}")
        return segment_views(self._detect, self.model_input(image), self.views, self.mask_threshold,
                             self.mask_shape, self.refiner)

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes, scores and M x M mask probabilities of the detections at or above the score threshold."""
        cudart = self._cudart
        kind_h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        kind_d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._buffers["image"][0][...] = image
        for name in self._inputs:
            host, device = self._buffers[name]
            _check(cudart.cudaMemcpyAsync(device, host.ctypes.data, host.nbytes, kind_h2d, self.stream))
        if not self.context.execute_async_v3(self.stream):
            raise ModelError("TensorRT execution failed")
        outputs: dict[str, np.ndarray] = {}
        for name, (h, d) in self._buffers.items():
            if name not in self._inputs:
                _check(cudart.cudaMemcpyAsync(h.ctypes.data, d, h.nbytes, kind_d2h, self.stream))
                outputs[name] = h
        _check(cudart.cudaStreamSynchronize(self.stream))
        # Fixed-size outputs: padded rows carry score 0 (or -1) and are dropped by the threshold.
        count = outputs.get("num_detections")
        if count is not None:
            n = int(count.reshape(-1)[0])
        else:  # the ONNX graph's dynamic detection axis: its size after execution
            n = min(int(self.context.get_tensor_shape("scores")[0]), self.max_detections)
        boxes = outputs["boxes"].reshape(-1, 4)[:n].astype(np.float32)
        scores = outputs["scores"].reshape(-1)[:n].astype(np.float32)
        probs = outputs["mask_probs"].reshape(-1, *outputs["mask_probs"].shape[-2:])[:n].astype(np.float32)
        keep = scores >= self.score_threshold
        return boxes[keep], scores[keep], probs[keep]
