"""Build a TensorRT engine from the exported ONNX graph (NVIDIA GPU machines only).

The ONNX graph's NMS (``NonMaxSuppression``) and ``RoiAlign`` map onto TensorRT's
INMSLayer and RoiAlign plugin/layer (TensorRT >= 10). The input is fixed to the
metadata's size; detections are capped at ``max_detections`` so the engine has
fixed-size outputs. Metadata goes to the side-car ``ENGINE.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from wirewatch.errors import BackendUnavailable, ModelError
from wirewatch.segment.model_files import INPUT_NAME, engine_metadata_path
from wirewatch.segment.tensorrt_backend import gpu_unavailable_reason

log = logging.getLogger(__name__)


def build_engine(checkpoint: str | Path | None, out: str | Path, *, onnx_path: str | Path | None = None,
                 fp16: bool = True, max_detections: int = 100, input_size: tuple[int, int] = (512, 512),
                 score_threshold: float = 0.5, workspace_gib: float = 4.0) -> Path:
    """Serialise an engine to ``out`` (and ``out.json``); BackendUnavailable without a GPU."""
    reason = gpu_unavailable_reason()
    if reason is not None:
        raise BackendUnavailable(f"cannot build a TensorRT engine: {reason}")
    import onnxruntime as ort
    import tensorrt as trt

    out = Path(out)
    if onnx_path is None:
        if checkpoint is None:
            raise ModelError("give a checkpoint or --onnx FILE to build the engine from")
        from wirewatch.export.onnx import export_onnx

        onnx_path = export_onnx(checkpoint, out.with_suffix(".onnx"), input_size=input_size,
                                score_threshold=score_threshold)
    onnx_path = Path(onnx_path)
    meta = dict(ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
                .get_modelmeta().custom_metadata_map)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, input_size, input_size, input_size)
    # The score threshold input stays a runtime scalar (set by segment.tensorrt_backend.TensorRTEngine).
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"TensorRT failed to build an engine from {onnx_path}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(serialized))
    meta.update({"input_height": str(input_size[0]), "input_width": str(input_size[1]),
                 "precision": "fp16" if fp16 else "fp32", "max_detections": str(max_detections),
                 "score_threshold": str(score_threshold)})
    engine_metadata_path(out).write_text(json.dumps(meta, indent=1))
    log.info("built TensorRT engine %s (%s)", out, meta["precision"])
    return out
