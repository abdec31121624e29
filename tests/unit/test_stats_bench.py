"""``wirewatch bench stats``: what it reports (the timing itself is a benchmark, not a test)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from wirewatch.bench.stats import TARGET_CPU_MS, rod_frame, run


def test_run_reports_cpu_and_wall_figures_and_restores_opencv_threads() -> None:
    threads = cv2.getNumThreads()
    result = run(size=128, particles=12, repeats=3)
    assert cv2.getNumThreads() == threads
    assert result["particles"] == 12 and result["repeats"] == 3
    masks, _ = rod_frame(128, 12)
    assert result["mask_pixels"] == int(masks.sum())
    for key in ("cpu_median_ms", "cpu_p90_ms", "cpu_min_ms", "thread_cpu_median_ms", "median_ms", "p90_ms", "min_ms"):
        assert result[key] > 0, key
    assert result["cpu_min_ms"] <= result["cpu_median_ms"] <= result["cpu_p90_ms"]
    assert result["min_ms"] <= result["median_ms"] <= result["p90_ms"]
    assert result["target_ms"] == TARGET_CPU_MS == 5.0
    assert result["target_applies_to"] == "cpu_median_ms"
    assert result["meets_target"] == (result["cpu_median_ms"] <= 5.0)
    assert len(result["load_average_1min"]) == 2
    assert set(result["machine"]) == {"cpu", "python", "numpy", "opencv"} and result["machine"]["numpy"] == np.__version__


def test_rod_frame_is_the_documented_workload() -> None:
    masks, image = rod_frame(512, 100)
    assert masks.shape == (100, 512, 512) and masks.dtype == bool
    assert masks.any(axis=(1, 2)).all()
    assert 50_000 < masks.sum() < 70_000  # about 58,000 mask pixels, 20 % coverage
    assert image.shape == (512, 512) and image.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(rod_frame(512, 100)[0], masks)  # seeded: the same frame every run
