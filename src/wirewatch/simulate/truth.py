"""What the simulator drew in each frame, in the daemon's own statistic names.

``frame_truth(sample)`` measures the synthesiser's true instance masks (every wire's full
pixel-centre footprint, before blur and noise) with the same ``wirewatch.stats`` code the daemon
runs on the segmenter's masks, so a difference between the two series is the segmenter's, not a
difference of definitions (border-clipped wires, tilt, overlaps are treated alike). The drawn
parameters are kept beside them (``*_drawn_mean``: the generator's own width and projected
length, whole wires, clipped or not).

``agreement(measured, truth)`` compares the daemon's per-frame aggregates with these, frame by
frame, for the demo's summary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

# The statistics recorded per frame: the daemon's aggregate names (docs/CONTRACTS.md).
TRUTH_STATISTICS: tuple[str, ...] = ("particle_count", "length_px_mean", "width_px_mean", "coverage_fraction",
                                     "orientation_order")


def frame_truth(sample: Any) -> dict[str, float]:
    """The truth of one ``wirewatch.synth.Sample``: ``TRUTH_STATISTICS`` measured on its true masks,
    plus ``width_drawn_mean`` / ``length_drawn_mean`` (generator parameters, NaN without wires)."""
    from wirewatch.stats.aggregates import frame_aggregates
    from wirewatch.stats.descriptors import particle_descriptors

    table = particle_descriptors(sample.masks)
    aggregates = frame_aggregates(table)
    out = {name: float(aggregates[name]) for name in TRUTH_STATISTICS}
    wires = sample.wires
    out["width_drawn_mean"] = float(np.mean([w.width for w in wires])) if wires else math.nan
    out["length_drawn_mean"] = float(np.mean([w.projected_length for w in wires])) if wires else math.nan
    return out


def truth_document(scenario: Any, frames: int, per_frame: Mapping[int, Mapping[str, float]]) -> dict[str, Any]:
    """``truth.json``: the scenario's change points (``Scenario.truth``) plus ``statistics`` (the names
    recorded) and ``per_frame``: one ``{"frame": i, <statistic>: value, ...}`` per frame sent, in order."""
    doc = scenario.truth(frames)
    doc["statistics"] = list(TRUTH_STATISTICS)
    doc["per_frame"] = [{"frame": i, **per_frame[i]} for i in sorted(per_frame)]
    return doc


def agreement(measured: Mapping[int, Mapping[str, float]], truth: Mapping[int, Mapping[str, float]],
              ) -> dict[str, float]:
    """Frame-by-frame agreement over the frames present in both (measured aggregates vs truth).

    ``count_rel_error_mean``: mean of |measured - true| / true particle count (frames with true
    count 0 skipped); ``count_bias``: mean signed relative error; ``width_error_px_mean`` and
    ``length_error_px_mean``: mean |measured - true| of the frame means; ``*_bias_px`` the signed
    means; ``coverage_error_mean`` and ``order_error_mean``: mean absolute differences; ``frames``:
    how many frames were compared.
    """
    frames = sorted(set(measured) & set(truth))
    pairs: dict[str, list[float]] = {k: [] for k in ("count", "width", "length", "coverage", "order")}
    names = {"width": "width_px_mean", "length": "length_px_mean", "coverage": "coverage_fraction",
             "order": "orientation_order"}
    for frame in frames:
        m, t = measured[frame], truth[frame]
        true_count = t.get("particle_count", math.nan)
        if true_count > 0:
            pairs["count"].append((m.get("particle_count", math.nan) - true_count) / true_count)
        for key, name in names.items():
            pairs[key].append(m.get(name, math.nan) - t.get(name, math.nan))
    return {
        "frames": float(len(frames)),
        "count_rel_error_mean": _mean_abs(pairs["count"]),
        "count_bias": _mean(pairs["count"]),
        "width_error_px_mean": _mean_abs(pairs["width"]),
        "width_bias_px": _mean(pairs["width"]),
        "length_error_px_mean": _mean_abs(pairs["length"]),
        "length_bias_px": _mean(pairs["length"]),
        "coverage_error_mean": _mean_abs(pairs["coverage"]),
        "order_error_mean": _mean_abs(pairs["order"]),
    }


def _finite(values: Iterable[float]) -> np.ndarray:
    v = np.asarray(list(values), np.float64)
    return v[np.isfinite(v)]


def _mean(values: Iterable[float]) -> float:
    v = _finite(values)
    return float(v.mean()) if v.size else math.nan


def _mean_abs(values: Iterable[float]) -> float:
    v = _finite(values)
    return float(np.abs(v).mean()) if v.size else math.nan
