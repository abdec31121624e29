"""Benchmark body: ``measure`` on a synthetic frame of straight rods (target: <= 5 ms for 100 on 512 x 512)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def rod_frame(size: int, particles: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(masks (N, size, size) bool, image (size, size) float32) of random rods like the synthetic data.

    Lengths 20-130 px and widths 3-9 px at 512 px (scaled with ``size``), overlaps allowed.
    """
    import cv2

    rng = np.random.default_rng(seed)
    scale = size / 512
    masks = np.zeros((particles, size, size), bool)
    canvas = np.zeros((size, size), np.uint8)
    for i in range(particles):
        canvas[:] = 0
        length = rng.uniform(20, 130) * scale
        width = max(1, round(rng.uniform(3, 9) * scale))
        angle = rng.uniform(0, np.pi)
        cx, cy = rng.uniform(0, size, 2)
        dx, dy = 0.5 * length * np.cos(angle), 0.5 * length * np.sin(angle)
        cv2.line(canvas, (round(cx - dx), round(cy - dy)), (round(cx + dx), round(cy + dy)), 1, width)
        masks[i] = canvas > 0
    image = masks.sum(axis=0, dtype=np.float32)
    image /= max(float(image.max()), 1.0)
    return masks, image


def run(size: int = 512, particles: int = 100, repeats: int = 50, seed: int = 0,
        pixel_size_nm: float | None = 10.0, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Time ``measure(masks, image, pixel_size_nm=...)``: wall-clock ms (median, p90, min), the
    thread's CPU ms (median), and the frame's facts."""
    from wirewatch.stats import measure

    masks, image = rod_frame(size, particles, seed)
    measure(masks, image, pixel_size_nm=pixel_size_nm)  # warm-up: imports, caches
    times = []
    cpu_times = []
    for i in range(repeats):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        stats = measure(masks, image, pixel_size_nm=pixel_size_nm)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.thread_time() - c0)
        if progress is not None:
            progress(i + 1, repeats)
    ms = np.array(times) * 1e3
    cpu_ms = np.array(cpu_times) * 1e3
    return {
        "size": size,
        "particles": int(stats.aggregates["particle_count"]),
        "mask_pixels": int(masks.sum()),
        "coverage_fraction": float(stats.aggregates["coverage_fraction"]),
        "repeats": repeats,
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "min_ms": float(ms.min()),
        # CPU time of this thread: what one core spends, less inflated than wall time on a busy machine.
        "cpu_median_ms": float(np.median(cpu_ms)),
        "target_ms": 5.0,
    }
