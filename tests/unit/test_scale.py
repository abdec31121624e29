"""segment.options.scale / polarity: the width estimate, the factor, and the shipped model on a frame and its
2x enlargement (real onnxruntime, the packaged default model)."""

import math

import cv2
import numpy as np
import pytest

from wirewatch.coco import boxes_of
from wirewatch.errors import InputError
from wirewatch.segment import Segmenter, load_segmenter
from wirewatch.segment.fit import FitSegmenter, load_fitted_segmenter, rescale_detections
from wirewatch.segment.scale import (
    MAX_FACTOR,
    auto_factor,
    covered_widths_nm,
    describe_coverage,
    estimate_wire_width,
    parse_scale,
    split_scale_options,
    wires_are_dark,
)
from wirewatch.stats import measure
from wirewatch.synth import generate, magnify, preset_config
from wirewatch.types import Detections


def _frame(preset: str = "ptychography", size: int = 512, seed: int = 37950, factor: float = 1.0) -> np.ndarray:
    cfg = preset_config(preset, size)
    if factor != 1.0:
        cfg = magnify(cfg, factor)
    return generate(cfg, seed).image.astype(np.float32) / np.float32(255.0)


@pytest.mark.parametrize("preset", ["ptychography", "realistic", "sem"])
def test_width_estimate_follows_magnification(preset: str) -> None:
    # the same kind of scene at 1x and 2x: the estimate doubles (median over frames within 20 %)
    ones = [estimate_wire_width(_frame(preset, seed=s)).width_px for s in range(38000, 38006)]
    twos = [estimate_wire_width(_frame(preset, seed=s, factor=2.0)).width_px for s in range(38000, 38006)]
    assert 1.6 < np.median(twos) / np.median(ones) < 2.4
    assert 7.0 < np.median(ones) < 14.0  # drawn widths 5-20 px, median 10


def test_width_estimate_of_an_enlarged_frame_and_under_noise() -> None:
    img = _frame()
    w1 = estimate_wire_width(img).width_px
    big = cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    assert estimate_wire_width(big).width_px == pytest.approx(2 * w1, rel=0.15)
    rng = np.random.default_rng(0)
    noisy = [estimate_wire_width(np.clip(img + rng.normal(0, 0.01, img.shape).astype(np.float32), 0, 1)).width_px
             for _ in range(10)]
    assert np.std(noisy) / np.mean(noisy) < 0.02  # the same scene: stable to noise re-draws
    assert math.isnan(estimate_wire_width(np.zeros((128, 128), np.float32)).width_px)  # no wires: no estimate


def test_dark_wires_on_a_bright_field_are_recognised_and_measured() -> None:
    img = _frame()
    assert not wires_are_dark(img, "auto") and wires_are_dark(1 - img, "auto")
    assert wires_are_dark(img, "dark") and not wires_are_dark(1 - img, "bright")
    assert estimate_wire_width(1 - img).width_px == pytest.approx(estimate_wire_width(img).width_px, rel=0.1)


def test_factor_dead_band_snapping_and_limits() -> None:
    assert auto_factor(10.0) == 1.0 and auto_factor(13.0) == 1.0 and auto_factor(7.5) == 1.0
    assert auto_factor(20.0) == pytest.approx(0.5)
    assert auto_factor(40.0) == pytest.approx(0.25)
    assert auto_factor(4.0) == pytest.approx(2 ** 1.25)  # 2.5 snapped to quarter octaves
    assert auto_factor(0.5) == MAX_FACTOR
    assert auto_factor(math.nan) == 1.0


