"""Benchmark body: change-point detection cost per frame and the evaluation table.

Targets (issue 6): F1 >= 0.9 at a 10-frame margin on the shipped scenarios, mean
detection delay <= 20 frames, <= 1 false alarm per 1000 change-free frames,
amortised ``update`` cost <= 1 ms per frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.bench.changepoint_corpus import trend_no_change
from wirewatch.bench.changepoint_streams import scenario_stream, synthetic_stream
from wirewatch.changepoint.config import DEFAULT_STATISTICS, ChangepointConfig
from wirewatch.changepoint.evaluate import EvalStream, Summary, evaluate
from wirewatch.changepoint.streaming import build_detector

TARGET_F1 = 0.9
TARGET_DELAY = 20.0
TARGET_FA_PER_1000 = 1.0
TARGET_MS_PER_FRAME = 1.0


def update_cost(config: ChangepointConfig | None = None, n_frames: int = 20000, seed: int = 0) -> dict[str, Any]:
    """Amortised cost of ``StreamingDetector.update`` on a change-free 5-statistic stream.

    CPU ms per frame (this process; robust to other jobs on a shared machine), wall ms per frame,
    and the wall time of the slowest updates (those that re-run the windowed search).
    """
    config = config or ChangepointConfig()
    build_start = time.perf_counter()
    detector = build_detector(config)
    build_s = time.perf_counter() - build_start
    stream = synthetic_stream("null", seed, n_frames=n_frames, stats=config.stats)
    rows = stream.rows()
    walls = np.empty(n_frames)
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    for i, row in enumerate(rows):
        t0 = time.perf_counter()
        detector.update(i, row)
        walls[i] = time.perf_counter() - t0
    cpu = time.process_time() - cpu_start
    wall = time.perf_counter() - wall_start
    return {"frames": n_frames, "statistics": len(config.stats), "method": config.windowed.method,
            "cost": config.windowed.cost, "window": config.windowed.window, "every": config.windowed.every,
            "online": config.online.method if config.online.enabled else None,
            "cpu_ms_per_frame": 1000 * cpu / n_frames, "wall_ms_per_frame": 1000 * wall / n_frames,
            "wall_ms_p99": 1000 * float(np.percentile(walls, 99)), "wall_ms_max": 1000 * float(walls.max()),
            "build_s": build_s}


@dataclass(frozen=True)
class Suite:
    name: str
    streams: Callable[[], list[EvalStream]]
    config: ChangepointConfig | None = None
    scenario: bool = False


def suites(*, quick: bool = False, scenarios: bool = True, cache_dir: Path | None = None,
           progress: Callable[[str], None] | None = None) -> list[Suite]:
    """The evaluation table's rows; ``quick`` uses fewer / shorter streams."""
    n = 5 if quick else 20
    null_frames = 2000 if quick else 5000
    n_null = 5 if quick else 10
    messy: dict[str, Any] = {"drift": 2.0, "outliers": 0.01, "missing": 0.03}
    out = [
        Suite("pw_constant, jumps 1-2 sigma per statistic",
              lambda: [synthetic_stream("pw_constant", s) for s in range(n)]),
        Suite("pw_constant, jumps 0.5-1 sigma per statistic",
              lambda: [synthetic_stream("pw_constant", s, delta=(0.5, 1.0)) for s in range(n)]),
        Suite("one statistic jumps 2-4 sigma",
              lambda: [synthetic_stream("sparse", s, delta=(2.0, 4.0)) for s in range(n)]),
        Suite("pw_constant 1-2 sigma + drift, 1% outliers, 3% dropped",
              lambda: [synthetic_stream("pw_constant", s, **messy) for s in range(n)]),
        Suite("pw_normal (correlation flips), cost normal (jump 4), no online test",
              lambda: [synthetic_stream("pw_normal", s) for s in range(max(3, n // 2))],
              ChangepointConfig.model_validate({"windowed": {"cost": "normal", "jump": 4},
                                                "online": {"enabled": False}})),
        Suite("change-free noise",
              lambda: [synthetic_stream("null", 1000 + s, n_frames=null_frames) for s in range(n_null)]),
        Suite("change-free + drift, outliers, dropped",
              lambda: [synthetic_stream("null", 2000 + s, n_frames=null_frames, **messy) for s in range(n_null)]),
        Suite("steady trend, 1% outliers, 2% gaps, change-free (2000 frames; issue 38: <= 2 alarms each)",
              lambda: [trend_no_change(3000 + s) for s in range(n_null)]),
    ]
    if scenarios:
        def scen(name: str, seeds: list[int]) -> Callable[[], list[EvalStream]]:
            def make() -> list[EvalStream]:
                streams = []
                for seed in seeds:
                    if progress is not None:
                        progress(f"simulating scenario {name} seed {seed}")
                    streams.append(scenario_stream(name, seed=seed, cache_dir=cache_dir))
                return streams
            return make

        out += [
            Suite("scenario demo (simulated, ground-truth masks)", scen("demo", [7, 8] if quick else list(range(7, 13))),
                  scenario=True),
            Suite("scenario growth (simulated, ground-truth masks)", scen("growth", [11]), scenario=True),
            Suite("scenario steady (simulated, change-free)",
                  scen("steady", [3, 4] if quick else list(range(3, 15))), scenario=True),
        ]
    return out


def evaluation_table(*, quick: bool = False, scenarios: bool = True, cache_dir: Path | None = None,
                     config: ChangepointConfig | None = None,
                     progress: Callable[[str], None] | None = None) -> list[Summary]:
    """Run every suite; each with its own config when it needs one (else ``config``)."""
    rows = []
    for suite in suites(quick=quick, scenarios=scenarios, cache_dir=cache_dir, progress=progress):
        if progress is not None:
            progress(suite.name)
        streams = suite.streams()
        cfg = suite.config or config or ChangepointConfig()
        if streams and list(streams[0].stats) != list(cfg.stats):
            cfg = cfg.with_stats(list(streams[0].stats))
        rows.append(evaluate(suite.name, streams, cfg))
    return rows


def meets_targets(summary: Summary) -> dict[str, bool | None]:
    """Per-target pass/fail for one row (None where the row does not measure that target)."""
    has_changes = summary.true_changes > 0
    return {
        "f1": summary.f1 >= TARGET_F1 if has_changes else None,
        "delay": summary.mean_delay <= TARGET_DELAY if has_changes and summary.true_positives else None,
        "false_alarms": (summary.false_alarms_per_1000 <= TARGET_FA_PER_1000
                         if np.isfinite(summary.false_alarms_per_1000) else None),
        "cost": summary.ms_per_frame <= TARGET_MS_PER_FRAME,
    }


__all__ = ["DEFAULT_STATISTICS", "evaluation_table", "meets_targets", "update_cost"]
