"""Per-particle Parquet tables from a real run: simulator (demo scenario) -> daemon -> record + tables,
then ``wirewatch report`` and ``wirewatch changepoints`` reading them back."""

from __future__ import annotations

import collections
import json
import threading
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")

from wirewatch.daemon.service import Daemon
from wirewatch.publish.particles import read_frames, read_particles
from wirewatch.publish.record import read_record
from wirewatch.simulate.producer import Simulator
from wirewatch.simulate.scenario import resolve_scenario

from .helpers import daemon_config, wait_for

FRAMES = 160


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 160-frame demo-scenario run (watershed, policy queue: every frame processed) with particle tables."""
    out = tmp_path_factory.mktemp("particles-run")
    sim = Simulator(resolve_scenario("demo"), endpoint="tcp://127.0.0.1:*", format="stream2", rate=0,
                    frames=FRAMES)
    endpoint = sim.open()
    config = daemon_config(endpoint, "stream2", ingest={"policy": "queue"}, http={"enabled": False},
                           publish={"zmq": None},
                           record={"path": str(out / "record.jsonl"), "particles_dir": str(out / "particles"),
                                   "particles_roll_frames": 50, "particle_masks": "rle"})
    daemon = Daemon(config).start()
    thread = threading.Thread(target=sim.run, name="test-simulator", daemon=True)
    thread.start()
    try:
        thread.join(timeout=120)
        wait_for(lambda: daemon.pipeline.processed >= FRAMES, timeout=120, what=f"{FRAMES} frames processed")
        daemon.pipeline.request_stop()
        assert daemon.wait(timeout=60)
    finally:
        sim.stop()
        daemon.close()
        sim.close()
    return out


def test_per_frame_particle_rows_equal_the_records_particle_count(run_dir: Path) -> None:
    record = read_record(run_dir / "record.jsonl")
    assert [ln["frame"] for ln in record] == list(range(FRAMES))
    table = read_particles(run_dir / "particles")
    rows = collections.Counter(table.column("frame").to_pylist())
    assert sum(rows.values()) == table.num_rows > 4 * FRAMES  # ~8 particles a frame (watershed)
    for ln in record:
        assert rows.get(ln["frame"], 0) == ln["stats"]["particle_count"], ln["frame"]
    # rolled every 50 frames: 4 closed parts per table, and the frames table holds every frame
    parts = sorted(p.name for p in (run_dir / "particles" / "particles").iterdir())
    assert parts == [f"part-{i:06d}.parquet" for i in range(4)]
    frames = read_frames(run_dir / "particles")
    assert frames.column("frame").to_pylist() == list(range(FRAMES))
    assert frames.column("particle_count").to_pylist() == [ln["stats"]["particle_count"] for ln in record]
    # every descriptor of particles.csv is a column; masks as COCO RLE decode to the measured area
    from wirewatch.coco import decode_mask
    from wirewatch.stats.descriptors import PARTICLE_COLUMNS

    assert set(PARTICLE_COLUMNS) <= set(table.column_names)
    assert {"series", "frame", "time", "particle", "score", "mask_rle"} <= set(table.column_names)
    first = table.slice(0, 5).to_pylist()
    for row in first:
        mask = decode_mask({"size": [row["mask_height"], row["mask_width"]], "counts": row["mask_rle"]},
                           row["mask_height"], row["mask_width"])
        assert int(mask.sum()) == row["area_px"]
    meta = json.loads((run_dir / "particles" / "run.json").read_text())
    assert meta["status"] == "closed" and meta["frames_processed"] == FRAMES
    assert meta["backend"] == "watershed" and len(meta["config_sha256"]) == 64
    assert meta["particles"] == table.num_rows


def test_changepoints_reads_the_dataset_like_the_record(run_dir: Path) -> None:
    from typer.testing import CliRunner

    from wirewatch.cli.app import app

    runner = CliRunner()
    docs = []
    for source in (run_dir / "record.jsonl", run_dir / "particles"):
        out = run_dir / f"cps-{source.name}.json"
        result = runner.invoke(app, ["changepoints", str(source), "--json", str(out)])
        assert result.exit_code == 0, result.output
        docs.append(json.loads(out.read_text())["changepoints"])
    # the same statistics in, the same change points out (which ones is the detector's business)
    assert [(c["frame"], c["statistics"], c["detected_at"]) for c in docs[0]] == \
        [(c["frame"], c["statistics"], c["detected_at"]) for c in docs[1]]


def test_report_from_record_and_particles_is_self_contained(run_dir: Path) -> None:
    from typer.testing import CliRunner

    from wirewatch.cli.app import app

    out = run_dir / "report.html"
    result = CliRunner().invoke(app, ["report", str(run_dir / "record.jsonl"), "--particles",
                                      str(run_dir / "particles"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    for figure in ("statistics over time", "area_px", "length_px", "width_px", "aspect_ratio",
                   "orientation_deg"):
        assert f'data-figure="{figure}"' in html, figure
    assert html.count("data:image/png;base64,") >= 6
    assert "http://" not in html and "https://" not in html and "<script src" not in html
    assert "watershed" in html and "config sha256" in html.lower()


def test_report_from_the_folder_alone_uses_its_frames_table(run_dir: Path) -> None:
    from wirewatch.report import build_report

    summary = build_report(run_dir / "particles", run_dir / "report-folder.html", pdf=run_dir / "report.pdf")
    assert summary.frames == FRAMES and summary.particles == read_particles(run_dir / "particles").num_rows
    assert "area_px" in summary.figures and (run_dir / "report.pdf").read_bytes().startswith(b"%PDF")
