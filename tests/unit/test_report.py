"""``wirewatch report`` from a record alone (per-particle data in the record lines, change points detected
offline), the PDF, the numbers in the tables, and its errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from wirewatch.cli.app import app
from wirewatch.errors import InputError
from wirewatch.report import build_report, load_run
from wirewatch.report.build import cohens_d, effect_rows, segment_rows


def write_record(path: Path, frames: int = 120, jump: int = 60, seed: int = 0) -> None:
    """Frames whose wires get 2x longer from ``jump`` on; each line carries its particles (record.particles)."""
    rng = np.random.default_rng(seed)
    with path.open("w") as f:
        for i in range(frames):
            n = 12
            length = rng.normal(40.0 if i < jump else 80.0, 4.0, n)
            width = rng.normal(5.0, 0.5, n)
            parts = {"area_px": (length * width).round().tolist(), "length_px": length.tolist(),
                     "width_px": width.tolist(), "aspect_ratio": (length / width).tolist(),
                     "orientation_deg": rng.uniform(0, 180, n).tolist()}
            stats = {"particle_count": float(n), "length_px_mean": float(length.mean()),
                     "width_px_mean": float(width.mean()), "coverage_fraction": 0.1,
                     "orientation_order": 0.2, "aspect_ratio_mean": float((length / width).mean())}
            f.write(json.dumps({"frame": i, "time": 1.7e9 + i, "series": "s", "stats": stats, "latency_s": 0.1,
                                "particles": parts}) + "\n")


def test_report_from_a_record_with_particles(tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    write_record(record)
    run = load_run(record)
    assert run.particles is not None and run.particles["frame"].size == 120 * 12
    assert "offline" in run.changepoints_source
    assert any(55 <= int(c["frame"]) <= 65 for c in run.changepoints)  # the jump at 60
    summary = build_report(record, tmp_path / "r.html", pdf=tmp_path / "r.pdf")
    assert summary.figures == ("statistics over time", "area_px", "length_px", "width_px", "aspect_ratio",
                               "orientation_deg")
    html = (tmp_path / "r.html").read_text()
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', html)) == 6
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from elsewhere
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF")
    # medians per segment and the effect at the change point: length doubles, orientation does not move
    seg = segment_rows(run)
    assert seg[0][5] == pytest.approx(40, abs=2) and seg[-1][5] == pytest.approx(80, abs=2)
    length = [r for r in effect_rows(run) if r[3] == "length_px"]
    assert length and length[0][6] > 5  # Cohen's d: 40 px apart, SD 4
    orient = [r for r in effect_rows(run) if r[3] == "orientation_deg"]
    assert abs(orient[0][6]) < 0.5


def test_report_without_particles_says_what_is_missing(tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    write_record(record)
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    record.write_text("".join(json.dumps({k: v for k, v in ln.items() if k != "particles"}) + "\n"
                              for ln in lines if ln["frame"] != 7))  # frame 7 missing: dropped
    result = CliRunner().invoke(app, ["report", str(record), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r.html").read_text()
    assert 'data-figure="statistics over time"' in html and 'data-figure="area_px"' not in html
    assert "--particles DIR" in html and "1 frame id(s) missing" in html and "not recorded" in html


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_run(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match="no frames"):
        load_run(tmp_path / "empty.jsonl")
    write_record(tmp_path / "r.jsonl", frames=5)
    with pytest.raises(InputError, match="not a particle tables folder"):
        load_run(tmp_path / "r.jsonl", tmp_path)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nope.jsonl")])
    assert isinstance(result.exception, InputError)  # main() prints it as "error: ..." with exit code 2


def test_cohens_d() -> None:
    a, b = np.array([1.0, 2.0, 3.0]), np.array([3.0, 4.0, 5.0])
    assert cohens_d(a, b) == pytest.approx(2.0)
    assert np.isnan(cohens_d(a[:1], b))
