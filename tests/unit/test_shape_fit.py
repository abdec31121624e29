"""Shape-fitted masks (``wirewatch.segment.shape_fit``, ``mask_shape="rect"`` / ``"rod"``): the fits recover a
known rectangle and a known bent, tapered rod from blurred probabilities, shrug off a leak onto a crossing
wire, leave a strongly bent wire's free mask alone, and the real ONNX backend's shapes are closer to the
synthesiser's true footprints than its free masks while boxes, scores and counts stay as they were."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from wirewatch.errors import InputError
from wirewatch.segment.model_files import packaged_model_path
from wirewatch.segment.shape_fit import (
    Rod,
    _jacobian,
    check_mask_shape,
    fit_rod,
    rod_mask,
    shaped_mask,
    soft_rod,
)
from wirewatch.segment.views import segment_views
from wirewatch.synth.config import preset_config
from wirewatch.synth.generate import generate

TRUE = Rod(cx=60.3, cy=44.8, angle=math.radians(28.0), half_length=42.0, half_width=5.2)
BENT = Rod(cx=60.3, cy=44.8, angle=math.radians(28.0), half_length=42.0, half_width=5.2, sagitta=4.0, taper=0.3)
SHAPE = (96, 124)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def blurred(mask: np.ndarray, sigma: float = 2.5) -> np.ndarray:
    """A mask as the head's bilinear paste shows it: edges spread over a few pixels, 0.5 at the edge."""
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)


@pytest.mark.parametrize("bent", [False, True])
def test_the_analytic_jacobian_matches_finite_differences(bent: bool) -> None:
    rng = np.random.default_rng(1)
    gx, gy = rng.uniform(0, 120, 500), rng.uniform(0, 90, 500)
    p = BENT.params() if bent else TRUE.params()[:5]
    eps = 1e-6
    numeric = np.stack([(soft_rod(p + eps * e, gx, gy) - soft_rod(p - eps * e, gx, gy)) / (2 * eps)
                        for e in np.eye(len(p))], axis=1)
    np.testing.assert_allclose(_jacobian(p, gx, gy), numeric, atol=1e-6)


def test_a_blurred_rectangle_is_recovered_to_a_fraction_of_a_pixel() -> None:
    truth = rod_mask(TRUE, SHAPE)
    fit = fit_rod(blurred(truth))
    assert fit is not None
    assert math.hypot(fit.cx - TRUE.cx, fit.cy - TRUE.cy) < 0.3
    assert abs(math.remainder(fit.angle - TRUE.angle, math.pi)) < math.radians(0.5)
    assert abs(fit.half_width - TRUE.half_width) < 0.3
    assert abs(fit.half_length - TRUE.half_length) < 0.5
    assert iou(rod_mask(fit, SHAPE), truth) > 0.97


def test_a_bent_tapered_rod_is_recovered_by_the_rod_and_not_by_the_rectangle() -> None:
    truth = rod_mask(BENT, SHAPE)
    window = blurred(truth)
    fit = fit_rod(window, bent=True)
    assert fit is not None
    assert abs(fit.sagitta - BENT.sagitta) < 0.5 and abs(fit.taper - BENT.taper) < 0.05
    assert abs(fit.half_width - BENT.half_width) < 0.3
    rod, rect = shaped_mask(window, 0.5, "rod"), shaped_mask(window, 0.5, "rect")
    assert iou(rod, truth) > 0.97
    assert iou(rect, truth) < iou(rod, truth) - 0.1  # a rectangle cannot follow the bend
    # a rectangle's rod has no bend and no taper
    straight = fit_rod(blurred(rod_mask(TRUE, SHAPE)), bent=True)
    assert straight is not None and abs(straight.sagitta) < 0.3 and abs(straight.taper) < 0.03


