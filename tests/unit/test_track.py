"""Tracking on simulated runs with known identities (growth, births, deaths, stage drift, missed
detections): IDF1 by motmetrics, identity switches at crossings, births/deaths, growth, drift."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from wirewatch.bench.track_runs import SimFrame, simulate_run
from wirewatch.stats import measure
from wirewatch.track import TrackConfig, Tracker, TrackingMeasurer
from wirewatch.types import FrameStats

mm = pytest.importorskip("motmetrics")


def _track(run: list[SimFrame], config: TrackConfig | None = None) -> tuple[list[FrameStats], list[dict[int, int]]]:
    """Runs the daemon's path (measure, then the tracking measurer); per frame: true id -> track id."""
    measurer = TrackingMeasurer(measure, config or TrackConfig(enabled=True))
    stats, assigned = [], []
    for f in run:
        st = measurer(f.masks, f.image, frame_id=f.index, time=f.time)
        stats.append(st)
        rows = np.asarray(st.particles["mask_index"], dtype=int)
        assigned.append(dict(zip(f.ids[rows].tolist(), np.asarray(st.particles["track_id"]).tolist(), strict=True)))
    return stats, assigned


def _idf1(run: list[SimFrame], stats: list[FrameStats]) -> float:
    acc = mm.MOTAccumulator(auto_id=True)
    for f, st in zip(run, stats, strict=True):
        gt = np.array([[m.nonzero()[1].mean() + 0.5, m.nonzero()[0].mean() + 0.5] for m in f.truth_masks]).reshape(-1, 2)
        hyp = np.stack([st.particles["centroid_x"], st.particles["centroid_y"]], axis=1).reshape(-1, 2)
        acc.update(f.truth_ids.tolist(), np.asarray(st.particles["track_id"]).tolist(),
                   mm.distances.norm2squared_matrix(gt, hyp, max_d2=25.0))
    summary = mm.metrics.create().compute(acc, metrics=["idf1"], name="run")
    return float(summary["idf1"].iloc[0])


WINDOW = 5  # frames after a crossing starts in which an identity change counts as a switch at it


def _overlapping_pairs(f: SimFrame) -> set[tuple[int, int]]:
    """Pairs of true wires whose masks share a pixel (only pixels covered twice are looked at)."""
    shared = f.truth_masks.sum(axis=0) >= 2
    owners = f.truth_masks[:, shared]  # (wires, shared pixels)
    pairs = set()
    for column in np.unique(owners, axis=1).T:
        ids = sorted(f.truth_ids[column].tolist())
        pairs.update((a, b) for k, a in enumerate(ids) for b in ids[k + 1:])
    return pairs


def _crossings(run: list[SimFrame], assigned: list[dict[int, int]]) -> tuple[int, int]:
    """(crossing events, events with an identity switch). An event: two wires seen apart in one frame
    overlap in the next; a switch: either wire's track id in the next WINDOW frames (where detected)
    differs from its id before the crossing."""
    overlapping = [_overlapping_pairs(f) for f in run]
    events = switches = 0
    for t in range(1, len(run)):
        for pair in overlapping[t] - overlapping[t - 1]:
            if not all(w in assigned[t - 1] for w in pair):
                continue  # not both seen apart just before (born on top of each other, or missed)
            events += 1
            window = assigned[t:t + WINDOW]
            if any(w in a and a[w] != assigned[t - 1][w] for w in pair for a in window):
                switches += 1
    return events, switches


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_identities_survive_growth_births_deaths_drift_and_crossings(seed: int) -> None:
    run = simulate_run(frames=60, size=256, wires=30, births_per_frame=0.4, death_prob=0.01, drift_px=1.5,
                       miss_prob=0.02, seed=seed)
    stats, assigned = _track(run)
    idf1 = _idf1(run, stats)
    events, switches = _crossings(run, assigned)
    assert idf1 >= 0.9, idf1
    assert events >= 15  # the run really has crossings
    assert switches <= 0.02 * events, (switches, events)


@pytest.mark.slow
def test_switch_rate_pooled_over_runs_with_fast_growth_and_strong_drift() -> None:
    """The long variant: four harder runs (2.5 px/frame growth, 3 px/frame drift, 3 % missed)."""
    events = switches = 0
    idf1s = []
    for seed in range(4):
        run = simulate_run(frames=50, size=256, wires=40, births_per_frame=0.6, growth_px_per_frame=(0.5, 2.5),
                           drift_px=3.0, miss_prob=0.03, seed=100 + seed)
        stats, assigned = _track(run)
        idf1s.append(_idf1(run, stats))
        e, s = _crossings(run, assigned)
        events, switches = events + e, switches + s
    assert min(idf1s) >= 0.9, idf1s
    assert events >= 60 and switches <= 0.02 * events, (switches, events)


