"""Mask scores: score x maskness from the mask probabilities, carried by Detections, ranking masks for mask AP."""

from __future__ import annotations

import numpy as np
import pytest

from wirewatch import coco
from wirewatch.segment.maskness import mask_scores, maskness
from wirewatch.types import Detections


def test_maskness_is_the_mean_probability_of_the_kept_cells() -> None:
    probs = np.zeros((3, 28, 28), np.float32)
    probs[0, 10:18, 2:26] = 0.98  # crisp
    probs[1, 10:18, 2:26] = 0.6  # hesitant: kept at 0.5, barely
    probs[1, 9, 2:26] = 0.45  # below the threshold: not part of the mask, not counted
    # probs[2]: nothing at or above 0.5 -> no mask, maskness 0
    np.testing.assert_allclose(maskness(probs, 0.5), [0.98, 0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(maskness(probs, 0.7), [0.98, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(mask_scores(np.array([0.9, 0.9, 0.9]), probs), [0.882, 0.54, 0.0], rtol=1e-5)
    assert maskness(np.zeros((0, 28, 28), np.float32)).shape == (0,)


def test_detections_check_and_carry_mask_scores() -> None:
    masks = np.zeros((3, 8, 8), bool)
    boxes = np.zeros((3, 4), np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    det = Detections(boxes=boxes, scores=scores, masks=masks, image_shape=(8, 8),
                     mask_scores=np.array([0.5, 0.6, 0.1], np.float32))
    picked = det.select(np.array([2, 0]))
    np.testing.assert_allclose(picked.scores, [0.7, 0.9])
    np.testing.assert_allclose(picked.mask_confidence, [0.1, 0.5])
    plain = Detections(boxes=boxes, scores=scores, masks=masks, image_shape=(8, 8))
    assert plain.mask_confidence is plain.scores and plain.select(np.array([True, False, True])).mask_scores is None
    with pytest.raises(ValueError, match="mask_scores must have shape"):
        Detections(boxes=boxes, scores=scores, masks=masks, image_shape=(8, 8), mask_scores=np.zeros(2, np.float32))


def _wire(shift: int = 0) -> np.ndarray:
    m = np.zeros((32, 40), bool)
    m[10 + shift:16 + shift, 4:36] = True
    return m


def test_mask_ap_ranks_masks_by_mask_score_and_box_ap_by_score() -> None:
    """One wire, two detections: the more confident one has a mask 4 rows off (IoU 1/5), the other is exact.
    Ranked by the detector's score the miss comes first (AP 0.5); ranked by mask score the hit does (AP 1)."""
    gt = coco.dataset([{"id": 1, "file_name": "a.png", "height": 32, "width": 40}], [coco.annotation(1, 1, _wire())])
    by_score = [coco.result(1, _wire(4), 0.9), coco.result(1, _wire(), 0.8)]
    by_mask = [coco.result(1, _wire(4), 0.9, mask_score=0.2), coco.result(1, _wire(), 0.8, mask_score=0.7)]
    plain, ranked = coco.coco_metrics(gt, by_score), coco.coco_metrics(gt, by_mask)
    assert plain["segm.AP"] == pytest.approx(0.5, abs=0.01) and ranked["segm.AP"] == pytest.approx(1.0)
    assert ranked["bbox.AP"] == plain["bbox.AP"] == pytest.approx(0.5, abs=0.01)
    assert by_mask[0]["score"] == 0.9 and by_mask[0][coco.MASK_SCORE] == 0.2  # the file keeps both


def test_training_validation_ranks_the_same_way() -> None:
    pytest.importorskip("torch", reason="wirewatch.train.validate needs the `train` extra")
    from wirewatch.train.validate import coco_ap, detection_result

    gt = coco.dataset([{"id": 1, "file_name": "a.png", "height": 32, "width": 40}], [coco.annotation(1, 1, _wire())])
    box, off = np.array([4, 10, 36, 16], np.float32), np.array([0, 4, 0, 4], np.float32)
    results = [detection_result(1, box + off, _wire(4), 0.9, 0.2), detection_result(1, box, _wire(), 0.8, 0.7)]
    metrics = coco_ap(gt, results)
    assert metrics["segm.AP"] == pytest.approx(1.0) and metrics["bbox.AP"] == pytest.approx(0.5, abs=0.01)
