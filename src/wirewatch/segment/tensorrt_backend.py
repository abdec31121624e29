"""The TensorRT engine (NVIDIA GPUs): ``TensorRTEngine``. No torch: the ``tensorrt`` package plus ``cuda-python``.

The engine is built by ``wirewatch export --format tensorrt`` from the same ONNX graph
(``segment.model_files``: input ``image``, outputs ``boxes``, ``scores``, ``labels``, ``mask_probs``,
fixed input size) and its metadata lives in the side-car ``ENGINE.json``. Levelling, views, mask
pasting, refinement and shape fits run on the CPU in ``ModelSegmenter`` (``wirewatch.segment.model``),
the same code as for the onnxruntime engine, so both return the same ``Detections``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.errors import BackendUnavailable, ModelError
from wirewatch.segment.engine import RawDetections
from wirewatch.segment.model import ModelSegmenter, compose
from wirewatch.segment.model_files import INPUT_NAME, OUTPUT_NAMES, read_engine_metadata, resolve_model_path


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


class TensorRTEngine:
    """``DetectionEngine`` running a serialised TensorRT engine on the first GPU."""

    name = "tensorrt"
    model_file: Path | None = None  # an engine is no ONNX file whose sha256 a mask refiner could name
    threads = 2  # CPU threads of the mask refiner beside the GPU
    spinning = False

    def __init__(self, model: str | Path, score_threshold: float | None = None) -> None:
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
        self.input_shape: tuple[int, int] | None = self.shape  # the engine's input size is fixed when it is built
        self._buffers: dict[str, tuple[np.ndarray, int]] = {}
        self._inputs: list[str] = []
        self.max_detections = int(self.metadata.raw.get("max_detections", 100))
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = tuple(engine.get_tensor_shape(name))
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            if is_input:
                shape = self.shape if name == INPUT_NAME else ()  # the other input is the scalar score threshold
                self.context.set_input_shape(name, shape)
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            # Data-dependent output sizes (-1) get room for the fixed maximum number of detections.
            host = np.zeros([int(s) if int(s) >= 0 else self.max_detections for s in shape], dtype)
            if is_input:
                self._inputs.append(name)
                if name != INPUT_NAME:
                    host[...] = self.score_threshold
            device = _check(cudart.cudaMalloc(host.nbytes))
            self.context.set_tensor_address(name, device)
            self._buffers[name] = (host, device)

    def infer(self, image: np.ndarray) -> RawDetections:
        """Boxes, scores and M x M mask probabilities of the detections at or above the score threshold."""
        cudart = self._cudart
        kind_h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        kind_d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._buffers[INPUT_NAME][0][...] = image
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
        count = outputs.get("num_detections")
        if count is not None:
            n = int(count.reshape(-1)[0])
        else:  # the ONNX graph's dynamic detection axis: its size after execution
            n = min(int(self.context.get_tensor_shape(OUTPUT_NAMES[1])[0]), self.max_detections)
        return raw_from_outputs(outputs, n, self.score_threshold)


def raw_from_outputs(outputs: dict[str, np.ndarray], n: int, score_threshold: float) -> RawDetections:
    """The first ``n`` rows of the engine's fixed-size output buffers, cut at ``score_threshold`` (padded rows
    carry score 0 or -1 and are dropped by it)."""
    boxes_name, scores_name, _, probs_name = OUTPUT_NAMES
    boxes = outputs[boxes_name].reshape(-1, 4)[:n].astype(np.float32)
    scores = outputs[scores_name].reshape(-1)[:n].astype(np.float32)
    probs = outputs[probs_name].reshape(-1, *outputs[probs_name].shape[-2:])[:n].astype(np.float32)
    keep = scores >= score_threshold
    return RawDetections(boxes[keep], scores[keep], probs[keep])


def TensorRTSegmenter(model: str | Path, **options: Any) -> ModelSegmenter:
    """The TensorRT engine composed with the shared post-processing: what ``load_segmenter("tensorrt")`` builds
    (the name of the class this used to be). ``mask_refine`` ``auto`` means none here: ask for ``default`` or a
    path explicitly."""
    return compose(TensorRTEngine, {"model": model, **options})