def test_scale_option_parsing_and_defaults() -> None:
    assert parse_scale("auto") == "auto" and parse_scale("none") is None and parse_scale(None) is None
    assert parse_scale(0.5) == 0.5 and parse_scale("2") == 2.0 and parse_scale(1) is None
    for bad in ("big", -1, 0, 100, True):
        with pytest.raises(InputError, match="scale"):
            parse_scale(bad)
    runtime, rest = split_scale_options("onnxruntime", {"threads": 1})
    assert (runtime.scale, runtime.polarity, rest) == ("auto", "auto", {"threads": 1})
    runtime, rest = split_scale_options("watershed", {"merge_ratio": 0.6})
    assert (runtime.scale, runtime.polarity, rest) == (None, "bright", {"merge_ratio": 0.6})
    runtime, _ = split_scale_options("watershed", {"scale": 0.5, "scale_window": 3}, default_window=9)
    assert (runtime.scale, runtime.scale_window) == (0.5, 3)
    with pytest.raises(InputError, match="scale_window"):
        split_scale_options("onnxruntime", {"scale_window": 0})
    with pytest.raises(InputError, match="polarity"):
        split_scale_options("onnxruntime", {"polarity": "upside"})


def test_covered_widths_in_nm() -> None:
    low, high = covered_widths_nm(2.0)
    assert low == pytest.approx(5 / 4 * 2) and high == pytest.approx(20 * 8 * 2)
    assert "10-40 nm" in describe_coverage(2.0, factor=1.0)  # 5-20 px seen as trained, 2 nm / px


def test_rescaled_masks_keep_geometry() -> None:
    mask = np.zeros((1, 100, 100), bool)
    mask[0, 40:60, 10:90] = True
    det = Detections(boxes=np.array([[10, 40, 90, 60]], np.float32), scores=np.ones(1, np.float32), masks=mask,
                     image_shape=(100, 100))
    up = rescale_detections(det, (200, 200))
    assert up.masks[0].sum() == pytest.approx(4 * mask.sum(), rel=0.05)
    np.testing.assert_allclose(up.boxes[0], [20, 80, 180, 120], atol=1)
    down = rescale_detections(up, (100, 100))
    assert (down.masks[0] ^ mask[0]).sum() <= 4


@pytest.fixture(scope="module")
def model() -> Segmenter:
    return load_segmenter("onnxruntime", model="default", threads=2)


def test_load_fitted_segmenter_takes_the_runtime_options() -> None:
    fitted = load_fitted_segmenter("watershed", {"merge_ratio": 0.6, "scale": 0.5, "polarity": "dark"})
    assert isinstance(fitted, FitSegmenter) and fitted.max_side == 1024
    assert (fitted.scale, fitted.polarity, fitted.inner.merge_ratio) == (0.5, "dark", 0.6)  # type: ignore[attr-defined]


def test_the_fit_defaults_are_the_preprocess_sections() -> None:
    """``segment.fit`` cannot import ``preprocess`` (stages are independent): its defaults must agree by test."""
    from wirewatch.preprocess import PreprocessConfig

    pp = PreprocessConfig()
    bare = load_fitted_segmenter("watershed", {})
    configured = load_fitted_segmenter("watershed", {}, preprocess=pp)
    for fitted in (bare, configured):
        assert (fitted.max_side, fitted.mode, fitted.tile_size, fitted.tile_overlap, fitted.merge_overlap) == (
            pp.max_side, pp.fit, pp.tile_size, pp.tile_overlap, pp.merge_overlap) == (1024, "resize", 512, 64, 0.5)
    tiled = load_fitted_segmenter("watershed", {}, preprocess=PreprocessConfig(max_side=600, fit="tile", tile_size=300))
    assert (tiled.max_side, tiled.mode, tiled.tile_size) == (600, "tile", 300)


def test_scale_none_is_the_backend_as_it_was(model: Segmenter) -> None:
    img = _frame()
    raw = model.segment(img)
    fitted = FitSegmenter(model, max_side=1024, scale=parse_scale("none"), polarity="bright")
    det = fitted.segment(img)
    assert fitted.last_factor == 1.0
    assert len(det) == len(raw) > 10
    np.testing.assert_array_equal(det.masks, raw.masks)
    np.testing.assert_array_equal(det.scores, raw.scores)


def _particles(det: Detections, image: np.ndarray) -> dict[str, float]:
    keep = det.scores >= 0.5
    return measure(det.masks[keep], image).aggregates


