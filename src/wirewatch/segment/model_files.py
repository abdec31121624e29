"""Find model files (``--model default`` -> the packaged ONNX) and read/validate their metadata.

No torch here: metadata is read through onnxruntime (ONNX ``metadata_props``) or,
for TensorRT engines, from the JSON side-car written next to the engine.

The exported graph's input and output names are defined here, once, beside the metadata they go with:
the exporter (``wirewatch.export``) writes them, the engines (``onnx_backend``, ``tensorrt_backend``) read them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from wirewatch.errors import ModelError

DEFAULT_MODEL = "default"
METADATA_FORMAT = "wirewatch-maskrcnn-1"
# The exported graph: one grey frame (H, W) float32 0..1 and a scalar score threshold in; per detection at or above
# it a box (x0, y0, x1, y1), a score, a label and an M x M mask probability grid out (M: metadata ``mask_size``).
INPUT_NAME = "image"
THRESHOLD_INPUT = "score_threshold"
OUTPUT_NAMES = ("boxes", "scores", "labels", "mask_probs")
REQUIRED_KEYS = ("format", "input_height", "input_width", "class_names", "variant", "score_threshold")


def packaged_model_path(name: str = "default.onnx") -> Path:
    """Path of a model file shipped inside the package (``wirewatch/models/``)."""
    return Path(str(resources.files("wirewatch").joinpath("models", name)))


def resolve_model_path(model: str | Path, suffix: str = ".onnx") -> Path:
    """``"default"`` -> the packaged default model; anything else is a path that must exist."""
    if str(model) == DEFAULT_MODEL:
        path = packaged_model_path(f"default{suffix}")
        if not path.is_file():
            raise ModelError(f"the packaged default model is missing ({path}); reinstall wirewatch "
                             "or pass --model PATH to an exported model")
        return path
    path = Path(model).expanduser()
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelError(f"model path is not a file: {path}")
    return path


@dataclass(frozen=True)
class ModelMetadata:
    """What the exporter embedded in the model file, parsed and checked."""

    input_height: int
    input_width: int
    class_names: tuple[str, ...]
    variant: str
    score_threshold: float
    mask_threshold: float = 0.5
    mask_size: int = 28
    training_data_config_hash: str = "unknown"
    raw: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, meta: Mapping[str, str], source: str) -> ModelMetadata:
        missing = [k for k in REQUIRED_KEYS if k not in meta]
        if missing:
            raise ModelError(f"{source} has no wirewatch metadata ({', '.join(missing)} missing); "
                             "export it with `wirewatch export`")
        if meta["format"] != METADATA_FORMAT:
            raise ModelError(f"{source} metadata format {meta['format']!r} is not {METADATA_FORMAT!r}")
        try:
            names = json.loads(meta["class_names"])
            return cls(
                input_height=int(meta["input_height"]), input_width=int(meta["input_width"]),
                class_names=tuple(str(n) for n in names), variant=meta["variant"],
                score_threshold=float(meta["score_threshold"]),
                mask_threshold=float(meta.get("mask_threshold", 0.5)),
                mask_size=int(meta.get("mask_size", 28)),
                training_data_config_hash=meta.get("training_data_config_hash", "unknown"),
                raw=dict(meta),
            )
        except (ValueError, TypeError) as exc:
            raise ModelError(f"{source} has unreadable metadata: {exc}") from None

    def summary(self) -> dict[str, Any]:
        return {"variant": self.variant, "input": f"{self.input_height}x{self.input_width}",
                "classes": list(self.class_names), "score_threshold": self.score_threshold,
                "training_data_config_hash": self.training_data_config_hash}


def read_onnx_metadata(path: str | Path) -> ModelMetadata:
    """Metadata of an exported ONNX model (loads it in onnxruntime: also proves it is readable)."""
    import onnxruntime as ort

    p = resolve_model_path(path)
    try:
        session = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"cannot load ONNX model {p}: {exc}") from None
    return ModelMetadata.from_mapping(session.get_modelmeta().custom_metadata_map, str(p))


def engine_metadata_path(engine: str | Path) -> Path:
    """The JSON side-car holding a TensorRT engine's metadata."""
    return Path(str(engine) + ".json")


def read_engine_metadata(engine: str | Path) -> ModelMetadata:
    side = engine_metadata_path(engine)
    try:
        meta = json.loads(side.read_text())
    except FileNotFoundError:
        raise ModelError(f"TensorRT engine {engine} has no metadata side-car {side}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read engine metadata {side}: {exc}") from None
    return ModelMetadata.from_mapping({str(k): str(v) for k, v in meta.items()}, str(side))
