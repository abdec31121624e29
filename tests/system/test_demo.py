"""``wirewatch demo`` end to end (short run): files written, record complete, no torch imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image
from rich.console import Console

from wirewatch.demo import run_demo
from wirewatch.publish.record import read_record


def test_demo_writes_record_plots_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    console = Console(file=open(tmp_path / "console.txt", "w"), width=100)  # noqa: SIM115
    summary = run_demo(out, frames=90, rate=30, format="array-1.0", policy="queue", backend="watershed",
                       live=False, console=console)
    console.file.close()
    assert not summary.interrupted
    assert summary.frames_sent == 90 and summary.frames_processed == 90 and summary.frames_dropped == 0
    lines = read_record(out / "record.jsonl")
    assert [ln["frame"] for ln in lines] == list(range(90))
    truth = json.loads((out / "truth.json").read_text())
    assert truth["change_points"] == [75] and truth["frames"] == 90
    # What the simulator drew, per frame, and how the measured series agree with it.
    assert [t["frame"] for t in truth["per_frame"]] == list(range(90))
    first = truth["per_frame"][0]
    assert first["particle_count"] >= 10 and 3 < first["width_px_mean"] < 8 and 0 < first["coverage_fraction"] < 0.2
    assert summary.nodata_pixels == 0 and summary.agreement["frames"] == 90
    # the watershed baseline merges crossing wires: the numbers are finite, not good (docs/stats.md: the model's)
    assert 0 <= summary.agreement["count_rel_error_mean"] < 1 and summary.agreement["width_error_px_mean"] >= 0
    for name in ("stats.png", "overlay.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 300
    text = (tmp_path / "console.txt").read_text()
    assert "true change points at frames [75]" in text and "90 processed" in text
    assert "agreement with the simulator's truth over 90 frames" in text
    assert "NODATA pixels received: 0 in 0 frames" in text
    # output to a file: the summary starts on its own line, not glued to the table's border (issue 41)
    assert "\ndone:" in text and "┘done" not in text
    assert "frames sent (of the run)" in text and "frames processed" in text
    # the width jump at frame 75 is the clearest change in this scenario
    assert any(abs(cp.frame - 75) <= 5 and "width_px_mean" in cp.statistics for cp in summary.detected), \
        summary.detected


def test_demo_cli_runs_without_torch(tmp_path: Path) -> None:
    """The demo path must work on a runtime-only install: torch is never imported."""
    code = (
        "import sys, runpy\n"
        "sys.argv = ['wirewatch', 'demo', '--frames', '6', '--rate', '20', '--out', sys.argv[1],"
        " '--backend', 'watershed', '--format', 'stream1', '--policy', 'queue']\n"
        "from wirewatch.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok no torch')\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d")], capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok no torch" in out.stdout
    assert len(read_record(tmp_path / "d" / "record.jsonl")) == 6
    assert (tmp_path / "d" / "stats.png").is_file() and (tmp_path / "d" / "overlay.png").is_file()


def test_saturated_stream2_frames_reach_the_daemon_without_nodata(tmp_path: Path) -> None:
    """Dense, thick wires: crossings saturate the 8-bit grey; none may arrive as NODATA (black holes)."""
    scenario = tmp_path / "dense.yaml"
    scenario.write_text("name: dense\nframes: 8\nseed: 3\nsize: 128\n"
                        "base:\n  wires.count: {min: 25, max: 25}\n"
                        "  wires.width: {kind: uniform, low: 9, high: 12}\n")
    from wirewatch.simulate import resolve_scenario
    from wirewatch.simulate.producer import FrameMaker

    maker = FrameMaker(resolve_scenario(scenario))
    assert sum(int((maker.image(i) == 255).sum()) for i in range(8)) > 100  # saturated crossings are sent
    console = Console(file=open(tmp_path / "console.txt", "w"), width=100)  # noqa: SIM115
    summary = run_demo(tmp_path / "out", frames=8, rate=20, scenario=str(scenario), format="stream2",
                       policy="queue", backend="watershed", live=False, console=console)
    console.file.close()
    assert summary.frames_processed == 8 and summary.nodata_pixels == 0
    truth = json.loads((tmp_path / "out" / "truth.json").read_text())
    assert len(truth["per_frame"]) == 8 and all(t["particle_count"] > 15 for t in truth["per_frame"])
