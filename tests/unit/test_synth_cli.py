"""``wirewatch synth`` and ``wirewatch bench synth`` on the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from wirewatch.cli.app import app
from wirewatch.cli.synth import load_synth_config
from wirewatch.errors import ConfigError
from wirewatch.synth import preset_config, read_manifest

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_synth_writes_a_dataset_and_a_preview(tmp_path):
    out, preview = tmp_path / "ds", tmp_path / "sheet.png"
    res = runner.invoke(app, ["synth", "--out", str(out), "--count", "5", "--size", "96", "--seed", "4",
                              "--preset", "stxm", "--workers", "2", "--preview", str(preview), "--tiff"])
    assert res.exit_code == 0, res.output
    assert "wrote 5 images (train 4, val 1)" in res.output
    m = read_manifest(out)
    assert m["config"]["name"] == "stxm" and m["config"]["size"] == 96 and m["seed"] == 4
    assert len(list((out / "od").glob("*.tif"))) == 5
    sheet = cv2.imread(str(preview))
    assert sheet.shape == (3 * 96 + 4 * 4, 3 * 96 + 4 * 4, 3)  # 3 x 3 tiles with 4 px gaps


def test_synth_refuses_a_non_empty_out_without_overwrite(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    res = runner.invoke(app, ["synth", "--out", str(tmp_path), "--count", "1", "--size", "32"])
    assert isinstance(res.exception, Exception) and "--overwrite" in str(res.exception)
    assert (tmp_path / "keep.txt").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--preset", "tem"], "--preset 'tem' is unknown; allowed presets: ptychography, realistic, sem, stxm"),
    (["--size", "0"], "--size must be between 16 and 8192"),
    (["--count", "0"], "--count must be at least 1"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--split", "1.5"], "--split must be between 0 and 1"),
])
def test_bad_options_name_the_option(tmp_path, args, message):
    res = runner.invoke(app, ["synth", "--out", str(tmp_path / "d"), "--size", "32", *args])
    assert res.exit_code != 0
    assert message in str(res.exception)


def test_bad_option_is_a_one_line_error_and_exit_code_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "wirewatch", "synth", "--out", str(tmp_path / "d"),
                           "--preset", "tem"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: --preset 'tem' is unknown")
    assert "Traceback" not in proc.stderr


def test_config_file_overrides_the_preset_and_names_bad_keys(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("name: sem\nwires:\n  orientation: {mean_deg: 45, kappa: 3}\n")
    cfg = load_synth_config(None, None, good, environ={})
    assert cfg.name == "sem" and cfg.contrast.mode == "sem" and cfg.wires.orientation.kappa == 3
    assert load_synth_config("stxm", None, good, environ={}).name == "stxm"  # --preset wins
    bad = tmp_path / "bad.yaml"
    bad.write_text("wires:\n  lenght: {low: 1, high: 2}\n")
    with pytest.raises(ConfigError, match=r"wires\.lenght: unknown key; allowed keys: .*length"):
        load_synth_config(None, None, bad, environ={})
    worse = tmp_path / "worse.yaml"
    worse.write_text("contrast: {mode: xray}\n")
    with pytest.raises(ConfigError, match=r"contrast\.mode"):
        load_synth_config(None, None, worse, environ={})


def test_environment_overrides_and_size_rescales_the_scene(tmp_path):
    cfg = load_synth_config(None, 256, None, environ={"WIREWATCH_SYNTH__BLUR_SIGMA": "1.5",
                                                      "WIREWATCH_SYNTH__WIRES__ORIENTATION__KAPPA": "4"})
    # The environment sets values for the 512 scene; --size 256 halves every length, blur included.
    assert cfg.size == 256 and cfg.blur_sigma == 0.75 and cfg.wires.orientation.kappa == 4
    assert cfg.wires.length.high == preset_config("ptychography").wires.length.high / 2
    small = tmp_path / "small.yaml"
    small.write_text("size: 128\n")
    assert load_synth_config(None, None, small, environ={}) == preset_config("ptychography", 128)


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("synth-*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load_synth_config(None, 64, path, environ={})
    assert cfg.size == 64


def test_bench_synth_reports_rows(tmp_path):
    out = tmp_path / "rows.json"
    res = runner.invoke(app, ["bench", "synth", "--count", "2", "--size", "64", "--presets", "ptychography,sem",
                              "--workers", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())
    assert [(r["preset"], r["mode"], r["workers"]) for r in rows] == [
        ("ptychography", "render", 1), ("ptychography", "dataset", 1), ("sem", "render", 1), ("sem", "dataset", 1)]
    assert all(r["images_per_s"] > 0 and r["images"] == 2 for r in rows)
    res = runner.invoke(app, ["bench", "synth", "--presets", "tem"])
    assert "allowed presets" in str(res.exception)
