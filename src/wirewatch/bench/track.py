"""Benchmark body: ``Tracker.update`` per frame at ~100 particles on 512 x 512 (target: <= 2 ms).

A simulated run (``wirewatch.bench.track_runs``: growth, births, deaths, drift, missed detections) is
measured once (``measure`` is not timed: it is the stats stage's cost, ``bench stats``); then the
tracker runs over it ``passes`` times, each pass from a fresh tracker, and the process CPU time of
every ``update`` after a pass's first frame is recorded, with and without drift compensation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

TARGET_CPU_MS = 2.0


def run(*, size: int = 512, particles: int = 100, frames: int = 40, passes: int = 3, seed: int = 0,
        progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    from wirewatch.bench.stats import machine_facts
    from wirewatch.bench.track_runs import simulate_run
    from wirewatch.stats import measure
    from wirewatch.track import TrackConfig, Tracker

    sim = simulate_run(frames=frames, size=size, wires=particles, births_per_frame=0.5, death_prob=0.005,
                       length_px=(20.0, 90.0), drift_px=1.5, seed=seed)
    tables = [measure(f.masks, f.image).particles for f in sim]
    load_before = os.getloadavg()[0]
    result: dict[str, Any] = {"size": size, "frames": frames, "passes": passes,
                              "particles_mean": float(np.mean([len(f.ids) for f in sim])),
                              "target_ms": TARGET_CPU_MS, "machine": machine_facts()}
    for label, drift in (("drift", True), ("no_drift", False)):
        cpu: list[float] = []
        wall: list[float] = []
        for _ in range(passes):
            tracker = Tracker(TrackConfig(enabled=True, drift=drift))
            for i, (f, table) in enumerate(zip(sim, tables, strict=True)):
                c0, w0 = time.process_time(), time.perf_counter()
                tracker.update(f.masks, table, image=f.image, time=f.time)
                if i:
                    cpu.append(time.process_time() - c0)
                    wall.append(time.perf_counter() - w0)
            if progress is not None:
                progress(1)
        c, w = np.array(cpu) * 1e3, np.array(wall) * 1e3
        result[label] = {"cpu_median_ms": float(np.median(c)), "cpu_p90_ms": float(np.percentile(c, 90)),
                         "cpu_min_ms": float(c.min()), "wall_median_ms": float(np.median(w)),
                         "wall_min_ms": float(w.min()), "calls": int(c.size)}
    result["meets_target"] = result["drift"]["cpu_median_ms"] <= TARGET_CPU_MS
    result["load_average_1min"] = [load_before, os.getloadavg()[0]]
    return result
