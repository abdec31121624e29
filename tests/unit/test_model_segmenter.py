"""ModelSegmenter (an engine plus the composed post-processing) gives exactly what the backends gave before the
composition existed: boxes, scores, mask scores and masks of the packaged model on 3 synthetic frames under 7
option sets (defaults, scale auto / multi / a factor, polarity auto / dark, views, shape fits, tiling, thresholds),
compared with the output recorded before the refactor (``tests/data/model_segmenter_baseline.npz``).

Record again (only when outputs are meant to change): ``python tests/unit/test_model_segmenter.py --record``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wirewatch.preprocess.config import PreprocessConfig
from wirewatch.synth import generate, magnify, preset_config
from wirewatch.types import Detections

BASELINE = Path(__file__).resolve().parents[1] / "data" / "model_segmenter_baseline.npz"

# name -> (segment.options, preprocess settings, segment.max_detections)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], int | None]] = {
    "defaults": ({}, {}, None),  # scale auto, polarity auto, views 1, refiner auto, background level
    "plain": ({"scale": "none", "polarity": "bright"}, {}, None),
    "auto_window": ({"scale": "auto", "polarity": "auto", "scale_window": 3}, {}, None),
    "multi_dark": ({"scale": "multi", "polarity": "dark"}, {}, None),
    "factor_views_rod": ({"scale": 0.75, "views": 2, "mask_shape": "rod", "mask_refine": "none"}, {}, None),
    "tiled_as_given": ({"scale": "none", "background": "none", "views": 4, "mask_shape": "rect"},
                       {"max_side": 200, "fit": "tile", "tile_size": 128, "tile_overlap": 32}, 20),
    "thresholds": ({"score_threshold": 0.3, "mask_threshold": 0.4, "background_radius": 12.0}, {}, None),
}


def frames() -> list[np.ndarray]:
    """A default-preset frame, one at 2x magnification (scale auto halves it) and dark wires on a bright field."""
    plain = generate(preset_config("ptychography", 256), 41001).image
    wide = generate(magnify(preset_config("ptychography", 256), 2.0), 41002).image
    dark = 255 - generate(preset_config("realistic", 256), 41003).image
    return [np.asarray(f, np.float32) / np.float32(255.0) for f in (plain, wide, dark)]


def digest(det: Detections) -> dict[str, np.ndarray]:
    """Everything a Detections holds, masks as one sha256 each (exact, and small enough to keep)."""
    masks = [hashlib.sha256(np.packbits(m).tobytes() + str(m.shape).encode()).hexdigest() for m in det.masks]
    return {"boxes": np.asarray(det.boxes, np.float32), "scores": np.asarray(det.scores, np.float32),
            "mask_scores": (np.full(len(det), np.nan, np.float32) if det.mask_scores is None
                            else np.asarray(det.mask_scores, np.float32)),
            "masks": np.asarray(masks, dtype="U64"), "shape": np.asarray(det.image_shape, np.int64)}


def run_case(name: str) -> list[Detections]:
    """The case's frames through the runtime's whole path (``load_fitted_segmenter``), in order (scale auto keeps
    a window of widths across frames)."""
    from wirewatch.segment.fit import load_fitted_segmenter

    options, preprocess, max_detections = CASES[name]
    seg = load_fitted_segmenter("onnxruntime", {"model": "default", "threads": 1, **options},
                                preprocess=PreprocessConfig(**preprocess), max_detections=max_detections)
    return [seg.segment(f) for f in frames()]


def record(path: Path = BASELINE) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name in CASES:
        for i, det in enumerate(run_case(name)):
            for key, value in digest(det).items():
                arrays[f"{name}/{i}/{key}"] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    print(f"recorded {len(CASES)} cases x {len(frames())} frames -> {path} ({path.stat().st_size} bytes)")


@pytest.mark.parametrize("name", list(CASES))
def test_composed_model_segmenter_matches_the_pre_refactor_output(name: str) -> None:
    baseline = np.load(BASELINE)
    for i, det in enumerate(run_case(name)):
        got = digest(det)
        assert len(det) > 0 or name == "multi_dark", f"{name} frame {i}: no detections (a useless comparison)"
        for key, value in got.items():
            want = baseline[f"{name}/{i}/{key}"]
            assert value.shape == want.shape, f"{name} frame {i} {key}: {value.shape} != {want.shape}"
            assert np.array_equal(value, want, equal_nan=value.dtype.kind == "f"), f"{name} frame {i}: {key} differ"


if __name__ == "__main__" and "--record" in sys.argv:
    record()
