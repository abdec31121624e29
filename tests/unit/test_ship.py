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


def _panel_report(cand: dict[str, float], ship: dict[str, float], ws: dict[str, float]) -> dict:
    return {"segmenters": ["candidate", "shipped", "watershed"],
            "sets": [{"set": k, "scores": {"candidate": {"segm.AP": cand[k]}, "shipped": {"segm.AP": ship[k]},
                                           "watershed": {"segm.AP": ws[k]}}} for k in cand]}


def test_panel_ship_rule_written_before_scoring() -> None:
    from wirewatch.train.ship import panel_decision

    ship = {"preset-ptychography": 0.86, "sem-2x": 0.20, "heavy-noise": 0.05}
    ws = {"preset-ptychography": 0.13, "sem-2x": 0.25, "heavy-noise": 0.02}
    better = panel_decision(_panel_report({"preset-ptychography": 0.85, "sem-2x": 0.50, "heavy-noise": 0.30}, ship, ws),
                            "candidate", "shipped")
    assert better["ship"] and better["mean_gain"] > 0.1
    assert better["goals"]["every_set_min"] == ["heavy-noise"] and better["goals"]["beats_baseline"] is True
    # a big panel gain bought with the default preset (leg 25's trade, made larger) is refused
    worse_default = panel_decision(_panel_report({"preset-ptychography": 0.79, "sem-2x": 0.9, "heavy-noise": 0.9},
                                                 ship, ws), "candidate", "shipped")
    assert not worse_default["ship"] and any("default preset" in r for r in worse_default["reasons"])
    assert any("falling more than" in r for r in worse_default["reasons"])
    same = panel_decision(_panel_report(ship, ship, ws), "candidate", "shipped")
    assert not same["ship"] and same["goals"]["beats_baseline"] == ["sem-2x"]
