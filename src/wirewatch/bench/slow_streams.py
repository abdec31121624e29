"""Change detection on slow streams (ptychography, STXM: one frame every 10 s to minutes), issue 44.

``python -m wirewatch.bench.slow_streams [--series 20] [--json OUT]`` runs the daemon's detector
(``wirewatch.changepoint.build_detector``, frame times passed as the daemon passes them) over short
series of 40, 60 and 80 frames at 0.05 frames/s (20 s a frame), each with one change, under three
settings: the defaults (a 50-frame warm-up), the warm-up and minimum segment given in seconds
(``warmup_s``, ``windowed.min_segment_s``, ``false_alarms_per_hour``), and a reference run
(``changepoint.reference``: a change-free record of an earlier run of the same kind, 60 frames; its online test
with a level baseline, the default with a reference, and with ``online.trend: true``). It prints,
per setting and length, F1 at a 5-frame margin, recall, false alarms, and the detection delay
(``detected_at`` - true frame) in frames and minutes. A change of the ``early`` set comes 1-3 frames after
the reference's short warm-up: the "detected within 5 frames of warm-up" goal.

The series: the 5 default statistics at the levels and noise of the demo (``changepoint.evaluate``),
independent noise, the wires lengthening by 0.02 sigma a frame (growth), and one step of 2-4 sigma in
one random statistic. The figures in docs/changepoint.md ("Slow streams") come from it.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.bench.changepoint_streams import LEVELS as _LEVELS
from wirewatch.changepoint.config import DEFAULT_STATISTICS, ChangepointConfig, OnlineConfig, WindowedConfig
from wirewatch.changepoint.evaluate import match
from wirewatch.changepoint.streaming import build_detector

INTERVAL_S = 20.0  # 0.05 frames/s
MARGIN = 5  # frames: a detection this close to the true change matches it (TCPDBench's margin)
SLOPE = 0.02  # sigma per frame: the lengths grow steadily (no change)


@dataclass(frozen=True)
class SlowSeries:
    rows: list[dict[str, float]]
    change: int | None


def make_series(seed: int, n: int, change: int | None, *, step: tuple[float, float] = (2.0, 4.0)) -> SlowSeries:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, len(DEFAULT_STATISTICS)))
    z[:, 0] += SLOPE * np.arange(n)
    if change is not None:
        z[change:, int(rng.integers(len(DEFAULT_STATISTICS)))] += rng.choice([-1.0, 1.0]) * rng.uniform(*step)
    rows = [{name: _LEVELS[name][0] + _LEVELS[name][1] * float(v) for name, v in zip(DEFAULT_STATISTICS, row,
                                                                                    strict=True)} for row in z]
    return SlowSeries(rows, change)


def write_reference(path: Path, seed: int, n: int = 60) -> None:
    """A change-free earlier run (another sample: its levels differ by up to 3 sigma) as a record file."""
    rng = np.random.default_rng(seed)
    offset = {name: rng.uniform(-3, 3) * _LEVELS[name][1] for name in DEFAULT_STATISTICS}
    with path.open("w", encoding="utf-8") as f:
        for i, row in enumerate(make_series(seed, n, None).rows):
            stats = {k: v + offset[k] for k, v in row.items()}
            f.write(json.dumps({"frame": i, "time": 1.0e9 + i * INTERVAL_S, "series": "reference", "stats": stats})
                    + "\n")


def run(config: ChangepointConfig, series: Sequence[SlowSeries]) -> dict[str, Any]:
    detector = build_detector(config)
    tp = fp = changes = 0
    delays: list[int] = []
    warmups: list[int] = []
    for s in series:
        detector.reset()
        events = []
        for i, row in enumerate(s.rows):
            events += detector.update(i, row, time=1.7e9 + i * INTERVAL_S)
        warmups.append(detector.warmup_frames if detector.warmup_frames is not None else len(s.rows))
        truth = [] if s.change is None else [s.change]
        changes += len(truth)
        pairs = match(truth, [e.frame for e in events], MARGIN + 1)  # match() counts strictly within
        tp += len(pairs)
        fp += len(events) - len(pairs)
        delays += [events[i].detected_at - t for t, i in pairs]
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / changes if changes else math.nan
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    d = np.array(delays, float)
    return {"series": len(series), "changes": changes, "detected": tp + fp, "true_positives": tp,
            "false_alarms": fp, "precision": _r(precision), "recall": _r(recall), "f1": _r(f1),
            "delay_frames_median": _r(float(np.median(d))) if d.size else None,
            "delay_frames_max": int(d.max()) if d.size else None,
            "detected_within_5_frames": int((d <= 5).sum()),
            "delay_min_median": _r(float(np.median(d)) * INTERVAL_S / 60) if d.size else None,
            "warmup_frames": int(np.median(warmups)) if warmups else None}


def _r(x: float) -> float | None:
    return None if not math.isfinite(x) else round(x, 3)


def settings(reference: Path) -> dict[str, ChangepointConfig]:
    return {
        "default (warmup 50 frames)": ChangepointConfig(),
        "warmup_s 400, min_segment_s 100, 1 false alarm/hour": ChangepointConfig(
            warmup_s=400, false_alarms_per_hour=1.0, windowed=WindowedConfig(min_segment_s=100)),
        "reference run (60 frames): 5-frame warm-up, level baseline online": ChangepointConfig(reference=str(reference)),
        "reference run, online.trend: true": ChangepointConfig(reference=str(reference), online=OnlineConfig(trend=True)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=20, help="series per length")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(44)
    sets: dict[str, list[SlowSeries]] = {}
    for n in (40, 60, 80):
        sets[f"{n} frames, one change"] = [make_series(1000 * n + k, n, int(rng.integers(10, n - 10)))
                                           for k in range(args.series)]
    sets["60 frames, change 1-3 frames after warm-up 5"] = [make_series(7000 + k, 60, int(rng.integers(6, 9)))
                                                            for k in range(args.series)]
    sets["60 frames, no change"] = [make_series(9000 + k, 60, None) for k in range(args.series)]
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "reference.jsonl"
        write_reference(ref, seed=4242)
        for name, config in settings(ref).items():
            for label, series in sets.items():
                row = {"setting": name, "set": label, **run(config, series)}
                out.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