def test_births_deaths_growth_and_drift_match_the_truth() -> None:
    run = simulate_run(frames=60, size=256, wires=25, births_per_frame=0.5, death_prob=0.02, drift_px=2.0,
                       growth_px_per_frame=(1.0, 1.0), miss_prob=0.0, frame_interval_s=5.0, seed=7)
    stats, _ = _track(run)
    true_births = sum(len(set(f.truth_ids) - set(p.truth_ids)) for p, f in itertools.pairwise(run))
    true_deaths = sum(len(set(p.truth_ids) - set(f.truth_ids)) for p, f in itertools.pairwise(run[:-2]))  # reported 2 frames late
    births = sum(s.aggregates["births"] for s in stats)
    deaths = sum(s.aggregates["deaths"] for s in stats)
    assert stats[0].aggregates["births"] == 0  # the first frame's particles start the tracks
    assert abs(births - true_births) <= max(2, 0.1 * true_births), (births, true_births)
    assert abs(deaths - true_deaths) <= max(2, 0.15 * true_deaths), (deaths, true_deaths)
    # every wire grows 1 px per frame (its rotated-rectangle length, so the median is close to 1)
    growth = np.array([s.aggregates["growth_px_per_frame_median"] for s in stats[1:]])
    assert np.nanmedian(growth) == pytest.approx(1.0, abs=0.15)
    per_s = np.array([s.aggregates["growth_px_per_s_median"] for s in stats[1:]])
    assert np.nanmedian(per_s) == pytest.approx(0.2, abs=0.03)
    assert math.isnan(stats[0].aggregates["growth_px_per_frame_median"])
    # drift: the estimated frame-to-frame shift against the simulated one
    err = [math.hypot(s.aggregates["drift_x_px"] - (f.drift[0] - p.drift[0]),
                      s.aggregates["drift_y_px"] - (f.drift[1] - p.drift[1]))
           for (p, f), s in zip(itertools.pairwise(run), stats[1:], strict=True)]
    assert max(err) < 0.75, max(err)


def test_drift_refinement_at_full_resolution_is_finer() -> None:
    from wirewatch.track.drift import DriftEstimator

    run = simulate_run(frames=25, size=512, wires=60, drift_px=2.0, seed=4)
    errors = {}
    for refine in (False, True):
        est = DriftEstimator(refine=refine)
        est.shift(run[0].image)
        errors[refine] = [math.hypot(dx - (f.drift[0] - p.drift[0]), dy - (f.drift[1] - p.drift[1]))
                          for p, f in itertools.pairwise(run) for dx, dy in [est.shift(f.image)]]
    assert np.mean(errors[True]) < 0.3 and max(errors[True]) < 0.75, errors[True]
    assert np.mean(errors[False]) < 1.0 and max(errors[False]) < 1.5, errors[False]
    assert np.mean(errors[True]) < np.mean(errors[False])


def test_without_drift_compensation_identities_break() -> None:
    """The drift term earns its place: with 4 px/frame drift and no compensation IDF1 falls."""
    run = simulate_run(frames=40, size=256, wires=30, drift_px=4.0, miss_prob=0.0, seed=5)
    with_drift = _idf1(run, _track(run)[0])
    without = _idf1(run, _track(run, TrackConfig(enabled=True, drift=False, max_distance_px=3.0))[0])
    assert with_drift >= 0.9 and without < with_drift - 0.05, (with_drift, without)


def test_tracker_basics_ids_nm_growth_and_reset() -> None:
    masks = np.zeros((2, 64, 64), bool)
    masks[0, 10:14, 5:30] = True
    masks[1, 40:44, 5:20] = True
    tracker = Tracker(TrackConfig(enabled=True, drift=False))
    st = measure(masks, pixel_size_nm=2.0)
    first = tracker.update(masks, st.particles, time=0.0)
    grown = masks.copy()
    grown[0, 10:14, 30:33] = True  # +3 px
    second = tracker.update(grown, measure(grown, pixel_size_nm=2.0).particles, time=2.0)
    assert first.track_ids.tolist() == second.track_ids.tolist() == [1, 2]
    assert second.aggregates["growth_px_per_frame_median"] == pytest.approx(1.5)  # median of 3 and 0
    assert second.aggregates["growth_nm_per_s_median"] == pytest.approx(1.5)  # (6 nm and 0) / 2 s
    tracker.reset()
    third = tracker.update(masks, st.particles, time=4.0)
    assert third.track_ids.tolist() == [3, 4] and third.births == 0  # ids never reused; a new series
    empty = tracker.update(np.zeros((0, 64, 64), bool), measure(np.zeros((0, 64, 64), bool)).particles)
    assert empty.track_ids.size == 0 and empty.deaths == 0
