"""Windowed offline search with ruptures, re-run every few frames on the last W frames.

A break is reported once *confirmed*: found (within a tolerance) in
``confirmations`` consecutive runs. ruptures' ``min_size`` keeps every break at
least ``min_segment`` samples from the window's end; a break found right at that
boundary is a change younger than that whose place is not known yet, so it is
not counted until it is clear of it. A single noisy frame or a spike cannot make
a change.

With the piecewise-linear cost a young step is ambiguous: a dozen samples after it
are fitted about as well by a ramp starting earlier as by a step, so the search
may place the break too early. A break is therefore only confirmed once
``LINEAR_AGE`` x ``min_segment`` samples follow it (the online test gives the early
warning for steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ruptures as rpt

from wirewatch.changepoint.base import Candidate, Snapshot
from wirewatch.changepoint.config import WindowedConfig
from wirewatch.changepoint.costs import make_cost

ALGORITHMS = {"binseg": rpt.Binseg, "pelt": rpt.Pelt, "window": rpt.Window}
LINEAR_AGE = 3  # with the linear cost, samples after a break before it counts, in min_segment


@dataclass
class _Tracked:
    index: int
    seen: int
    reported: bool = False


class WindowedSearch:
    """ruptures Binseg / Pelt / Window over the snapshot, with confirmation across runs."""

    def __init__(self, config: WindowedConfig, penalty: float) -> None:
        self.config = config
        self.penalty = penalty
        self.name: str = config.method
        # a real break stays put between runs; one tracking the window's end moves by `every`
        self._tolerance = max(1, min(2 * config.jump, config.every - 1))
        self._min_age = config.min_segment + config.jump + 1
        if config.cost == "linear":
            self._min_age = max(self._min_age, LINEAR_AGE * config.min_segment)
        self._tracked: list[_Tracked] = []

    def reset(self) -> None:
        self._tracked = []

    def _algorithm(self) -> rpt.base.BaseEstimator:
        cfg = self.config
        kwargs: dict = {"custom_cost": make_cost(cfg.cost), "min_size": cfg.min_segment, "jump": cfg.jump}
        if cfg.method == "window":
            kwargs["width"] = cfg.width
        return ALGORITHMS[cfg.method](**kwargs)

    def breaks(self, z: np.ndarray) -> list[tuple[int, int, int]]:
        """(previous break, break, next break) row positions found in ``z``, refined to one sample."""
        cfg = self.config
        if len(z) < 2 * cfg.min_segment + 1:
            return []
        algo = self._algorithm().fit(z)
        found = [int(b) for b in algo.predict(pen=self.penalty)]  # last entry is len(z)
        bounds = [0, *found]
        out = []
        for i in range(1, len(bounds) - 1):
            prev, bkp, nxt = bounds[i - 1], bounds[i], bounds[i + 1]
            out.append((prev, self._refine(algo.cost, prev, bkp, nxt), nxt))
        return out

    def _refine(self, cost: rpt.base.BaseCost, prev: int, bkp: int, nxt: int) -> int:
        """Best single split near ``bkp`` (the search only tries every ``jump``-th position)."""
        if self.config.jump == 1:
            return bkp
        lo = max(prev + self.config.min_segment, bkp - self.config.jump + 1)
        hi = min(nxt - self.config.min_segment, bkp + self.config.jump - 1)
        if hi <= lo:
            return bkp
        best = min(range(lo, hi + 1), key=lambda t: cost.error(prev, t) + cost.error(t, nxt))
        return int(best)

    def run(self, snapshot: Snapshot) -> list[Candidate]:
        found = self.breaks(snapshot.z)
        tracked: list[_Tracked] = []
        confirmed: list[Candidate] = []
        n = len(snapshot.z)
        for prev, bkp, nxt in found:
            if n - bkp < self._min_age:
                # pinned to the min_segment boundary: the change is younger than min_segment and its
                # place is not known yet (ruptures cannot put it nearer the end); wait for later runs
                continue
            index = snapshot.start + bkp
            match = min((t for t in self._tracked if abs(t.index - index) <= self._tolerance),
                        key=lambda t: abs(t.index - index), default=None)
            item = _Tracked(index, 1) if match is None else _Tracked(index, match.seen + 1, match.reported)
            if match is not None:
                self._tracked.remove(match)
            if item.seen >= self.config.confirmations and not item.reported:
                item.reported = True
                confirmed.append(Candidate(index=index, detector=self.name, segment_start=snapshot.start + prev,
                                           segment_end=snapshot.start + nxt))
            tracked.append(item)
        self._tracked = tracked  # unmatched ones lapse: confirmation needs consecutive runs
        return confirmed
