"""``wirewatch.train.ship.paired_folds``: candidate-minus-baseline AP fold by fold on the same images."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="wirewatch.train needs the `train` extra (torch, torchvision)")

from wirewatch import coco
from wirewatch.errors import InputError
from wirewatch.train.ship import paired_folds


def _square(x: int, y: int, size: int = 12) -> np.ndarray:
    mask = np.zeros((64, 64), bool)
    mask[y:y + size, x:x + size] = True
    return mask


def _frames(n: int = 8) -> tuple[dict, list[dict], list[dict]]:
    """One wire per frame; the candidate finds every one, the baseline misses it on odd frames."""
    images = [{"id": i + 1, "width": 64, "height": 64, "file_name": f"{i}.png"} for i in range(n)]
    anns, cand, base = [], [], []
    for i in range(n):
        truth = _square(10 + i, 20)
        anns.append(coco.annotation(i + 1, i + 1, truth))
        cand.append(coco.result(i + 1, truth, 0.9, 0.9))
        base.append(coco.result(i + 1, truth if i % 2 == 0 else _square(40, 45), 0.9, 0.9))
    return coco.dataset(images, anns), cand, base


def test_paired_folds_scores_each_fold_on_its_own_images() -> None:
    gt, cand, base = _frames(8)
    out = paired_folds(gt, cand, base, folds=4)  # each fold: one frame found by both, one only by the candidate
    segm = out["segm.AP"]
    assert out["folds"] == 4 and segm["candidate"] == [1.0] * 4
    assert all(0.4 < b < 0.6 for b in segm["baseline"]), segm  # half the wires found: AP ~0.5
    assert segm["mean_diff"] == pytest.approx(np.mean(np.subtract(segm["candidate"], segm["baseline"])), abs=1e-4)
    assert segm["folds_better"] == 4 and segm["se_diff"] == pytest.approx(0.0, abs=1e-3)
    same = paired_folds(gt, cand, cand, folds=2)["bbox.AP"]
    assert (same["mean_diff"], same["se_diff"], same["folds_better"]) == (0.0, 0.0, 0)


def test_paired_folds_rejects_a_fold_count_the_images_cannot_fill() -> None:
    gt, cand, base = _frames(3)
    with pytest.raises(InputError, match="--folds must be between 2 and the number of images \\(3\\), got 4"):
        paired_folds(gt, cand, base, folds=4)
    with pytest.raises(InputError, match="got 1"):
        paired_folds(gt, cand, base, folds=1)
