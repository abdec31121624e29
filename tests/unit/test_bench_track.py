"""``wirewatch bench track`` runs and reports both rows (figures, not speed: speed targets are benchmarks)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from wirewatch.cli.app import app


def test_bench_track_reports_drift_and_no_drift_rows(tmp_path: Path) -> None:
    out = tmp_path / "track.json"
    result = CliRunner().invoke(app, ["bench", "track", "--particles", "20", "--size", "128", "--frames", "6",
                                      "--passes", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    for row in ("drift", "no_drift"):
        assert figures[row]["calls"] == 5 and 0 < figures[row]["cpu_min_ms"] <= figures[row]["cpu_median_ms"]
    assert figures["target_ms"] == 2.0 and "target <= 2 ms CPU median with drift" in result.output
