"""evaluate: pycocotools' numbers on hand-built cases, segmentation accuracy, statistics agreement, bad input."""

from __future__ import annotations

import contextlib
import io
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wirewatch import coco
from wirewatch.errors import InputError
from wirewatch.evaluate import (
    distribution_agreement,
    evaluate,
    image_roots,
    pixel_counts,
    read_json,
    segment_ground_truth_images,
)
from wirewatch.segment.watershed import WatershedSegmenter

H, W = 64, 80


def block(y: int, x: int, h: int, w: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y:y + h, x:x + w] = True
    return m


def ground_truth(masks_per_image: list[list[np.ndarray]]) -> dict[str, Any]:
    images = [{"id": i + 1, "file_name": f"{i:06d}.png", "height": H, "width": W} for i in range(len(masks_per_image))]
    anns, aid = [], 1
    for i, masks in enumerate(masks_per_image):
        for m in masks:
            anns.append(coco.annotation(aid, i + 1, m))
            aid += 1
    return coco.dataset(images, anns)


GT_MASKS = [[block(5, 5, 10, 10), block(30, 40, 10, 10)], [block(20, 10, 10, 10)]]


def test_perfect_results_give_ap_one_and_perfect_agreement() -> None:
    gt = ground_truth(GT_MASKS)
    results = [coco.result(i + 1, m, 0.9) for i, ms in enumerate(GT_MASKS) for m in ms]
    ev = evaluate(gt, results)
    m = ev.metrics
    assert m["segm.AP"] == pytest.approx(1.0) and m["bbox.AP"] == pytest.approx(1.0)
    assert m["segm.AP50"] == pytest.approx(1.0) and m["segm.AP75"] == pytest.approx(1.0)
    assert m["seg_accuracy"] == 1.0 and m["count_pred"] == m["count_gt"] == 3.0 and m["count_error"] == 0.0
    assert m["stats.area_px.ks"] == 0.0 and m["stats.length_px.wasserstein"] == 0.0
    assert [r.count_gt for r in ev.images] == [2, 1]


@pytest.mark.parametrize(("shift", "ap", "ap50", "ap75"), [
    (1, 0.7, 1.0, 1.0),  # IoU 90/110 = 0.82: passes thresholds 0.50..0.80 (7 of 10)
    (2, 0.4, 1.0, 0.0),  # IoU 80/120 = 0.67: passes 0.50..0.65 (4 of 10)
    (3, 0.1, 1.0, 0.0),  # IoU 70/130 = 0.54: passes 0.50 only
    (6, 0.0, 0.0, 0.0),  # IoU 40/160 = 0.25: a miss
])
def test_known_shifts_give_the_expected_iou_threshold_behaviour(shift: int, ap: float, ap50: float, ap75: float) -> None:
    gt = ground_truth([[block(10, 10, 10, 10)]])
    ev = evaluate(gt, [coco.result(1, block(10, 10 + shift, 10, 10), 0.8)])
    for kind in ("segm", "bbox"):
        assert ev.metrics[f"{kind}.AP"] == pytest.approx(ap, abs=1e-6)
        assert ev.metrics[f"{kind}.AP50"] == pytest.approx(ap50, abs=1e-6)
        assert ev.metrics[f"{kind}.AP75"] == pytest.approx(ap75, abs=1e-6)
    overlap = 10 * (10 - shift)
    assert ev.metrics["seg_accuracy"] == pytest.approx(overlap / (200 - overlap))
    assert ev.metrics["seg_tp"] == overlap and ev.metrics["seg_fp"] == ev.metrics["seg_fn"] == 100 - overlap


def test_empty_results_give_zero_ap_not_a_crash() -> None:
    ev = evaluate(ground_truth(GT_MASKS), [])
    m = ev.metrics
    assert m["segm.AP"] == 0.0 and m["bbox.AP50"] == 0.0
    assert m["seg_accuracy"] == 0.0 and m["count_pred"] == 0.0 and m["count_relative_error"] == -1.0
    assert math.isnan(m["stats.area_px.ks"])


def test_score_threshold_keeps_low_scores_out_of_pixels_counts_and_stats() -> None:
    gt = ground_truth([[block(10, 10, 10, 10)]])
    results = [coco.result(1, block(10, 10, 10, 10), 0.9), coco.result(1, block(40, 50, 10, 20), 0.2)]
    ev = evaluate(gt, results, score_threshold=0.5)
    assert ev.metrics["seg_accuracy"] == 1.0 and ev.metrics["count_pred"] == 1.0
    assert ev.metrics["segm.AP"] == pytest.approx(1.0)  # the low-ranked false positive does not hurt AP here
    assert evaluate(gt, results, score_threshold=0.1).metrics["count_pred"] == 2.0
    with pytest.raises(InputError, match="score threshold"):
        evaluate(gt, results, score_threshold=1.5)


def test_zero_pixel_masks_are_skipped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    gt = ground_truth([[block(10, 10, 10, 10)]])
    results = [coco.result(1, block(10, 10, 10, 10), 0.9), coco.result(1, np.zeros((H, W), bool), 0.9)]
    with caplog.at_level(logging.WARNING):
        ev = evaluate(gt, results)
    assert ev.metrics["empty_masks_skipped"] == 1.0 and ev.metrics["count_pred"] == 1.0
    assert "zero-pixel" in caplog.text


