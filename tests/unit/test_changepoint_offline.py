"""Record files -> change points: the offline runner, the CLI, and the simulator's scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from wirewatch.bench.changepoint_streams import scenario_stream, synthetic_stream
from wirewatch.changepoint import ChangepointConfig
from wirewatch.changepoint.evaluate import evaluate
from wirewatch.changepoint.offline import detect_record, read_record, read_truth
from wirewatch.cli.app import app
from wirewatch.errors import InputError


def _write_record(path: Path, streams: list, series_names: list[str] | None = None) -> list[int]:
    """Concatenate streams as series in one record file (frame ids restart per series); returns truth frames."""
    truth = []
    with path.open("w") as handle:
        for k, stream in enumerate(streams):
            for frame, row in zip(stream.frames.tolist(), stream.rows(), strict=True):
                stats = {name: (None if np.isnan(v) else v) for name, v in row.items()}
                series = series_names[k] if series_names else "s1"
                handle.write(json.dumps({"frame": frame, "time": 1.7e9 + frame, "series": series, "stats": stats}) + "\n")
            truth += list(stream.truth)
    return truth


def test_cli_writes_events_json_and_plot_and_scores_against_truth(tmp_path: Path) -> None:
    stream = synthetic_stream("pw_constant", 7, missing=0.03, outliers=0.01)
    record = tmp_path / "run.jsonl"
    truth = _write_record(record, [stream])
    truth_file = tmp_path / "truth.json"
    truth_file.write_text(json.dumps({"scenario": "x", "change_points": truth}))
    out, png = tmp_path / "out" / "cps.json", tmp_path / "cps.png"
    result = CliRunner().invoke(app, ["changepoints", str(record), "--truth", str(truth_file), "--json", str(out),
                                      "--plot", str(png)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    events = doc["changepoints"]
    assert len(events) == len(truth) == 4
    for event, true_frame in zip(events, truth, strict=True):
        assert abs(event["frame"] - true_frame) < 10
        assert event["detected_at"] >= event["frame"] and event["delay"] == event["detected_at"] - event["frame"]
        assert event["statistics"] and set(event["before"]) == set(event["statistics"]) == set(event["after"])
        assert event["detector"] in {"cusum", "binseg"} and event["severity"] in {"info", "warning", "critical"}
        # issue 38: what changed, and the threshold the reporting detector used
        assert event["kind"] in {"level", "slope", "variance"} and event["penalty"] > 0
    assert doc["scores"]["f1"] == 1.0
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "F1 1.00" in result.output


def test_series_boundaries_reset_the_detector(tmp_path: Path) -> None:
    # two series back to back at very different levels: the jump between them is not a change
    a = synthetic_stream("null", 1, n_frames=300)
    b = synthetic_stream("null", 2, n_frames=300)
    b = type(b)(name=b.name, frames=b.frames, stats={k: v * 3 + 100 for k, v in b.stats.items()}, truth=())
    record = tmp_path / "two.jsonl"
    _write_record(record, [a, b], ["first", "second"])
    result = detect_record(record)
    assert result.changepoints == []
    assert result.series_boundaries == [0]
    assert len(result.frames) == 600


def test_stats_option_and_missing_statistics(tmp_path: Path) -> None:
    stream = synthetic_stream("sparse", 3, delta=(3.0, 4.0))
    record = tmp_path / "r.jsonl"
    _write_record(record, [stream])
    only = detect_record(record, stats=["particle_count"])
    assert all(cp.statistics == ("particle_count",) for cp in only.changepoints)
    assert list(only.series) == ["particle_count"]
    with pytest.raises(InputError, match=r"nope.*it has: aspect_ratio_mean"):
        detect_record(record, stats=["nope"])
    with pytest.raises(InputError, match="none of the watched statistics"):
        detect_record(record, ChangepointConfig(stats=["x", "y"]))


def test_truncated_last_line_is_skipped_but_a_corrupt_line_is_an_error(tmp_path: Path) -> None:
    good = '{"frame": 0, "stats": {"particle_count": 3}}\n{"frame": 1, "stats": {"particle_count": null}}\n'
    record = tmp_path / "cut.jsonl"
    record.write_text(good + '{"frame": 2, "stats": {"parti')
    frames = list(read_record(record))
    assert [f.frame for f in frames] == [0, 1] and np.isnan(frames[1].stats["particle_count"])
    record.write_text(good.replace('{"frame": 1', '{"frame": "one"', 1))
    with pytest.raises(InputError, match=r"cut\.jsonl:2: 'frame' must be an integer"):
        list(read_record(record))
    record.write_text("not json\n" + good)
    with pytest.raises(InputError, match=r"cut\.jsonl:1: not valid JSON"):
        list(read_record(record))
    with pytest.raises(InputError, match="cannot read record file"):
        list(read_record(tmp_path / "absent.jsonl"))
    result = CliRunner().invoke(app, ["changepoints", str(record)])
    assert result.exit_code != 0 and isinstance(result.exception, InputError)


def test_truth_file_forms(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text("[300, 75, 150]")
    assert read_truth(path) == [75, 150, 300]
    path.write_text('{"change_points": [5]}')
    assert read_truth(path) == [5]
    path.write_text('{"changes": []}')
    with pytest.raises(InputError, match="no 'change_points' key"):
        read_truth(path)
    path.write_text('["a"]')
    with pytest.raises(InputError, match="list of integer frames"):
        read_truth(path)


def test_bad_config_file_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("changepoint:\n  windowed:\n    methd: pelt\n")
    record = tmp_path / "r.jsonl"
    _write_record(record, [synthetic_stream("null", 1, n_frames=60)])
    result = CliRunner().invoke(app, ["changepoints", str(record), "--config", str(cfg)])
    assert result.exit_code != 0
    assert "windowed.methd" in str(result.exception)


def test_demo_scenario_meets_the_targets() -> None:
    """The shipped demo scenario (statistics from the synthesiser's ground-truth masks):
    every change found within 10 frames, no false alarm, delay <= 20 frames."""
    summary = evaluate("demo", [scenario_stream("demo")])
    assert summary.true_changes == 3
    assert summary.f1 >= 0.9, [(e.frame, e.detected_at, e.statistics) for e in summary.results[0].detected]
    assert summary.mean_delay <= 20
    named = {s for e in summary.results[0].detected for s in e.statistics}
    assert {"width_px_mean", "particle_count", "orientation_order"} <= named


def test_cli_margin_and_truth_beyond_the_record(tmp_path: Path) -> None:
    record = tmp_path / "r.jsonl"
    truth = _write_record(record, [synthetic_stream("sparse", 11, delta=(3.0, 4.0))])
    truth_file = tmp_path / "t.json"
    truth_file.write_text(json.dumps([*truth, 5000]))
    result = CliRunner().invoke(app, ["changepoints", str(record), "--truth", str(truth_file), "--margin", "0"])
    assert result.exit_code != 0 and "--margin must be >= 1" in str(result.exception)
    result = CliRunner().invoke(app, ["changepoints", str(record), "--truth", str(truth_file)])
    assert result.exit_code == 0, result.output
    assert "[5000] lie beyond" in result.output and "recall 1.00" in result.output
