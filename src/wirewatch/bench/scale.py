"""Benchmark body: the cost ``segment.options.scale: auto`` adds to every frame (the wire-width estimate),
printed by ``wirewatch bench model``. Here, not in ``wirewatch.segment.scale``, because it draws its frames
with the synthesiser, which the runtime never imports."""

from __future__ import annotations

import time

import numpy as np

from wirewatch.segment.scale import estimate_wire_width
from wirewatch.synth import generate, preset_config


def bench_estimate(size: int = 512, frames: int = 20, seed: int = 3799) -> dict[str, float]:
    """Milliseconds per frame of ``estimate_wire_width`` (median, p90) on default-preset frames of ``size`` px:
    the cost ``scale: auto`` adds to every frame (``wirewatch bench model`` prints it)."""
    cfg = preset_config("ptychography", size)
    images = [generate(cfg, seed + i).image.astype(np.float32) / np.float32(255.0) for i in range(min(frames, 5))]
    estimate_wire_width(images[0])  # warm-up
    times, cpu = [], []
    for i in range(frames):
        t0, c0 = time.perf_counter(), time.process_time()
        estimate_wire_width(images[i % len(images)])
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)  # CPU time of all threads: steadier on a shared host
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
            "cpu_median_ms": float(np.median(cpu)), "size": float(size)}