def test_a_leak_onto_a_crossing_wire_is_cut_off() -> None:
    """Probability spilling 8 px onto a crossing wire on one side: the free mask takes it, the rectangle
    does not."""
    truth = rod_mask(TRUE, SHAPE)
    crossing = rod_mask(Rod(TRUE.cx, TRUE.cy, TRUE.angle + math.pi / 2, 14.0, 4.0), SHAPE)
    window = blurred(truth)
    window[crossing & ~truth] = np.maximum(window[crossing & ~truth], 0.7)  # the leak
    free = shaped_mask(window, 0.5, "free")
    assert iou(free, truth) < 0.9
    for shape in ("rect", "rod"):
        assert iou(shaped_mask(window, 0.5, shape), truth) > 0.95


def test_an_s_bent_wire_keeps_its_free_mask() -> None:
    """An S is neither a rectangle nor a parabola-bent rod (the best of either covers ~40 % of it): the guard
    (IoU of the fit with the free mask) keeps the free mask."""
    gy, gx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    s_bend = (np.abs(gy - (48 + 22 * np.sin(2 * np.pi * (gx - 12) / 100))) < 4) & (gx > 12) & (gx < 112)
    window = blurred(s_bend, 1.0)
    for shape in ("rect", "rod"):
        np.testing.assert_array_equal(shaped_mask(window, 0.5, shape), window >= 0.5)


def test_masks_too_small_to_fit_stay_as_they_are() -> None:
    window = np.zeros(SHAPE, np.float32)
    window[10:13, 10:14] = 0.9
    assert fit_rod(window) is None
    for shape in ("rect", "rod"):
        np.testing.assert_array_equal(shaped_mask(window, 0.5, shape), window >= 0.5)


@pytest.mark.parametrize("bad", ["rectangle", "", None, 1, "Rect"])
def test_mask_shape_must_be_free_rect_or_rod(bad: object) -> None:
    with pytest.raises(InputError, match="mask_shape must be one of free, rect, rod"):
        check_mask_shape(bad)
    assert [check_mask_shape(s) for s in ("free", "rect", "rod")] == ["free", "rect", "rod"]


