"""``wirewatch.evaluate.mask_errors``: pairing, and each wrong pixel counted in the right place."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wirewatch.evaluate.mask_errors import MaskErrors, frame_mask_errors, outline_band, pair_masks

H = W = 64


def bar(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_a_perfect_prediction_has_no_errors() -> None:
    truth = np.stack([bar(10, 16, 5, 55), bar(30, 36, 5, 55)])
    e = frame_mask_errors(truth[::-1].copy(), truth)
    s = e.summary()
    assert (s["pairs"], s["unpaired_truth"], s["iou_mean"]) == (2, 0, 1.0)
    assert all(s[f"{k}.{p}"] == 0 for k in ("missed", "extra") for p in ("crossing", "edge", "elsewhere"))


def test_a_one_pixel_shift_is_all_edge() -> None:
    truth = bar(10, 16, 5, 55)[None]
    pred = bar(11, 17, 5, 55)[None]  # one row lower: one row missed on top, one extra below
    e = frame_mask_errors(pred, truth)
    assert e.missed == {"crossing": 0, "edge": 50, "elsewhere": 0}
    assert e.extra == {"crossing": 0, "edge": 50, "elsewhere": 0}
    assert e.true_pixels == 300
    assert e.ious == [pytest.approx(250 / 350)]


def test_a_missing_tip_is_elsewhere_beyond_its_outline() -> None:
    truth = bar(10, 16, 5, 55)[None]
    pred = bar(10, 16, 5, 45)[None]  # the last 10 columns missing
    e = frame_mask_errors(pred, truth)
    # of the 60 missed pixels, the true tip's column and the top and bottom rows are on the outline
    assert e.missed["elsewhere"] == 4 * 9  # rows 11-14, columns 45-53
    assert e.missed["edge"] == 60 - 36
    assert sum(e.extra.values()) == 0


def test_bleeding_into_a_crossing_wire_counts_as_crossing() -> None:
    horizontal, vertical = bar(20, 26, 2, 62), bar(2, 62, 30, 36)
    truth = np.stack([horizontal, vertical])  # amodal: both own the 6 x 6 crossing
    bleed = horizontal | bar(14, 32, 30, 36)  # the horizontal mask grabs 6 rows of the vertical wire each side
    e = frame_mask_errors(np.stack([bleed, vertical]), truth)
    assert e.extra == {"crossing": 72, "edge": 0, "elsewhere": 0}
    assert sum(e.missed.values()) == 0
    assert e.crossing_pixels == 72  # 36 crossing pixels in each wire
    # a mask that stops at the crossing misses it there
    cut = horizontal & ~bar(20, 26, 30, 36)
    e = frame_mask_errors(np.stack([cut, vertical]), truth)
    assert e.missed == {"crossing": 36, "edge": 0, "elsewhere": 0}


def test_pairs_are_one_to_one_and_need_half_overlap() -> None:
    truth = np.stack([bar(10, 16, 5, 55), bar(40, 46, 5, 55)])
    twin = bar(10, 16, 5, 55)
    far = bar(40, 46, 5, 20)  # IoU 15/50 with the second wire: unpaired
    pairs = pair_masks(np.stack([twin, twin, far]), truth)
    assert [(p, t) for p, t, _ in pairs] == [(0, 0)]
    e = frame_mask_errors(np.stack([twin, twin, far]), truth)
    assert (e.pairs, e.unpaired_truth, e.true_pixels) == (1, 1, 300)
    assert frame_mask_errors(np.zeros((0, H, W), bool), truth).unpaired_truth == 2


def test_frames_add_up_and_shapes_are_checked() -> None:
    truth = bar(10, 16, 5, 55)[None]
    total = MaskErrors()
    total.add(frame_mask_errors(bar(11, 17, 5, 55)[None], truth))
    total.add(frame_mask_errors(truth, truth))
    s = total.summary()
    assert s["pairs"] == 2 and s["missed.edge"] == pytest.approx(100 * 50 / 600, abs=0.01)
    with pytest.raises(ValueError, match="masks must be"):
        frame_mask_errors(truth, np.zeros((1, 32, 32), bool))
    assert outline_band(bar(10, 16, 5, 55)).sum() == (8 * 52 - 4 * 48)


def test_cli_on_the_shipped_model(tmp_path: Path) -> None:
    """The shipped model on two fresh default-preset frames: most wires paired, most of each mask right."""
    pytest.importorskip("onnxruntime")
    from wirewatch import synth
    from wirewatch.evaluate.mask_errors import main
    from wirewatch.segment.model_files import resolve_model_path

    try:
        resolve_model_path("default")
    except Exception as exc:  # a checkout without the shipped file
        pytest.skip(f"no shipped default model: {exc}")
    data = tmp_path / "ds"
    synth.write_dataset(data, synth.SynthConfig.preset("ptychography"), count=2, seed=777, split=None)
    out = tmp_path / "errors.json"
    main(["--data", str(data), "--split", "all", "--images", "2", "--json", str(out)])
    result = json.loads(out.read_text())
    instances = len(json.loads((data / "all.json").read_text())["annotations"])
    assert result["pairs"] + result["unpaired_truth"] == instances
    assert result["pairs"] >= 0.8 * instances
    assert result["iou_mean"] > 0.75
    errors = sum(result[f"{k}.{p}"] for k in ("missed", "extra") for p in ("crossing", "edge", "elsewhere"))
    assert 0 < errors < 40  # per 100 true pixels
