"""CLI: wirewatch segment -> stats -> evaluate on a small synthesised dataset, and their bad-input messages."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wirewatch.cli.app import app
from wirewatch.errors import BackendUnavailable, InputError

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    synth = pytest.importorskip("wirewatch.synth")
    out = tmp_path_factory.mktemp("ds") / "ds"
    synth.write_dataset(out, synth.SynthConfig.preset("ptychography", size=128), count=3, seed=5, split=None)
    return out


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_segment_stats_evaluate_chain(dataset: Path, tmp_path: Path) -> None:
    seg = tmp_path / "seg"
    res = runner.invoke(app, ["segment", str(dataset / "images"), "--backend", "watershed", "--out", str(seg),
                              "--pixel-size-nm", "10", "--option", "merge_ratio=0.5"])
    assert res.exit_code == 0, res.output
    results = json.loads((seg / "results.json").read_text())
    images = json.loads((seg / "images.json").read_text())
    assert len(images["images"]) == 3 and results
    assert {r["image_id"] for r in results} <= {1, 2, 3}
    assert all(r["segmentation"]["size"] == [128, 128] for r in results)
    assert sorted(p.name for p in (seg / "overlays").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    particles = rows(seg / "particles.csv")
    assert len(particles) == len(results)  # watershed scores are all >= 0.5
    assert {int(p["annotation_id"]) for p in particles} == set(range(1, len(results) + 1))
    # watershed has no mask scores of its own: each mask is ranked by its detection score
    assert all(r["mask_score"] == r["score"] for r in results)
    assert all(p["mask_score"] == p["score"] for p in particles)
    assert float(particles[0]["length_nm"]) == pytest.approx(10 * float(particles[0]["length_px"]))
    summary = rows(seg / "summary.csv")
    assert [int(s["detections"]) for s in summary] == [
        sum(r["image_id"] == i for r in results) for i in (1, 2, 3)]

    # stats on the ground truth: one row per annotation, OD read from the images next to the file.
    out = tmp_path / "stats"
    res = runner.invoke(app, ["stats", "--coco", str(dataset / "all.json"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    gt = json.loads((dataset / "all.json").read_text())
    particles = rows(out / "particles.csv")
    assert len(particles) == len(gt["annotations"])
    assert {int(p["annotation_id"]) for p in particles} == {a["id"] for a in gt["annotations"]}
    assert all(p["od_mean"] != "" for p in particles)
    frames = rows(out / "frames.csv")
    assert [int(float(f["particle_count"])) for f in frames] == [
        sum(a["image_id"] == i for a in gt["annotations"]) for i in (1, 2, 3)]

    # stats on segment's results, with its images.json for the image list.
    res = runner.invoke(app, ["stats", "--coco", str(seg / "results.json"), "--gt", str(seg / "images.json"),
                              "--out", str(tmp_path / "stats2")])
    assert res.exit_code == 0, res.output
    assert len(rows(tmp_path / "stats2" / "particles.csv")) == len(results)

    # evaluate: a results file and the same backend run directly agree.
    j1, j2 = tmp_path / "a.json", tmp_path / "b.json"
    res = runner.invoke(app, ["evaluate", "--gt", str(dataset / "all.json"), "--results", str(seg / "results.json"),
                              "--json", str(j1)])
    assert res.exit_code == 0, res.output
    assert "segm.AP50" in res.output and "seg_accuracy" in res.output
    res = runner.invoke(app, ["evaluate", "--gt", str(dataset / "all.json"), "--backend", "watershed",
                              "--json", str(j2), "--plots", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    a, b = json.loads(j1.read_text()), json.loads(j2.read_text())
    for key in ("bbox.AP", "segm.AP", "segm.AP50", "seg_accuracy", "count_pred", "count_gt", "stats.length_px.ks"):
        assert a[key] == pytest.approx(b[key]), key
    assert 0.0 <= a["segm.AP"] <= 1.0 and a["count_gt"] == len(gt["annotations"])
    assert (tmp_path / "plots" / "distributions.png").is_file()


def test_segment_keeps_going_past_an_unreadable_image_then_fails(dataset: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    res = runner.invoke(app, ["segment", str(dataset / "images" / "000000.png"), str(broken),
                              "--backend", "watershed", "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, InputError)
    assert "1 of 2 image(s) could not be read" in str(res.exception) and "broken.png" in str(res.exception)
    assert len(json.loads((tmp_path / "o" / "images.json").read_text())["images"]) == 1  # the good one is kept


def test_bad_arguments_are_clear_errors(dataset: Path, tmp_path: Path) -> None:
    gt = str(dataset / "all.json")
    res = runner.invoke(app, ["evaluate", "--gt", gt])
    assert isinstance(res.exception, InputError) and "exactly one of" in str(res.exception)
    stray = tmp_path / "stray.json"
    stray.write_text(json.dumps([{"image_id": 99, "category_id": 1, "score": 0.9,
                                  "segmentation": {"size": [128, 128], "counts": "0"}}]))
    res = runner.invoke(app, ["evaluate", "--gt", gt, "--results", str(stray)])
    assert isinstance(res.exception, InputError) and "missing from the ground truth: 99" in str(res.exception)
    res = runner.invoke(app, ["stats", "--coco", gt, "--out", str(tmp_path / "s"), "--pixel-size-nm", "1e-9"])
    assert isinstance(res.exception, InputError) and "pixel size" in str(res.exception)
    assert not (tmp_path / "s").exists()  # rejected before anything was written
    res = runner.invoke(app, ["segment", str(dataset / "images"), "--backend", "nope", "--out", str(tmp_path / "x")])
    assert isinstance(res.exception, InputError) and "unknown segmenter backend" in str(res.exception)
    res = runner.invoke(app, ["segment", str(dataset / "images"), "--backend", "watershed", "--out",
                              str(tmp_path / "x"), "--option", "bogus=1"])
    assert isinstance(res.exception, InputError) and "bogus" in str(res.exception)
    res = runner.invoke(app, ["segment", str(dataset / "images"), "--backend", "tensorrt", "--out", str(tmp_path / "x")])
    assert isinstance(res.exception, BackendUnavailable | InputError)


def test_error_becomes_one_line_and_exit_code_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "wirewatch", "stats", "--coco", str(tmp_path / "none.json"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: COCO file not found")


def test_bench_stats_reports_figures(tmp_path: Path) -> None:
    res = runner.invoke(app, ["bench", "stats", "--particles", "10", "--size", "128", "--repeats", "3",
                              "--json", str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    figures = json.loads((tmp_path / "b.json").read_text())
    assert figures["particles"] == 10 and figures["median_ms"] > 0 and figures["target_ms"] == 5.0