def test_segment_views_changes_only_the_masks() -> None:
    """One detection whose M x M grid encodes a blurred rectangle: ``rect`` keeps the box, score and mask
    score, and its mask is at least as close to the rectangle as the free paste, with one view and four."""
    m = 28
    truth = rod_mask(TRUE, SHAPE)
    ys, xs = np.nonzero(truth)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float32)
    cx = box[0] + (np.arange(m) + 0.5) * (box[2] - box[0]) / m
    cy = box[1] + (np.arange(m) + 0.5) * (box[3] - box[1]) / m
    mx, my = np.meshgrid(cx.astype(np.float32), cy.astype(np.float32))
    grid = cv2.remap(blurred(truth, 1.5), mx, my, cv2.INTER_LINEAR)

    def detect(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        row, col = np.argwhere(image > 0)[0]  # where the marker went says which view this is
        flipped_h, flipped_v = col > 0, row > 0
        g, b = grid.copy(), box.copy()
        if flipped_h:
            g, b = g[:, ::-1], np.array([SHAPE[1] - 1 - b[2], b[1], SHAPE[1] - 1 - b[0], b[3]], np.float32)
        if flipped_v:
            g, b = g[::-1, :], np.array([b[0], SHAPE[0] - 1 - b[3], b[2], SHAPE[0] - 1 - b[1]], np.float32)
        return b[None], np.array([0.9], np.float32), np.ascontiguousarray(g[None])

    image = np.zeros(SHAPE, np.float32)
    image[0, 0] = 1.0  # marker
    for views in (1, 4):
        free = segment_views(detect, image, views, 0.5, "free")
        for shape in ("rect", "rod"):
            fitted = segment_views(detect, image, views, 0.5, shape)
            np.testing.assert_array_equal(fitted.boxes, free.boxes)
            np.testing.assert_array_equal(fitted.scores, free.scores)
            np.testing.assert_array_equal(fitted.mask_confidence, free.mask_confidence)
            assert iou(fitted.masks[0], truth) >= iou(free.masks[0], truth) - 0.005
            assert iou(fitted.masks[0], truth) > 0.9


@pytest.mark.parametrize("shape", ["rect", "rod"])
def test_onnx_backend_fitted_masks_are_closer_to_the_true_footprints(shape: str) -> None:
    """The shipped model on two default-preset frames: ``mask_shape="rect"`` / ``"rod"`` keep the detections
    and scores; matched to the synthesiser's true footprints, their masks' mean IoU is higher and more of them
    pass IoU 0.9 (``rect`` on 10 evaluation frames: mean 0.861 -> 0.892, >= 0.9 from 50 % to 64 % of
    detections)."""
    if not packaged_model_path().is_file():
        pytest.skip("no default model shipped")
    from wirewatch.segment.onnx_backend import OnnxSegmenter

    # the fits on the mask head's own masks (the refiner, on by default, is segment.refine's to test)
    free_seg = OnnxSegmenter("default", threads=1, mask_refine="none")
    fitted_seg = OnnxSegmenter("default", threads=1, mask_shape=shape, mask_refine="none")
    free_ious, fitted_ious = [], []
    for seed in (515151, 525252):
        sample = generate(preset_config("ptychography"), seed=seed)
        image = sample.image.astype(np.float32) / 255.0
        free, fitted = free_seg.segment(image), fitted_seg.segment(image)
        np.testing.assert_array_equal(fitted.scores, free.scores)
        np.testing.assert_array_equal(fitted.boxes, free.boxes)
        truth = sample.masks
        for masks, out in ((free.masks, free_ious), (fitted.masks, fitted_ious)):
            inter = (masks[:, None] & truth[None]).sum(axis=(2, 3))
            union = (masks[:, None] | truth[None]).sum(axis=(2, 3))
            out.extend((inter / np.maximum(union, 1)).max(axis=1))
    free_arr, fitted_arr = np.array(free_ious), np.array(fitted_ious)
    assert len(free_arr) >= 20
    assert fitted_arr.mean() > free_arr.mean()
    assert (fitted_arr >= 0.9).mean() > (free_arr >= 0.9).mean() + 0.03
    with pytest.raises(InputError, match="mask_shape must be one of"):
        OnnxSegmenter("default", mask_shape="square")


def test_bench_model_times_fitted_masks_beside_the_free_ones(trained: dict[str, Path], tmp_path: Path) -> None:
    """``wirewatch bench model --mask-shape rect --mask-shape rod``: one more onnxruntime CPU row each, the
    same detections per frame (fitted shapes replace masks, never detections); a bad shape is refused."""
    from typer.testing import CliRunner

    from wirewatch.cli.app import app

    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "model", "--model", str(trained["onnx"]), "--checkpoint",
                                   str(trained["checkpoint"]), "--frames", "2", "--size", "96", "--mask-shape", "rect",
                                   "--mask-shape", "rod",
                                   "--score-threshold", "0.05", "--json", str(out)])
    assert res.exit_code == 0, res.output
    rows = {r["runtime"]: r for r in json.loads(out.read_text())}
    assert list(rows) == ["pytorch eager", "onnxruntime", "onnxruntime mask_shape=rect", "onnxruntime mask_shape=rod"]
    for shape in ("rect", "rod"):
        assert rows[f"onnxruntime mask_shape={shape}"]["frames"] == 2
        assert rows[f"onnxruntime mask_shape={shape}"]["detections_mean"] == rows["onnxruntime"]["detections_mean"]
    bad = CliRunner().invoke(app, ["bench", "model", "--model", str(trained["onnx"]), "--checkpoint",
                                   str(trained["checkpoint"]), "--mask-shape", "square"])
    assert bad.exit_code != 0 and isinstance(bad.exception, InputError)
    assert "mask_shape must be one of free, rect, rod" in str(bad.exception)
