"""ModelSegmenter (an engine plus the composed post-processing) gives exactly what the backends gave before the
composition existed: boxes, scores, mask scores and masks of the packaged model on 3 synthetic frames under 7
option sets (defaults, scale auto / multi / a factor, polarity auto / dark, views, shape fits, tiling, thresholds),
compared with the output recorded before the refactor (``tests/data/model_segmenter_baseline.npz``).

The baseline also holds the sha256 of the packaged model and refiner it was recorded with: when they differ
the packaged model changed, and the failure says so. Record again (only when outputs are meant to change, e.g.
a new default model shipped): ``python tests/unit/test_model_segmenter.py --record``; ``--check`` records to a
temporary file and says whether it reproduces the committed baseline exactly (nothing is written).
Also: an engine registered by one line gets the whole composition, and the TensorRT engine's host-side step
(its padded output buffers) gives the onnxruntime engine's raw detections (no GPU needed).
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
MODEL_FILES = ("default.onnx", "default.refiner.onnx")  # the packaged files the outputs depend on

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


def model_hashes() -> dict[str, np.ndarray]:
    """``model/<file>`` -> sha256 of each packaged model file (``"missing"`` when it is not there)."""
    from wirewatch.segment.model_files import packaged_model_path

    out = {}
    for name in MODEL_FILES:
        path = packaged_model_path(name)
        sha = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
        out[f"model/{name}"] = np.asarray(sha, dtype="U64")
    return out


def record(path: Path = BASELINE) -> None:
    arrays: dict[str, np.ndarray] = dict(model_hashes())
    for name in CASES:
        for i, det in enumerate(run_case(name)):
            for key, value in digest(det).items():
                arrays[f"{name}/{i}/{key}"] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]  # numpy stubs read ** as allow_pickle
    print(f"recorded {len(CASES)} cases x {len(frames())} frames -> {path} ({path.stat().st_size} bytes)")


@pytest.mark.parametrize("name", list(CASES))
def test_composed_model_segmenter_matches_the_pre_refactor_output(name: str) -> None:
    baseline = np.load(BASELINE)
    stored = {key: str(baseline[key]) for key in baseline.files if key.startswith("model/")}
    changed = [f"{key[6:]} is {sha} here, {stored.get(key, 'not recorded')} in the baseline"
               for key, sha in model_hashes().items() if stored.get(key) != str(sha)]
    why = ("" if not changed else " -- the packaged model changed since the baseline was recorded ("
           + "; ".join(changed) + "): if the new model is meant to ship, record again with "
           "`python tests/unit/test_model_segmenter.py --record` on code whose outputs are otherwise unchanged")
    for i, det in enumerate(run_case(name)):
        got = digest(det)
        assert len(det) > 0 or name == "multi_dark", f"{name} frame {i}: no detections (a useless comparison)"
        for key, value in got.items():
            want = baseline[f"{name}/{i}/{key}"]
            assert value.shape == want.shape, f"{name} frame {i} {key}: {value.shape} != {want.shape}{why}"
            assert np.array_equal(value, want, equal_nan=value.dtype.kind == "f"), f"{name} frame {i}: {key} differ{why}"


def check(path: Path = BASELINE) -> bool:
    """Record to a temporary file and compare every output array with ``path`` exactly (model hashes aside)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "baseline.npz"
        record(fresh)
        new, old = dict(np.load(fresh)), dict(np.load(path))
    outputs = lambda arrays: {k for k in arrays if not k.startswith("model/")}  # noqa: E731
    same = outputs(new) == outputs(old) and all(
        np.array_equal(new[k], old[k], equal_nan=new[k].dtype.kind == "f") for k in outputs(new))
    print(f"{'reproduces' if same else 'does NOT reproduce'} {path} exactly")
    return same


if __name__ == "__main__" and "--record" in sys.argv:
    record()
if __name__ == "__main__" and "--check" in sys.argv:
    sys.exit(0 if check() else 1)


