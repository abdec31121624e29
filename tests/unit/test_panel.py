"""The evaluation panel: its sets, seeds and scores, and `wirewatch evaluate --panel` on a tiny panel (real
onnxruntime with the shipped model, real watershed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from wirewatch import coco
from wirewatch.cli.app import app
from wirewatch.errors import InputError
from wirewatch.evaluate.panel import (
    PANEL_SEED,
    average_precision,
    count_error,
    markdown_table,
    panel_sets,
    run_panel,
    select_sets,
    set_frames,
)
from wirewatch.segment import load_segmenter

# seeds of every training and evaluation set so far (docs/model.md): the panel must draw none of them
USED_SEEDS = set(range(0, 28)) | set(range(1001, 1009)) | {2501, 2701, 2901, 2902} | set(range(5101, 5113))


def test_panel_covers_the_conditions_with_fresh_seeds() -> None:
    names = [s.name for s in panel_sets()]
    assert len(names) == len(set(names)) == 17
    for wanted in ("preset-ptychography", "preset-realistic", "preset-stxm", "preset-sem", "absorption-0.5x",
                   "absorption-3x", "sem-0.5x", "sem-3x", "tem-bright-field", "heavy-noise", "uneven-background",
                   "agglomerates", "aligned-dense"):
        assert wanted in names
    assert not {PANEL_SEED + i for i in range(len(names))} & USED_SEEDS
    with pytest.raises(InputError, match="unknown panel set"):
        select_sets(["preset-nope"])


def test_aligned_dense_set_is_dense_and_aligned() -> None:
    index, ps = select_sets(["aligned-dense"])[0]
    cfg = ps.config(512)
    assert cfg.wires.orientation.kappa == 8.0 and cfg.wires.count.min >= 60
    gt, _ = set_frames(index, ps, 1, 512)
    angles = []
    for ann in gt["annotations"]:
        _, _, w, h = ann["bbox"]
        if max(w, h) > 40:  # long wires: the box's diagonal tells the direction well enough
            angles.append(np.degrees(np.arctan2(h, w)))
    assert len(gt["annotations"]) >= 50 and np.median(angles) > 60  # most wires near 75 deg from the x axis


def test_set_frames_are_deterministic_and_span_the_widths() -> None:
    index, ps = select_sets(["absorption-3x"])[0]
    gt, frames = set_frames(index, ps, 2, 256)
    gt2, frames2 = set_frames(index, ps, 2, 256)
    np.testing.assert_array_equal(frames[0], frames2[0])
    assert gt["annotations"] == gt2["annotations"] and frames[0].dtype == np.float32
    index, ps = select_sets(["tem-bright-field"])[0]
    _, bf = set_frames(index, ps, 1, 256)
    assert np.median(bf[0]) > 0.6  # a bright field, the wires dark


def test_scores_of_perfect_and_empty_results() -> None:
    index, ps = select_sets(["preset-ptychography"])[0]
    gt, _ = set_frames(index, ps, 2, 128)
    perfect = [{**coco.result(a["image_id"], coco.decode_mask(a["segmentation"], 128, 128), 1.0), "bbox": a["bbox"]}
               for a in gt["annotations"]]
    ap = average_precision(gt, perfect)
    assert ap["segm.AP"] == pytest.approx(1.0) and ap["bbox.AP"] == pytest.approx(1.0)
    assert average_precision(gt, [])["segm.AP"] == 0.0
    assert count_error([9, 12], [10, 10]) == pytest.approx(0.15)
    assert math.isnan(count_error([3], [0]))


def test_run_panel_table_has_the_baseline_beside_the_model() -> None:
    report = run_panel({"watershed": load_segmenter("watershed")}, frames=1, size=128,
                       sets=["preset-ptychography", "sem-1x"])
    assert [r["set"] for r in report["sets"]] == ["preset-ptychography", "sem-1x"]
    table = markdown_table(report)
    assert "| preset-ptychography |" in table and "mean of 2 sets" in table
    with pytest.raises(InputError, match="at least 1 frame"):
        run_panel({}, frames=0)


def test_evaluate_panel_command_on_a_tiny_panel(tmp_path: Path) -> None:
    out, md = tmp_path / "panel.json", tmp_path / "panel.md"
    result = CliRunner().invoke(app, [
        "evaluate", "--panel", "--panel-frames", "1", "--panel-sets", "preset-ptychography,absorption-2x",
        "--panel-variant", "scale=none,polarity=bright", "--panel-variant", "scale=auto",
        "--option", "threads=2", "--json", str(out), "--markdown", str(md)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["segmenters"] == ["model scale=none,polarity=bright", "model scale=auto", "watershed"]
    rows = {r["set"]: r["scores"] for r in report["sets"]}
    # the shipped model beats the baseline on its own preset, and scale=auto recovers 2x-magnified wires
    assert rows["preset-ptychography"]["model scale=auto"]["segm.AP"] > 0.7
    assert rows["preset-ptychography"]["model scale=auto"]["segm.AP"] > rows["preset-ptychography"]["watershed"]["segm.AP"]
    assert rows["absorption-2x"]["model scale=auto"]["segm.AP"] > rows["absorption-2x"]["model scale=none,polarity=bright"]["segm.AP"] + 0.1
    table = md.read_text()
    assert "watershed: mask AP / box AP / count err" in table and "| absorption-2x |" in table
    assert set(report["mean"]) == set(report["segmenters"])


def test_evaluate_panel_refuses_gt_and_watershed(tmp_path: Path) -> None:
    gt = tmp_path / "gt.json"
    gt.write_text("{}")
    result = CliRunner().invoke(app, ["evaluate", "--panel", "--gt", str(gt)])
    assert result.exit_code != 0 and "--panel draws its own frames" in str(result.exception or result.output)
    result = CliRunner().invoke(app, ["evaluate", "--panel", "--backend", "watershed"])
    assert result.exit_code != 0
