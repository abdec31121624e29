"""``wirewatch bench daemon`` body: a real daemon behind a loopback sender, short windows."""

from __future__ import annotations

import math

import pytest

from wirewatch.bench.daemon import bench_frames, run_daemon_bench


def test_bench_reports_rate_latency_and_where_the_time_goes() -> None:
    r = run_daemon_bench("watershed", size=128, rate=20.0, seconds=3.0, warmup_s=1.0, frames=bench_frames(128, 3))
    assert r.backend == "watershed" and r.frames_sent >= 70
    # Every frame sent is processed or dropped (policy latest), none lost silently.
    assert r.frames_processed + r.frames_dropped == r.frames_sent
    assert r.fps > 0 and 0 < r.latency_p50_s <= r.latency_p99_s < 5.0
    assert set(r.stages_p50_s) == {"decode", "preprocess", "segment", "measure", "changepoint", "publish", "waiting"}
    assert r.stages_p50_s["segment"] == pytest.approx(r.segment_p50_s)
    # The stages and the wait add up to about the median latency (medians of parts, so only roughly).
    assert sum(r.stages_p50_s.values()) == pytest.approx(r.latency_p50_s, rel=0.5, abs=0.02)
    assert 0 < r.cpu_cores_used < 3 and r.cpu_s_per_frame > 0
    assert all(math.isfinite(x) and x >= 0 for x in r.load_average)


def test_bench_option_parsing() -> None:
    # bench daemon -o and segment / evaluate --option share one parser (YAML scalars).
    from wirewatch.cli.backends import parse_options
    from wirewatch.errors import InputError

    assert parse_options(["threads=1", "spinning=true", "model=x.onnx", "views=4"]) == {
        "threads": 1, "spinning": True, "model": "x.onnx", "views": 4}
    with pytest.raises(InputError, match="key=value"):
        parse_options(["threads"])
