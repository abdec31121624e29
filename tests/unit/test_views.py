"""Test-time views (``wirewatch.segment.views``): mirror images mapped back exactly, masks averaged over
the views that found a detection, counts and scores from the frame alone; the real ONNX backend with
``views=2`` / ``4`` against ``views=1``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from wirewatch.errors import InputError
from wirewatch.segment.boxes import box_iou
from wirewatch.segment.model_files import packaged_model_path
from wirewatch.segment.paste import paste_masks
from wirewatch.segment.views import check_views, fuse, mirror, segment_views, unmirror
from wirewatch.synth.config import preset_config
from wirewatch.synth.generate import generate

M = 28


def rectangle_detector(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A detector that is exactly mirror-equivariant: each bright connected blob's pixel-centre box
    (x0 = first column, x1 = last column) and its M x M grid sampled at the cell centres the paste reads
    (``x0 + (j + 0.5) * w / M``); scores from the blob's size, so the order is the same in every view."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((image > 0.5).astype(np.uint8), connectivity=4)
    boxes, scores, grids = [], [], []
    for k in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[k])
        x0, y0, x1, y1 = x, y, x + w - 1, y + h - 1
        cx = x0 + (np.arange(M) + 0.5) * max(x1 - x0, 1) / M
        cy = y0 + (np.arange(M) + 0.5) * max(y1 - y0, 1) / M
        mx, my = np.meshgrid(cx.astype(np.float32), cy.astype(np.float32))
        grid = cv2.remap((labels == k).astype(np.float32), mx, my, cv2.INTER_LINEAR)
        boxes.append([x0, y0, x1, y1])
        scores.append(area / (area + 100.0))
        grids.append(grid)
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
            np.asarray(grids, np.float32).reshape(-1, M, M))


def frame_with_rectangles() -> np.ndarray:
    image = np.zeros((96, 128), np.float32)  # not square: the two axes must not be confused
    image[10:20, 5:60] = 1.0
    image[40:90, 70:78] = 1.0
    image[60:66, 10:41] = 1.0
    return image


@pytest.mark.parametrize("bad", [0, 3, 8, "4", 2.0, True, None])
def test_views_must_be_1_2_or_4(bad: object) -> None:
    with pytest.raises(InputError, match="views must be one of 1, 2, 4"):
        check_views(bad)
    assert [check_views(v) for v in (1, 2, 4, np.int64(4))] == [1, 2, 4, 4]


@pytest.mark.parametrize("view", ["h", "v", "hv"])
def test_a_mirrored_view_maps_back_onto_the_frame_exactly(view: str) -> None:
    image = frame_with_rectangles()
    boxes, _, grids = rectangle_detector(image)
    view_boxes, _, view_grids = rectangle_detector(mirror(image, view))
    back_boxes, back_grids = unmirror(view, view_boxes, view_grids, image.shape)
    order = box_iou(boxes, back_boxes).argmax(axis=1)
    np.testing.assert_allclose(back_boxes[order], boxes, atol=1e-4)  # W - 1 - x: a W - x map is 1 px off
    np.testing.assert_allclose(back_grids[order], grids, atol=1e-5)


@pytest.mark.parametrize("views", [2, 4])
def test_views_that_agree_give_the_one_view_result(views: int) -> None:
    image = frame_with_rectangles()
    one = segment_views(rectangle_detector, image, 1, 0.5)
    many = segment_views(rectangle_detector, image, views, 0.5)
    assert len(one) == len(many) == 3
    np.testing.assert_array_equal(many.scores, one.scores)
    np.testing.assert_allclose(many.boxes, one.boxes, atol=1e-4)
    for a, b in zip(one.masks, many.masks, strict=True):
        assert np.logical_xor(a, b).sum() <= 0.01 * a.sum()  # float rounding at the 0.5 level only
        assert a.sum() > 0


def test_masks_are_the_mean_over_the_views_that_found_the_detection() -> None:
    shape = (64, 64)
    boxes = np.array([[10, 10, 40, 30], [45, 45, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    probs = np.full((2, M, M), 0.8, np.float32)
    alone = paste_masks(probs, boxes, shape)
    # A view that sees the first detection with probabilities 0.1 (mean 0.45 < 0.5: its mask goes), and
    # nothing near the second (which keeps its own mask); one box shifted by 1 px (IoU > 0.7: matched).
    view = (np.array([[11, 10, 41, 30]], np.float32), np.full((1, M, M), 0.1, np.float32))
    fused = fuse((boxes, scores, probs), [view], shape, 0.5)
    np.testing.assert_array_equal(fused.scores, scores)  # scores (and so counts) from the frame alone
    assert not fused.masks[0].any()
    np.testing.assert_array_equal(fused.masks[1], alone[1])
    np.testing.assert_allclose(fused.boxes[0], [10.5, 10, 40.5, 30])  # boxes averaged over the matches
    np.testing.assert_array_equal(fused.boxes[1], boxes[1])
    # 0.3 in the view: mean 0.55, kept over the union of the two (shifted) boxes' reach.
    view = (view[0], np.full((1, M, M), 0.3, np.float32))
    fused = fuse((boxes, scores, probs), [view], shape, 0.5)
    assert fused.masks[0].sum() >= alone[0].sum() * 0.95
    # A view that finds nothing changes nothing.
    empty = (np.zeros((0, 4), np.float32), np.zeros((0, M, M), np.float32))
    unchanged = fuse((boxes, scores, probs), [empty], shape, 0.5)
    np.testing.assert_array_equal(unchanged.masks, alone)
    np.testing.assert_array_equal(unchanged.boxes, boxes)


def test_onnx_backend_views_keep_the_detections_and_refine_their_masks() -> None:
    """The shipped model on one synthetic frame: ``views=2`` and ``4`` keep the frame's detections and
    scores (counts unchanged) and move each box and mask only at its edges (a box side by at most 8 px plus
    5 % of the box's extent: the mix candidate of issue 37 moves the end of a 208 px long wire by 11 px while
    its mask gets closer to the truth, the model shipped before it at most 3.6 px); a bad ``views`` is refused
    up front."""
    if not packaged_model_path().is_file():
        pytest.skip("no default model shipped")
    from wirewatch.segment.onnx_backend import OnnxSegmenter

    sample = generate(preset_config("ptychography"), seed=424242)
    image = sample.image.astype(np.float32) / 255.0
    one = OnnxSegmenter("default", threads=1).segment(image)
    assert len(one) >= 5
    truth = sample.masks
    for views in (2, 4):
        many = OnnxSegmenter("default", threads=1, views=views).segment(image)
        np.testing.assert_array_equal(many.scores, one.scores)
        extent = np.tile(one.boxes[:, 2:] - one.boxes[:, :2], 2)  # width, height, width, height
        assert (np.abs(many.boxes - one.boxes) < 8.0 + 0.05 * extent).all()
        inter = (one.masks & many.masks).sum(axis=(1, 2))
        union = (one.masks | many.masks).sum(axis=(1, 2))
        assert (inter / np.maximum(union, 1)).min() > 0.7
        # against the truth: the views' masks are no worse on this frame (best true match per detection)
        def best_iou(masks: np.ndarray) -> float:
            i = (masks[:, None] & truth[None]).sum(axis=(2, 3))
            u = (masks[:, None] | truth[None]).sum(axis=(2, 3))
            return float((i / np.maximum(u, 1)).max(axis=1).mean())
        assert best_iou(many.masks) >= best_iou(one.masks) - 0.01
    with pytest.raises(InputError, match="views must be one of"):
        OnnxSegmenter("default", views=3)


def test_bench_model_times_the_views_beside_one_pass(trained: dict[str, Path], tmp_path: Path) -> None:
    """``wirewatch bench model --views 2``: one more onnxruntime CPU row with the same detections per frame
    as the single pass (views change masks, never counts), and the one-pass rows as before."""
    from typer.testing import CliRunner

    from wirewatch.cli.app import app

    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "model", "--model", str(trained["onnx"]), "--checkpoint",
                                   str(trained["checkpoint"]), "--frames", "2", "--size", "96", "--views", "2",
                                   "--score-threshold", "0.05", "--json", str(out)])
    assert res.exit_code == 0, res.output
    rows = {r["runtime"]: r for r in json.loads(out.read_text())}
    assert list(rows) == ["pytorch eager", "onnxruntime", "onnxruntime views=2"]
    assert rows["onnxruntime views=2"]["frames"] == 2
    assert rows["onnxruntime views=2"]["detections_mean"] == rows["onnxruntime"]["detections_mean"]
    assert "speed ratio" in res.output
