"""Segmenter backends behind one interface (``Segmenter``), chosen by name.

Model backends are engines (``wirewatch.segment.engine.DetectionEngine``: frame in, raw detections out) listed
in ``ENGINES``; ``load_segmenter`` composes the named engine with the post-processing every model shares
(``wirewatch.segment.model.ModelSegmenter``). ``BACKENDS`` lists the segmenters that are whole by themselves
(the watershed baseline, the ray backend whose replicas hold composed segmenters). Both map names to
``module:Name`` so that a backend's heavy imports (onnxruntime, tensorrt, ray) happen only when it is chosen.
"""

from __future__ import annotations

import importlib
from typing import Any

from wirewatch.errors import InputError
from wirewatch.segment.base import Segmenter

# name -> DetectionEngine class: adding a model backend is one engine module plus one line here
ENGINES: dict[str, str] = {
    "onnxruntime": "wirewatch.segment.onnx_backend:OnnxEngine",
    "tensorrt": "wirewatch.segment.tensorrt_backend:TensorRTEngine",
}
# name -> Segmenter class (whole segmenters, no engine)
SEGMENTERS: dict[str, str] = {
    "watershed": "wirewatch.segment.watershed:WatershedSegmenter",
    "ray": "wirewatch.segment.ray_backend:RaySegmenter",  # Ray Serve replicas (pip install 'wirewatch[ray]')
}
BACKENDS: dict[str, str] = {**SEGMENTERS, **ENGINES}  # every name load_segmenter takes


def _load(target: str) -> Any:
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def load_segmenter(name: str, **options: Any) -> Segmenter:
    """Build the backend called ``name`` with its keyword options (e.g. ``model=``): an engine in ``ENGINES``
    composed into a ``ModelSegmenter`` (``views``, ``mask_shape``, ``background``, ``mask_refine``, ... go to
    the composition, the rest to the engine), or a segmenter in ``SEGMENTERS``."""
    if name in ENGINES:
        from wirewatch.segment.model import compose

        return compose(_load(ENGINES[name]), options)
    try:
        target = SEGMENTERS[name]
    except KeyError:
        raise InputError(f"unknown segmenter backend {name!r}; allowed: {', '.join(sorted(BACKENDS))}") from None
    segmenter: Segmenter = _load(target)(**options)
    return segmenter


__all__ = ["BACKENDS", "ENGINES", "SEGMENTERS", "Segmenter", "load_segmenter"]
