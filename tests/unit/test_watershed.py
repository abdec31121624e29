"""The watershed baseline: separates isolated wires, keeps rods whole, merges crossings (as the paper)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi

from wirewatch.errors import InputError
from wirewatch.segment import Segmenter, load_segmenter
from wirewatch.segment.watershed import WatershedSegmenter


def render(lines: list[tuple[tuple[int, int], tuple[int, int], int]], size: int = 160) -> tuple[np.ndarray, list[np.ndarray]]:
    """Additive optical density of straight rods, blurred like the synthetic data; and their masks."""
    od = np.zeros((size, size), np.float32)
    masks = []
    for p0, p1, width in lines:
        m = np.zeros((size, size), np.uint8)
        cv2.line(m, p0, p1, 1, width)
        od += m
        masks.append(m > 0)
    od = ndi.gaussian_filter(od, 1.0)
    return (od / max(float(od.max()), 1e-6)).astype(np.float32), masks


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / float((a | b).sum())


def test_isolated_wires_are_separated_one_detection_each() -> None:
    lines = [((15, 20), (140, 35), 7), ((20, 70), (60, 150), 5), ((100, 80), (150, 140), 9)]
    image, masks = render(lines)
    det = WatershedSegmenter().segment(image)
    assert len(det) == 3
    for gt in masks:
        assert max(iou(gt, m) for m in det.masks) > 0.7
    assert det.masks.shape == (3, 160, 160) and det.masks.dtype == bool
    for box, m in zip(det.boxes, det.masks, strict=True):
        ys, xs = np.nonzero(m)
        assert tuple(box) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert np.all((det.scores > 0.75) & (det.scores <= 1.0))  # solid, straight rods


def test_long_rod_is_not_over_split_but_naive_markers_would() -> None:
    image, _ = render([((10, 30), (150, 120), 9)])
    assert len(WatershedSegmenter().segment(image)) == 1
    # Without merging shallow saddles, the flat distance ridge gives many markers: fragments.
    assert len(WatershedSegmenter(merge_ratio=1.0).segment(image)) > 1


def test_crossing_wires_are_merged_as_the_paper_reports() -> None:
    lines = [((10, 80), (150, 80), 7), ((80, 10), (80, 150), 7)]
    image, masks = render(lines)
    det = WatershedSegmenter().segment(image)
    assert len(det) == 1
    assert iou(det.masks[0], masks[0] | masks[1]) > 0.7
    # The merged cross is less convex than a single rod: a lower confidence proxy.
    single = WatershedSegmenter().segment(render([lines[0]])[0])
    assert det.scores[0] < single.scores[0]


def test_blobs_touching_at_a_narrow_neck_are_split() -> None:
    mask = np.zeros((100, 160), np.uint8)
    cv2.circle(mask, (45, 50), 28, 1, -1)
    cv2.circle(mask, (113, 50), 28, 1, -1)
    cv2.line(mask, (60, 50), (100, 50), 1, 3)
    det = WatershedSegmenter().segment(mask.astype(np.float32))
    assert len(det) == 2


def test_empty_and_flat_frames_give_no_detections() -> None:
    for image in (np.zeros((64, 64), np.float32), np.full((64, 64), 0.4, np.float32)):
        det = WatershedSegmenter().segment(image)
        assert len(det) == 0 and det.image_shape == (64, 64)


def test_registry_builds_it_and_model_option_is_accepted() -> None:
    seg = load_segmenter("watershed", model="default", merge_ratio=0.6)
    assert isinstance(seg, Segmenter) and seg.name == "watershed"


@pytest.mark.parametrize("opts", [{"threshold": 1.5}, {"merge_ratio": -0.1}, {"smooth_sigma": -1.0},
                                  {"min_area": 0}])
def test_bad_options_and_images_are_rejected(opts: dict) -> None:
    with pytest.raises(InputError, match="watershed"):
        WatershedSegmenter(**opts)


def test_bad_image_shape_is_rejected() -> None:
    with pytest.raises(InputError, match="2-D"):
        WatershedSegmenter().segment(np.zeros((3, 8, 8), np.float32))


@pytest.mark.slow
def test_baseline_scores_on_synthetic_frames_match_the_documented_settings() -> None:
    """docs/stats.md: default settings give mask AP ~0.10 / AP50 ~0.22 on 12 ptychography frames at 256 px."""
    synth = pytest.importorskip("wirewatch.synth")
    from wirewatch import coco

    cfg = synth.SynthConfig.preset("ptychography", size=256)
    samples = [synth.generate(cfg, seed=s) for s in range(12)]
    images = [{"id": i + 1, "file_name": f"{i}.png", "height": 256, "width": 256} for i in range(len(samples))]
    anns = [coco.annotation(0, i + 1, m) for i, s in enumerate(samples) for m in s.masks if m.any()]
    for j, a in enumerate(anns):
        a["id"] = j + 1
    gt = coco.dataset(images, anns)

    def score(**opts: float) -> dict[str, float]:
        seg = WatershedSegmenter(**opts)
        res = []
        for i, s in enumerate(samples):
            det = seg.segment(s.image.astype(np.float32) / 255)
            res += [coco.result(i + 1, m, sc) for m, sc in zip(det.masks, det.scores, strict=True)]
        return coco.coco_metrics(gt, res, iou_types=("segm",))

    default = score()
    assert 0.07 <= default["segm.AP"] <= 0.14 and 0.17 <= default["segm.AP50"] <= 0.28
    assert score(merge_ratio=0.8)["segm.AP50"] < default["segm.AP50"]  # less merging: rods stay split