def test_results_for_images_missing_from_the_ground_truth_are_an_error() -> None:
    gt = ground_truth(GT_MASKS)
    with pytest.raises(InputError, match=r"missing from the ground truth: 7, 9"):
        evaluate(gt, [coco.result(7, block(1, 1, 3, 3), 0.5), coco.result(9, block(1, 1, 3, 3), 0.5)])


@pytest.mark.parametrize(("key", "value"), [("score", "high"), ("mask_score", None), ("mask_score", float("nan")),
                                            ("score", True)])
def test_a_score_that_is_not_a_number_is_named(key: str, value: object) -> None:
    gt = ground_truth(GT_MASKS)
    good = coco.result(1, block(10, 10, 10, 10), 0.9, mask_score=0.8)
    with pytest.raises(InputError, match=rf"detection 1 has {key} .*expected a finite number"):
        evaluate(gt, [good, {**good, key: value}])


def test_mask_scores_rank_the_masks() -> None:
    """The same two masks for one true wire: ranked by the detector's score the bad mask comes first."""
    true, bad = block(5, 5, 10, 10), block(5, 12, 10, 10)  # IoU 3 / 17
    gt = ground_truth([[true]])
    plain = evaluate(gt, [coco.result(1, bad, 0.9), coco.result(1, true, 0.8)]).metrics
    ranked = evaluate(gt, [coco.result(1, bad, 0.9, 0.1), coco.result(1, true, 0.8, 0.7)]).metrics
    assert ranked["segm.AP"] == pytest.approx(1.0) and plain["segm.AP"] < 0.9


@pytest.mark.parametrize(("gt", "match"), [
    ({"annotations": []}, "'images' list"),
    ({"images": [{"id": 1, "width": 4}], "annotations": []}, "lacks height"),
    ({"images": [{"id": 1, "width": 4, "height": 4}], "annotations": [{"image_id": 2, "segmentation": []}]},
     "image id 2"),
])
def test_malformed_ground_truth_is_named(gt: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        evaluate(gt, [])


def test_read_json_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_json(tmp_path / "nope.json", "ground truth")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_json(tmp_path / "bad.json", "results")


def test_pixel_counts_and_agreement_helpers() -> None:
    c = pixel_counts(block(0, 0, 4, 4), block(0, 2, 4, 4))
    assert (c.tp, c.fp, c.fn) == (8, 8, 8) and c.accuracy == pytest.approx(1 / 3)
    assert math.isnan(pixel_counts(np.zeros((3, 3)), np.zeros((3, 3))).accuracy)
    agree = distribution_agreement({"area_px": np.array([1.0, 2.0, 3.0])}, {"area_px": np.array([2.0, 3.0, 4.0])},
                                   ["area_px"])
    assert agree["stats.area_px.wasserstein"] == pytest.approx(1.0)
    assert agree["stats.area_px.ks"] == pytest.approx(1 / 3)


def _independent_cocoeval(gt: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = gt
        cg.createIndex()
        cd = cg.loadRes(results)
        for kind in ("bbox", "segm"):
            ev = COCOeval(cg, cd, kind)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            out[f"{kind}.AP"], out[f"{kind}.AP50"], out[f"{kind}.AP75"] = (float(v) for v in ev.stats[:3])
    return out


def test_synthesised_dataset_with_watershed_agrees_with_pycocotools(tmp_path: Path) -> None:
    synth = pytest.importorskip("wirewatch.synth")
    cfg = synth.SynthConfig.preset("ptychography", size=128)
    synth.write_dataset(tmp_path / "ds", cfg, count=4, seed=1, split=None)
    gt_path = tmp_path / "ds" / "all.json"
    gt = read_json(gt_path, "ground truth")
    roots = image_roots(gt_path, None)

    # The ground truth scored as results is perfect.
    perfect = [{"image_id": a["image_id"], "category_id": 1, "segmentation": a["segmentation"], "score": 1.0}
               for a in gt["annotations"]]
    assert evaluate(gt, perfect).metrics["segm.AP"] == pytest.approx(1.0)

    results = segment_ground_truth_images(gt, WatershedSegmenter(), roots)
    assert results and all(r["image_id"] in {1, 2, 3, 4} for r in results)
    ev = evaluate(gt, results, image_roots=roots, plots_dir=tmp_path / "plots", max_plot_images=2)
    ref = _independent_cocoeval(gt, results)
    for key, value in ref.items():
        assert ev.metrics[key] == pytest.approx(value, abs=1e-9), key
    assert 0.3 < ev.metrics["seg_accuracy"] <= 1.0  # Otsu finds most wire pixels on clean synthetic frames
    assert ev.metrics["count_gt"] == len(gt["annotations"])
    assert 0.0 <= ev.metrics["stats.orientation_deg.ks"] <= 1.0
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["distributions.png", "image_1_compare.png", "image_1_overlay.png", "image_2_compare.png",
                     "image_2_overlay.png"]


def test_segmenting_needs_the_images(tmp_path: Path) -> None:
    gt = ground_truth(GT_MASKS)
    with pytest.raises(InputError, match=r"000000\.png' not found; looked in"):
        segment_ground_truth_images(gt, WatershedSegmenter(), [tmp_path])


def test_more_than_100_detections_in_one_image_still_give_an_ap() -> None:
    gt = ground_truth([[block(10, 10, 10, 10)]])
    speck = block(50, 60, 1, 1)
    results = [coco.result(1, block(10, 10, 10, 10), 0.9)] + [coco.result(1, speck, 0.1) for _ in range(120)]
    assert evaluate(gt, results).metrics["segm.AP"] == pytest.approx(1.0)
