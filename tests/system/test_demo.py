"""``wirewatch demo`` end to end (short run): files written, record complete, no torch imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image
from rich.console import Console

from wirewatch.daemon.demo import run_demo
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
    for name in ("stats.png", "overlay.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 300
    text = (tmp_path / "console.txt").read_text()
    assert "true change points at frames [75]" in text and "90 processed" in text
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