class WrappedEngine:
    """A second engine, registered by one line in a test: the onnxruntime engine under another name."""

    name = "wrapped"

    def __init__(self, model: str = "default", threads: int = 1) -> None:
        from wirewatch.segment.onnx_backend import OnnxEngine

        self.inner = OnnxEngine(model, threads=threads)
        self.metadata, self.score_threshold = self.inner.metadata, self.inner.score_threshold
        self.input_shape, self.model_file = None, self.inner.model_file
        self.threads, self.spinning = self.inner.threads, False
        self.calls = 0

    def infer(self, image: np.ndarray) -> Any:
        self.calls += 1
        return self.inner.infer(image)


def test_an_engine_registered_by_one_line_gets_the_whole_composition(monkeypatch: pytest.MonkeyPatch) -> None:
    from wirewatch.segment import ENGINES, load_segmenter
    from wirewatch.segment.engine import DetectionEngine
    from wirewatch.segment.model import ModelSegmenter

    monkeypatch.setitem(ENGINES, "wrapped", f"{__name__}:WrappedEngine")
    options = {"threads": 1, "views": 2, "mask_shape": "rod", "background_radius": 16.0}
    mine = load_segmenter("wrapped", **options)
    ours = load_segmenter("onnxruntime", **options)
    assert isinstance(mine, ModelSegmenter) and isinstance(mine.engine, DetectionEngine) and mine.name == "wrapped"
    assert mine.refiner is not None  # mask_refine auto: the shipped refiner names the engine's model file
    frame = frames()[0]
    a, b = mine.segment(frame), ours.segment(frame)
    assert mine.engine.calls == 2  # type: ignore[attr-defined]  # the frame and its mirror image (views=2)
    assert len(a) == len(b) > 10
    for key, value in digest(a).items():
        assert np.array_equal(value, digest(b)[key]), key
    with pytest.raises(Exception, match="views must be one of"):
        load_segmenter("wrapped", views=3)  # the composition's options are checked before the engine loads


def test_tensorrt_output_buffers_give_the_onnx_engines_raw_detections() -> None:
    """The TensorRT engine's host-side step (no GPU here): fixed-size buffers padded past the detections, cut to
    the count and the score threshold, give what the onnxruntime engine gives for the same graph outputs."""
    from wirewatch.segment.model_files import OUTPUT_NAMES
    from wirewatch.segment.onnx_backend import OnnxEngine
    from wirewatch.segment.tensorrt_backend import raw_from_outputs

    engine = OnnxEngine("default", threads=1, score_threshold=0.3)
    image = frames()[0]
    boxes, scores, labels, probs = engine.raw(image)
    n, cap = len(scores), 100
    assert 0 < n < cap
    padded: dict[str, np.ndarray] = {}
    for name, a in zip(OUTPUT_NAMES, (boxes, scores, labels, probs), strict=True):
        padded[name] = np.zeros((cap, *a.shape[1:]), a.dtype)
        padded[name][:n] = a
    padded[OUTPUT_NAMES[1]][n:] = -1.0  # padding rows: score -1, dropped by the threshold
    want = engine.infer(image)
    for count in (n, cap):  # num_detections given, or the whole buffer read
        got = raw_from_outputs(padded, count, engine.score_threshold)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == np.float32 and np.array_equal(g, w)



def test_the_daemon_config_takes_its_backend_names_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from wirewatch.config.daemon import SegmentConfig
    from wirewatch.segment import BACKENDS

    for name in ("auto", "onnxruntime", "tensorrt", "watershed", "ray"):
        assert SegmentConfig(backend=name).backend == name
    with pytest.raises(ValidationError, match="not a segmenter backend; allowed: auto, onnxruntime, ray, tensorrt"):
        SegmentConfig(backend="wrapped")
    monkeypatch.setitem(BACKENDS, "wrapped", f"{__name__}:WrappedEngine")  # as ENGINES' line adds it at import
    assert SegmentConfig(backend="wrapped").backend == "wrapped"
