"""``wirewatch segment``: the default backend, missing / unreadable images, and ``measure_detections``, the one
"keep, measure, tie rows to detections" step that the command and the web upload share."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from wirewatch.cli.app import app
from wirewatch.cli.backends import open_segmenter, resolve_cli_backend
from wirewatch.errors import InputError
from wirewatch.segment.fit import FitSegmenter
from wirewatch.stats import measure, measure_detections
from wirewatch.types import Detections
from wirewatch.web.upload import segment_upload

runner = CliRunner()


def _rods() -> np.ndarray:
    img = np.zeros((64, 64), np.uint8)
    img[10:15, 5:55] = 230  # 50 px long
    img[30:60, 40:45] = 200  # 30 px long
    return img


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "rods.png"
    Image.fromarray(_rods()).save(path)
    return path


def test_measure_detections_keeps_by_score_and_ties_rows_to_detections() -> None:
    masks = np.zeros((4, 32, 32), bool)
    masks[0, 2:5, 2:20] = True
    masks[1, 10:13, 2:20] = True  # below the threshold
    masks[3, 20:30, 25:28] = True  # masks[2] is kept but empty: no row
    det = Detections(boxes=np.zeros((4, 4), np.float32), scores=np.array([0.9, 0.3, 0.8, 0.7], np.float32),
                     masks=masks, image_shape=(32, 32), mask_scores=np.array([0.5, 0.2, 0.6, 0.4], np.float32))
    m = measure_detections(det, None, score_threshold=0.5, frame_id=3)
    assert m.kept.tolist() == [0, 2, 3] and m.masks.shape == (3, 32, 32)
    assert m.detection.tolist() == [0, 3] and m.mask_index.tolist() == [0, 2]
    assert m.stats.frame_id == 3 and m.stats.aggregates["particle_count"] == 2
    assert m.stats.aggregates == pytest.approx(measure(masks[[0, 2, 3]]).aggregates, nan_ok=True)
    rows = m.rows(image_id=7)
    assert [r["image_id"] for r in rows] == [7, 7]
    assert [r["score"] for r in rows] == pytest.approx([0.9, 0.7]) and [r["mask_score"] for r in rows] == \
        pytest.approx([0.5, 0.4])
    assert [r["length_px"] for r in rows] == pytest.approx([18, 10], abs=1.0)


def test_segment_and_the_web_upload_give_the_same_particles(image: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = runner.invoke(app, ["segment", str(image), "--backend", "watershed", "--out", str(out)])
    assert res.exit_code == 0, res.output
    with (out / "particles.csv").open(newline="") as fh:
        cli = list(csv.DictReader(fh))
    web = segment_upload(open_segmenter("watershed", "default", {})[0], np.asarray(_rods(), np.float32) / 255.0,
                         histograms=False)["particles"]
    assert len(cli) == len(web) == 2
    for c, w in zip(cli, web, strict=True):
        assert int(c["annotation_id"]) == w["id"] + 1  # both detections kept: results.json order = mask order
        for key in ("score", "mask_score", "length_px", "width_px", "area_px", "od_mean"):
            assert float(c[key]) == pytest.approx(w[key]), key
    assert sorted(w["length_px"] for w in web) == pytest.approx([30, 50], abs=1.5)


def test_segment_defaults_to_backend_auto(image: Path, tmp_path: Path) -> None:
    expected, _ = resolve_cli_backend("auto", "default", {})  # the daemon's rule: the shipped model, or watershed
    res = runner.invoke(app, ["segment", str(image), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "o" / "images.json").read_text())["info"]
    assert info["backend"] == expected and expected in ("onnxruntime", "watershed")
    assert f"{expected}: 1 images" in res.output


def test_missing_image_is_a_clear_error_and_writes_nothing(image: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "frame_001.png"
    out = tmp_path / "o"
    res = runner.invoke(app, ["segment", str(image), str(missing), "--backend", "watershed", "--out", str(out)])
    assert res.exit_code != 0 and isinstance(res.exception, InputError)
    assert str(res.exception) == f"image not found: {missing}"
    assert not out.exists()  # checked before anything ran: no empty results.json to mistake for "no wires"
    proc = subprocess.run([sys.executable, "-m", "wirewatch", "segment", str(missing), "--backend", "watershed",
                           "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: image not found: {missing}"
    assert not out.exists()


def test_unreadable_image_alone_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "o"
    res = runner.invoke(app, ["segment", str(broken), "--backend", "watershed", "--out", str(out)])
    assert isinstance(res.exception, InputError) and res.exit_code != 0
    assert "none of the 1 image(s) could be read" in str(res.exception) and str(broken) in str(res.exception)
    assert not out.exists()
    res = runner.invoke(app, ["segment", str(empty), "--backend", "watershed", "--out", str(out)])
    assert isinstance(res.exception, InputError) and f"in folder {empty}" in str(res.exception)
    assert not out.exists()


def test_backend_loading_errors_name_the_problem() -> None:
    with pytest.raises(InputError, match="unknown segmenter backend 'nope'"):
        open_segmenter("nope", "default", {})
    with pytest.raises(InputError, match="bogus"):
        open_segmenter("watershed", "default", {"bogus": 1})
    segmenter, name = open_segmenter("watershed", "default", {})
    assert name == "watershed" and isinstance(segmenter, FitSegmenter)  # the daemon's resize / scale / tile path
