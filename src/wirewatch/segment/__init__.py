"""Segmenter backends behind one interface (``Segmenter``), chosen by name.

The registry maps backend names to ``module:Class`` so that a backend's heavy
imports (onnxruntime, tensorrt) happen only when it is chosen.
"""

from __future__ import annotations

import importlib
from typing import Any

from wirewatch.errors import InputError
from wirewatch.segment.base import Segmenter

BACKENDS: dict[str, str] = {
    "watershed": "wirewatch.segment.watershed:WatershedSegmenter",
    "onnxruntime": "wirewatch.segment.onnx_backend:OnnxSegmenter",
    "tensorrt": "wirewatch.segment.tensorrt_backend:TensorRTSegmenter",
    "ray": "wirewatch.segment.ray_backend:RaySegmenter",  # Ray Serve replicas (pip install 'wirewatch[ray]')
}


def load_segmenter(name: str, **options: Any) -> Segmenter:
    """Build the backend called ``name`` with its keyword options (e.g. ``model=``)."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise InputError(f"unknown segmenter backend {name!r}; allowed: {', '.join(sorted(BACKENDS))}") from None
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    segmenter: Segmenter = cls(**options)
    return segmenter


__all__ = ["BACKENDS", "Segmenter", "load_segmenter"]
