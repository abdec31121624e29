"""Run a scenario through the daemon's pipeline in memory and count what the alert rules would do:
sample alerts (``MorphologyChanged``) and instrument alerts (``InstrumentChanged``) per event.

``python -m wirewatch.bench.quality_events refocus magnification demo`` prints, per scenario, the true sample
changes, the instrument events, the change points with their attribution, and how many sample alerts
fall near each event (the goal of issue 44: at most one per instrument event, and every true sample
change still alerted). The figures in docs/stats.md come from it.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from wirewatch.config.daemon import load_daemon_config, shipped_config_path
from wirewatch.daemon.build import build_change_detector, build_segmenter
from wirewatch.daemon.metrics import DaemonMetrics
from wirewatch.daemon.pipeline import Pipeline
from wirewatch.daemon.stages import FrameResult
from wirewatch.ingest import encode_array10, make_decoder
from wirewatch.ingest.memory import MessageListSource
from wirewatch.quality.monitor import QualityMonitor
from wirewatch.simulate.producer import FrameMaker
from wirewatch.simulate.scenario import resolve_scenario
from wirewatch.stats import measure
from wirewatch.types import ChangePoint

MARGIN = 15  # a change point within this many frames after an event belongs to it
KEPT = ("reliability", "iq_blur_px", "iq_background", "iq_shift_px", "length_px_median", "width_px_median",
        "particle_count")


class _Collect:
    name = "collect"

    def __init__(self) -> None:
        self.changepoints: list[ChangePoint] = []
        self.values: dict[str, list[float]] = {}

    def publish(self, result: FrameResult) -> list[Any]:
        self.changepoints.extend(result.changepoints)
        for name in KEPT:
            self.values.setdefault(name, []).append(float(result.stats.aggregates.get(name, float("nan"))))
        return []

    def series(self, event: object) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class EventRun:
    scenario: str
    sample_changes: list[int]
    instrument_changes: list[int]
    changepoints: list[ChangePoint]
    values: dict[str, list[float]]

    def sample_alerts(self) -> list[int]:
        """Frames of the change points the shipped MorphologyChanged rule alerts on."""
        return sorted({cp.frame for cp in self.changepoints if cp.attribution == "sample" and not cp.suspect})

    def instrument_alerts(self) -> list[int]:
        return sorted({cp.frame for cp in self.changepoints if cp.attribution == "instrument"})

    def near(self, frames: Sequence[int], event: int) -> int:
        return sum(1 for f in frames if event - MARGIN <= f <= event + MARGIN)

    def summary(self) -> dict[str, Any]:
        sample, instrument = self.sample_alerts(), self.instrument_alerts()
        return {
            "scenario": self.scenario,
            "sample_changes": self.sample_changes,
            "instrument_changes": self.instrument_changes,
            "sample_alert_frames": sample,
            "instrument_alert_frames": instrument,
            "sample_alerts_per_instrument_event": [self.near(sample, e) for e in self.instrument_changes],
            "instrument_alerts_per_instrument_event": [self.near(instrument, e) for e in self.instrument_changes],
            "sample_changes_alerted": [self.near(sample, e) > 0 for e in self.sample_changes],
        }


def run_scenario(name: str, *, frames: int | None = None, backend: str = "auto") -> EventRun:
    """The scenario through decode -> preprocess -> segment -> measure -> quality -> change points."""
    scenario = resolve_scenario(name)
    n = frames or scenario.frames
    maker = FrameMaker(scenario)
    messages = [encode_array10(i, maker.image(i), pixel_size_nm=scenario.pixel_size_nm,
                               signal=scenario.signal) for i in range(n)]
    config = load_daemon_config(shipped_config_path(), overrides={"segment": {"backend": backend}})
    segmenter, _, _ = build_segmenter(config)
    from wirewatch.segment.fit import FitSegmenter

    fitted = FitSegmenter(segmenter, max_side=config.preprocess.max_side)
    collect = _Collect()
    pipe = Pipeline(source=MessageListSource(messages), decoder=make_decoder("array-1.0"), preprocess=config.preprocess,
                    segmenter=fitted, measurer=measure, detector=build_change_detector(config), sinks=[collect],
                    metrics=DaemonMetrics(CollectorRegistry()), quality=QualityMonitor(config.quality))
    pipe.start()
    pipe.join(None)
    return EventRun(name, [c.frame for c in scenario.changes if c.frame < n],
                    [c.frame for c in scenario.instrument_changes if c.frame < n], collect.changepoints,
                    collect.values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="+")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--series", default=None, help="write each run's per-frame measures to this JSON file")
    args = parser.parse_args(argv)
    kept: dict[str, Any] = {}
    for name in args.scenarios:
        t = time.perf_counter()
        run = run_scenario(name, frames=args.frames, backend=args.backend)
        out = run.summary()
        out["seconds"] = round(time.perf_counter() - t, 1)
        out["changepoints"] = [{"frame": cp.frame, "detected_at": cp.detected_at, "statistics": list(cp.statistics), "attribution": cp.attribution,
                                "suspect": cp.suspect} for cp in run.changepoints]
        print(json.dumps(out), flush=True)
        kept[name] = run.values
        if args.series:
            Path(args.series).write_text(json.dumps(kept))


if __name__ == "__main__":
    main()