def test_a_frame_and_its_2x_enlargement_give_the_same_particles(model: Segmenter) -> None:
    img = _frame(seed=37951)
    big = cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    runtime, _ = split_scale_options("onnxruntime", {})  # the model backends' defaults: scale and polarity auto
    seg = FitSegmenter(model, max_side=1024, scale=runtime.scale, polarity=runtime.polarity)
    one = _particles(seg.segment(img), img)
    assert seg.last_factor == 1.0
    two_det = seg.segment(big)
    assert seg.last_factor == pytest.approx(0.5)
    assert two_det.image_shape == (1024, 1024)  # returned in the frame's own pixels
    two = _particles(two_det, big)
    assert abs(two["particle_count"] - one["particle_count"]) <= max(1, 0.1 * one["particle_count"])
    assert two["length_px_mean"] / 2 == pytest.approx(one["length_px_mean"], rel=0.08)
    assert two["width_px_mean"] / 2 == pytest.approx(one["width_px_mean"], abs=1.0)
    # without scale, the enlarged frame's 20 px wires are outside what the model learnt
    plain = FitSegmenter(model, max_side=1024)
    assert abs(_particles(plain.segment(big), big)["particle_count"] - one["particle_count"]) > \
        abs(two["particle_count"] - one["particle_count"])


def test_stream_window_keeps_one_factor() -> None:
    seg = FitSegmenter(load_segmenter("watershed"), max_side=1024, scale="auto", scale_window=9)
    factors = []
    for s in range(38100, 38112):
        img = _frame(seed=s, factor=2.0)
        factors.append(seg.factor_for(img))
    assert len(set(factors[4:])) == 1 and factors[-1] < 0.7


def test_independent_frames_get_their_own_factor() -> None:
    """With a window of one frame (evaluate, segment, an upload) the hold does not apply: a frame's resize does
    not depend on the frame segmented before it (here a 1x frame, then one whose width (raw factor 1.53) the
    stream's hysteresis would have kept at 1)."""
    thin = _frame(seed=38200, factor=0.605)
    alone = FitSegmenter(load_segmenter("watershed"), max_side=1024, scale="auto").factor_for(thin)
    after = FitSegmenter(load_segmenter("watershed"), max_side=1024, scale="auto")
    assert after.factor_for(_frame(seed=38201)) == 1.0
    assert alone > 1.0 and after.factor_for(thin) == alone
    # on a stream (window 2, full) the same frames keep the factor in use
    stream = FitSegmenter(load_segmenter("watershed"), max_side=1024, scale="auto", scale_window=2)
    stream.factor_for(_frame(seed=38201))
    stream.factor_for(_frame(seed=38202))
    assert stream.factor_for(thin) == 1.0


def test_multi_scale_passes_on_mixed_widths_and_their_merge() -> None:
    from wirewatch.segment.fit import merge_passes
    from wirewatch.segment.scale import WidthEstimate, multi_factors

    assert parse_scale("multi") == "multi"
    assert multi_factors(WidthEstimate(10.0, 100, 0.1, 7.0, 14.0)) == [1.0]  # one population: one pass
    factors = multi_factors(WidthEstimate(12.0, 100, 0.1, 5.0, 36.0))  # thin and 3x wires in one frame
    assert factors[0] == 1.0 and len(factors) == 3 and min(factors) < 0.35 and max(factors) > 1.6
    a = np.zeros((2, 64, 64), bool)
    a[0, 10:14, 5:60] = True
    a[1, 30:40, 5:60] = True
    b = np.zeros((1, 64, 64), bool)
    b[0, 10:15, 6:60] = True  # the first wire again, seen at another scale
    first = Detections(boxes=boxes_of(a), scores=np.array([0.9, 0.8], np.float32), masks=a, image_shape=(64, 64))
    second = Detections(boxes=boxes_of(b), scores=np.array([0.95], np.float32), masks=b, image_shape=(64, 64))
    merged = merge_passes([first, second], (64, 64), 0.5)
    assert len(merged) == 2 and merged.scores.tolist() == pytest.approx([0.95, 0.8])
    np.testing.assert_array_equal(merged.masks[0], b[0])  # the better-scored mask, not the union
