"""The streaming change detector: robust scaling, windowed search + online test, merged events.

``StreamingDetector.update(frame_id, stats)`` takes one frame's statistics and
returns the change points it reports now (usually none). Flow per frame:

1. the watched statistics become a row (missing / non-finite -> NaN); a frame
   with none of them is skipped (counted in ``skipped_frames``);
2. the first ``warmup`` usable frames only set the robust location and scale;
   every ``calibration.every`` frames the thresholds are re-fitted to the
   stream's own residuals (``calibrate.noise_inflation``);
3. the online test (CUSUM / Page-Hinkley / BOCPD) sees every frame (early warning);
4. every ``windowed.every`` frames the ruptures search runs on the last
   ``windowed.window`` frames and the robust scale is refreshed;
5. each candidate is located, described (statistics involved, kind: level,
   slope or variance against a line on each side, levels, effect size,
   severity, the threshold in use) and reported unless a change was already reported within
   ``merge_margin`` frames of it (online and windowed finding the same change,
   or successive windows, report it once).

``reset()`` starts over (series boundary); a frame id going backwards does too.

Slow streams (``warmup_s``, ``windowed.min_segment_s``, ``false_alarms_per_hour``; ``update(..., time=)``):
the warm-up ends at ``warmup`` frames or ``warmup_s`` seconds, whichever comes first (at least
``MIN_WARMUP`` frames); the settings given in seconds then become frames at the warm-up's median frame
interval and the thresholds are set for them. With a ``reference`` record the noise scale comes from it
(``reference_scale``) and the warm-up needs only ``reference_warmup`` frames, for the level.
"""

from __future__ import annotations

import itertools
import logging
import math
import statistics
import warnings
from collections import deque
from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from wirewatch.changepoint.base import Candidate, OnlineTest, Snapshot, WindowSearch
from wirewatch.changepoint.bocpd import BocpdParams, BocpdTest, bocpd_threshold
from wirewatch.changepoint.calibrate import cusum_threshold, noise_inflation, windowed_penalty
from wirewatch.changepoint.classify import best_split as _best_split
from wirewatch.changepoint.classify import break_evidence, curve_t, effect_of, kind_of, residual_scale
from wirewatch.changepoint.config import ChangepointConfig
from wirewatch.changepoint.online import ONLINE_TESTS
from wirewatch.changepoint.robust import fill_gaps, hampel, robust_location, robust_scale
from wirewatch.changepoint.seasonal import SeasonalFilter, detrended
from wirewatch.changepoint.windowed import WindowedSearch
from wirewatch.types import ChangePoint, Severity

log = logging.getLogger(__name__)

SEGMENT_FOR_SCALE = 16  # samples after a change before the noise scale is re-learnt from them
MAX_ABS_VALUE = 1e100  # beyond any real statistic; larger values are corrupt and treated as missing
SCALE_RELATIVE_SE = 0.9  # relative standard error of robust_scale from n samples is ~0.9 / sqrt(n)
ONLINE_HOLDOFF = 32  # samples after a change the online test only learns its new baseline
ONLINE_CONFIRM_T = 4.0  # an online alarm is reported when a line-to-line t statistic of its statistics reaches this
ONLINE_MIN_AFTER = 3  # samples after an online alarm's located change before it is judged
AFTER_CHANGE_MARGIN = 3  # samples after a reported change the windowed search leaves out (its place may be off)
SCALE_MEMORY_WINDOWS = 4  # the averaged scale remembers about this many windows of frames
PRIOR_PATIENCE = 8  # with a reference run, an unconfirmed online alarm is asked again until this many samples
MIN_SHORT_WARMUP = 10  # a short record's warm-up (expect_frames) is never shorter
MEAN_COSTS = ("linear", "l2")  # windowed costs that look for changes of level or slope only
MIN_WARMUP = 5  # a time-limited warm-up still needs this many frames (a robust scale from fewer is noise)


class StreamingDetector:
    """Multivariate change detection over a stream of per-frame statistics."""

    def __init__(self, config: ChangepointConfig, *, windowed: WindowSearch | None,
                 online: OnlineTest | None, prior_scale: np.ndarray | None = None, prior_samples: int = 0) -> None:
        if windowed is None and online is None:
            raise ValueError("a StreamingDetector needs a windowed search, an online test, or both")
        self.config = config
        self.series_config = config  # the config in force this series (time settings turned into frames)
        self.prior_scale = prior_scale  # per statistic, from a reference run (NaN: not in it); None: no prior
        self.prior_samples = prior_samples
        self._parts = (windowed, online)  # as built: a series without time settings uses them
        self.statistics: tuple[str, ...] = tuple(config.stats)
        self.windowed = windowed
        self.online = online
        # trend-aware: lines, not constants, on each side of a change (windowed cost, online baseline)
        self.linear = config.windowed.cost == "linear" if windowed is not None else config.online.trend
        # issue 38: breaks are judged against lines (t statistics, confirmation) with a trend-aware search, or
        # when every candidate is confirmed and the online test follows a trend (an l2 search proposes steps
        # with a constant-mean's power, lines on each side decide)
        self.judge_lines = self.linear or (config.confirm_windowed and config.online.enabled and config.online.trend
                                           and config.online.method == "cusum")
        self.base_penalty = windowed.penalty if windowed is not None else math.nan
        self.online_threshold = float(getattr(online, "threshold", math.nan))
        self._capacity = config.windowed.window
        every = config.windowed.every
        self._scale_every = every * max(1, config.windowed.window // (4 * every))  # samples between refreshes
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything: the next frames are a new series (warm-up again)."""
        self._frames: deque[int] = deque(maxlen=self._capacity)
        self._rows: deque[np.ndarray] = deque(maxlen=self._capacity)
        self._count = 0  # usable samples since reset
        self._warmup_end: int | None = None  # usable samples when the warm-up ended
        self._times: list[float] = []  # arrival times of the warm-up's usable frames (slow-stream settings)
        if self.series_config is not self.config:  # the last series turned seconds into frames: start over
            self.series_config = self.config
            self._install(*self._parts)
        self._last_frame: int | None = None
        self._location = np.zeros(len(self.statistics))
        self._scale = np.ones(len(self.statistics))
        self._variance = np.ones(len(self.statistics))
        self._variance_runs = 0  # estimates averaged into _variance
        self._scale_samples = self.config.warmup  # samples behind _variance
        self._after_change = False  # within a window after a reported change (conservative scale)
        self._snapshot: Snapshot | None = None
        self._reported: list[tuple[int, int]] = []  # (sample index, frame id) of reported changes
        self.skipped_frames = 0
        self._inflations: deque[float] = deque(maxlen=self.config.calibration.memory)
        self._evidence_t = math.inf
        self._relative_effect = math.inf  # the last described event's effect over its statistic's spread
        self._curve_t = math.inf  # how much better lines on each side fit than a quadratic (classify.curve_t)
        self._short_warmup: int | None = None  # a shorter warm-up for a short record (expect_frames)
        seasonal = self.config.seasonal
        self._season = SeasonalFilter(len(self.statistics), max_period=seasonal.max_period,
                                      min_acf=seasonal.min_acf) if seasonal.enabled else None
        self.inflation = 1.0  # how much noisier than independent noise the stream's residuals are (>= 1)
        self._rng = np.random.default_rng(0)
        if self.windowed is not None:
            self.windowed.reset()
            self.windowed.penalty = self.base_penalty
        if self.online is not None:
            self.online.start(self._location)

    def expect_frames(self, n_frames: int) -> None:
        """Offline, the series' length is known (call after ``reset``): a record shorter than
        ``warmup / short_record_warmup`` frames warms up on that fraction of its length (at least
        ``MIN_SHORT_WARMUP`` frames), so a yearly record of a few dozen points is not all warm-up."""
        fraction = self.config.short_record_warmup
        if fraction > 0 and n_frames * fraction < self.config.warmup:
            self._short_warmup = max(MIN_SHORT_WARMUP, int(n_frames * fraction))

    @property
    def warming_up(self) -> bool:
        return self._warmup_end is None

    @property
    def warmup_frames(self) -> int | None:
        """Usable frames the warm-up took this series (None while it lasts)."""
        return self._warmup_end

    def _warmup_done(self) -> bool:
        c = self.config
        if self.prior_scale is not None:
            return self._count >= min(c.warmup, c.reference_warmup)
        if self._count >= (self._short_warmup or c.warmup):
            return True
        timed = c.warmup_s is not None and len(self._times) >= 2 and self._times[-1] - self._times[0] >= c.warmup_s
        return timed and self._count >= MIN_WARMUP

    def _install(self, windowed: WindowSearch | None, online: OnlineTest | None) -> None:
        self.windowed, self.online = windowed, online
        self.base_penalty = windowed.penalty if windowed is not None else math.nan
        self.online_threshold = float(getattr(online, "threshold", math.nan))

    def _resolve_time_settings(self) -> None:
        """Turn the settings given in seconds into frames at the warm-up's median frame interval."""
        c = self.config
        if c.windowed.min_segment_s is None and c.false_alarms_per_hour is None:
            return
        steps = np.diff(np.array(self._times)) if len(self._times) >= 2 else np.array([])
        steps = steps[np.isfinite(steps) & (steps > 0)]
        if not steps.size:
            log.warning("changepoint: min_segment_s / false_alarms_per_hour need frame times; the frames "
                        "carry none, so the settings in frames are used")
            return
        interval = float(np.median(steps))
        update: dict[str, object] = {}
        if c.false_alarms_per_hour is not None:
            update["false_alarms_per_1000"] = min(100.0, c.false_alarms_per_hour * interval / 3.6)
        if c.windowed.min_segment_s is not None:
            frames = max(2, min(c.windowed.min_segment, math.ceil(c.windowed.min_segment_s / interval)))
            update["windowed"] = c.windowed.model_copy(update={"min_segment": frames})
        self.series_config = c.model_copy(update=update)
        log.info("changepoint: frame interval %.3g s; min segment %d frames, %.3g false alarms per 1000 frames",
                 interval, self.series_config.windowed.min_segment, self.series_config.false_alarms_per_1000)
        self._install(*build_parts(self.series_config))
        if self.online is not None:
            self.online.start(self._location)

    # -- input ------------------------------------------------------------------------------------------
    def _row(self, stats: Mapping[str, float]) -> np.ndarray:
        row = np.full(len(self.statistics), np.nan)
        for j, name in enumerate(self.statistics):
            value = stats.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue  # None (JSON null), strings and the like are missing values
            if math.isfinite(value) and abs(value) < MAX_ABS_VALUE:
                row[j] = float(value)
        return row

    def update(self, frame_id: int, stats: Mapping[str, float], time: float | None = None) -> list[ChangePoint]:
        """Feed one frame (``time``: its time in seconds, for the settings given in seconds); returns the
        change points reported at this frame."""
        if self._last_frame is not None and frame_id <= self._last_frame:
            log.info("frame id went back from %d to %d: new series, change detection restarts",
                     self._last_frame, frame_id)
            self.reset()
        self._last_frame = frame_id
        row = self._row(stats)
        if not np.isfinite(row).any():
            self.skipped_frames += 1
            return []
        index = self._count
        if self._season is not None and self._season.active:  # issue 38: a found periodic component is removed
            row = row - self._season.component(index)
        self._frames.append(int(frame_id))
        self._rows.append(row)
        self._count += 1
        self._snapshot = None
        if self._warmup_end is None:
            if time is not None and math.isfinite(time):
                self._times.append(float(time))
            if not self._warmup_done():
                return []
            self._warmup_end = self._count
        since = self._count - self._warmup_end
        if self._season is not None and since % self.config.calibration.every == 0:
            self._reseason()
        if since == 0:
            raw = np.array(self._rows)
            self._location = robust_location(raw)
            self._location = np.where(np.isfinite(self._location), self._location, 0.0)
            self._resolve_time_settings()
            scale = robust_scale(raw, self._location)
            self._variance, self._variance_runs, self._scale_samples = scale**2, 1, len(raw)
            prior = self.prior_scale
            if prior is not None:  # the reference run's scale, where it has the statistic
                known = np.isfinite(prior) & (prior > 0)
                scale = np.where(known, prior, scale)
                self._variance = scale**2
                self._scale_samples = max(len(raw), self.prior_samples)
                self._variance_runs = max(1, min(self._scale_samples // self._scale_every,
                                                 SCALE_MEMORY_WINDOWS * self.config.windowed.window // self._scale_every))
            self._scale = _upper_bound(scale, self._scale_samples)
            if self.online is not None:
                self.online.start(self._location)
                self.online.on_change(0, raw)  # its baseline (a line with trend) from the warm-up
                release = getattr(self.online, "release", None)
                if prior is not None and release is not None:
                    release()  # the scale is known: no hold-off after a short warm-up
        calibration = self.config.calibration
        if calibration.enabled and since % calibration.every == 0:
            self._calibrate()
        every = self.config.windowed.every
        if since > 0 and since % every == 0 and (self._after_change or since % self._scale_every == 0):
            self._refresh_scale()
        events: list[ChangePoint] = []
        if self.online is not None:
            candidate = self.online.update(index, row, self._scale * math.sqrt(self.inflation))
            if candidate is not None:
                events.extend(self._handle(self._locate(candidate)))
        if self.windowed is not None and since % every == 0:
            snap = self._take_snapshot()
            last = self._last_change_before(snap.end)
            if last is not None:  # what came before a reported change is explained; a few samples of margin
                snap = snap.since(last + AFTER_CHANGE_MARGIN)
            for candidate in self.windowed.run(snap):
                events.extend(self._handle(candidate))
        return events

    # -- helpers ----------------------------------------------------------------------------------------
    def _reseason(self) -> None:
        """Find or refine the periodic components (``seasonal.py``) on the window's rows less a line per
        segment between reported changes, and take the change out of the stored rows too."""
        assert self._season is not None
        raw = np.array(self._rows)
        start = self._count - len(raw)
        bounds = sorted({0, len(raw), *(i - start for i, _ in self._reported if start < i < self._count)})
        resid = detrended(raw, bounds)
        delta = self._season.refit(start, resid, raw - resid)
        if np.any(delta):
            for k in range(len(raw)):
                self._rows[k] = self._rows[k] - delta[k]
            self._snapshot = None

    def _refresh_scale(self) -> None:
        """Average the robust variance over runs (a 100-frame estimate alone wobbles by ~9 %).

        After a reported change the noise level may differ (e.g. a count doubles). Until a
        whole window follows the change, the scale is the larger of the pre-change average
        and the estimate from the samples since the change (from ``SEGMENT_FOR_SCALE`` of
        them): a scale too small raises false alarms, one too large only costs sensitivity
        for a while. Afterwards the average restarts from the new segment.
        """
        raw = np.array(self._rows)
        last = self._last_change_before(self._count)
        if last is not None:
            since_change = self._count - last
            if since_change < SEGMENT_FOR_SCALE:
                return
            raw = raw[-min(since_change, len(raw)):]
            if since_change < self.config.windowed.window:
                fresh = robust_scale(raw, self._location) ** 2
                self._scale = np.maximum(_upper_bound(np.sqrt(self._variance), self._scale_samples),
                                         _upper_bound(np.sqrt(fresh), since_change))
                return
            if self._after_change:
                self._after_change = False
                self._variance_runs = 0
        estimate = robust_scale(raw, self._location) ** 2
        max_runs = max(1, SCALE_MEMORY_WINDOWS * self.config.windowed.window // self._scale_every)
        self._variance_runs = min(self._variance_runs + 1, max_runs)
        self._variance = self._variance + (estimate - self._variance) / self._variance_runs
        since = self._count if last is None else self._count - last
        self._scale_samples = min(since, SCALE_MEMORY_WINDOWS * self.config.windowed.window)
        self._scale = _upper_bound(np.sqrt(self._variance), self._scale_samples)

    def _calibrate(self) -> None:
        """Re-fit the thresholds to the stream's own residuals (lines or means between reported changes)."""
        snap = self._take_snapshot()
        z = snap.z
        bounds = sorted({0, len(z), *(i - snap.start for i, _ in self._reported if snap.start < i < snap.end)})
        pieces = []
        for a, b in itertools.pairwise(bounds):
            seg = z[a:b]
            if len(seg) < 6:
                continue
            if self.judge_lines:
                t = np.arange(len(seg), dtype=float)
                coef = np.polynomial.polynomial.polyfit(t, seg, 1)
                pieces.append(seg - coef[0] - np.outer(t, coef[1]))
            else:
                pieces.append(seg - seg.mean(axis=0))
        if not pieces:
            return
        w = self.config.windowed
        ratio = noise_inflation(np.vstack(pieces), cost="linear" if self.linear else "l2", window=w.window,
                                min_size=w.min_segment, jump=w.jump, rng=self._rng)
        if ratio is None:
            return
        self._inflations.append(ratio)
        self.inflation = float(statistics.median(self._inflations))
        if self.windowed is not None:
            self.windowed.penalty = self.base_penalty * self.inflation

    def penalty_for(self, detector: str) -> float:
        """The decision threshold in use for events of ``detector``: the ruptures penalty (windowed
        search), or the online threshold in units of the statistics' robust sigma (CUSUM h times the
        noise inflation's square root; BOCPD: the posterior mass of a young run)."""
        if self.windowed is not None and detector == self.windowed.name:
            return float(self.windowed.penalty)
        if detector == "bocpd":
            return self.online_threshold
        return self.online_threshold * math.sqrt(self.inflation)

    def _take_snapshot(self) -> Snapshot:
        if self._snapshot is None:
            raw = np.array(self._rows)
            z = (raw - self._location) / self._scale
            # leading gaps take the window's median level (not the warm-up's: the level may have moved)
            if np.isnan(z).any():
                fallback = robust_location(z)
                z = fill_gaps(z, np.where(np.isfinite(fallback), fallback, 0.0))
            z = hampel(z, self.config.clip_z)
            self._snapshot = Snapshot(start=self._count - len(raw), frames=np.array(self._frames), raw=raw, z=z,
                                      location=self._location.copy(), scale=self._scale.copy())
        return self._snapshot

    def _last_change_before(self, index: int) -> int | None:
        before = [i for i, _ in self._reported if i < index]
        return max(before) if before else None

    def _locate(self, candidate: Candidate) -> Candidate:
        """Place an online alarm at the best single split since the last change (on its statistics)."""
        snap = self._take_snapshot()
        last = self._last_change_before(snap.end)
        start = snap.start if last is None else max(snap.start, last)
        cols = list(candidate.columns) or list(range(len(self.statistics)))
        z = snap.z[snap.rows(start, snap.end)][:, cols]
        split = _best_split(z, self.judge_lines)  # at least two samples before, one after (three with lines)
        if split is None:
            return candidate
        best = start + split
        return Candidate(index=best, detector=candidate.detector, columns=candidate.columns,
                         segment_start=start, segment_end=snap.end)

    def _handle(self, candidate: Candidate) -> list[ChangePoint]:
        snap = self._take_snapshot()
        index = min(max(candidate.index, snap.start + 1), snap.end - 1)
        frame = int(snap.frames[index - snap.start])
        online_alarm = self.online is not None and candidate.detector == self.online.name
        if online_alarm and self.judge_lines and snap.end - index < ONLINE_MIN_AFTER:
            # too young to tell a step from a pair of outliers (the outlier filter needs neighbours on both
            # sides): the test stays alarmed and asks again with the next samples
            return []
        duplicate = any(abs(frame - f) <= self.config.merge_margin for _, f in self._reported)
        if not duplicate:
            event = self._describe(snap, candidate, index, frame)
            if online_alarm and self.prior_scale is not None:
                self._evidence_t = max(self._evidence_t, self._level_t(snap, candidate, index))
            if (online_alarm and self.linear and self.prior_scale is not None and snap.end - index < PRIOR_PATIENCE
                    and self._evidence_t < ONLINE_CONFIRM_T):
                # the scale is the reference run's: a young alarm after a short warm-up (few samples before
                # it for a line) waits for more samples after it instead of re-learning its baseline
                return []
        if online_alarm or not duplicate:
            # the online test re-learns its baseline after the change (its own alarm or a reported one)
            assert self.online is not None or not online_alarm
            if self.online is not None:
                self.online.on_change(index, snap.raw[snap.rows(index, snap.end)])
        if duplicate:
            log.debug("%s change at frame %d merged with one already reported", candidate.detector, frame)
            return []
        confirm = online_alarm or self.config.confirm_windowed  # issue 38: windowed breaks too, by default
        small = self._relative_effect < self.config.min_relative_effect
        # issue 38: a bend that one quadratic through both sides fits about as well is a smooth curve's
        small = small or (event.kind in self.config.curve_kinds and self._curve_t < self.config.curve_t)
        # both measure a change of level or slope: a search for any change of distribution (cost normal, rbf:
        # a correlation flip leaves every mean where it was) is not judged by them
        small = small and (online_alarm or self.config.windowed.cost in MEAN_COSTS)
        if small or (confirm and self.judge_lines and self._evidence_t < ONLINE_CONFIRM_T):
            # against lines on each side (noise inflation included) the alarm does not stand: a trend,
            # a curve, autocorrelated or heavy-tailed noise fooled the sequential test; it re-learnt
            log.debug("%s alarm at frame %d not confirmed (t = %.1f)", candidate.detector, frame,
                      self._evidence_t)
            return []
        self._reported.append((index, frame))
        self._after_change = True
        horizon = snap.start - self.config.merge_margin - 1
        self._reported = [(i, f) for i, f in self._reported if i >= horizon]
        return [event]

    def _level_t(self, snap: Snapshot, candidate: Candidate, index: int) -> float:
        """With a reference run's scale, an alarm with fewer than ``ONLINE_HOLDOFF`` samples before it (a
        change soon after the short warm-up) is also judged by the level t of its statistics (mean after
        minus mean before): a line through a handful of samples extrapolates too loosely to confirm
        anything, while a trend moves the means of so few samples by little. 0 with more samples."""
        last = self._last_change_before(index)
        start = snap.start if last is None else max(snap.start, last)
        if index - start >= ONLINE_HOLDOFF:
            return 0.0
        cols = list(candidate.columns) or list(range(len(self.statistics)))
        before = snap.z[snap.rows(start, index)][:, cols]
        after = snap.z[snap.rows(index, snap.end)][:, cols]
        n1, n2 = np.isfinite(before).sum(axis=0), np.isfinite(after).sum(axis=0)
        if not (n1.size and n1.min() >= 2 and n2.min() >= 2):
            return 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            diff = np.nanmean(after, axis=0) - np.nanmean(before, axis=0)
        t = np.abs(diff) / np.sqrt(1.0 / n1 + 1.0 / n2) / math.sqrt(self.inflation)
        return float(np.nanmax(t, initial=0.0))

    def _describe(self, snap: Snapshot, candidate: Candidate, index: int, frame: int) -> ChangePoint:
        seg_start = candidate.segment_start
        if seg_start is None:
            last = self._last_change_before(index)
            seg_start = snap.start if last is None else last
        seg_end = snap.end if candidate.segment_end is None else candidate.segment_end
        before = snap.raw[snap.rows(seg_start, index)]
        after = snap.raw[snap.rows(index, seg_end)]
        level_before = robust_location(before)
        level_after = robust_location(after)
        shift = (level_after - level_before) / snap.scale
        n1 = np.isfinite(before).sum(axis=0)
        n2 = np.isfinite(after).sum(axis=0)
        with np.errstate(all="ignore"):
            t_stat = np.abs(shift) * np.sqrt(n1 * n2 / np.maximum(n1 + n2, 1))
        t_stat = np.where(np.isfinite(t_stat), t_stat, 0.0)
        # against a line on each side (unit-noise values; the noise inflation discounts autocorrelation)
        unit = math.sqrt(self.inflation)
        z_before, z_after = snap.z[snap.rows(seg_start, index)], snap.z[snap.rows(index, seg_end)]
        units = np.full(z_before.shape[1], unit)
        if self.judge_lines and self.config.residual_units:  # issue 38: smooth curves, sawtooths (classify.py)
            rs = residual_scale(z_before, z_after)
            units = np.maximum(units, np.where(np.isfinite(rs), rs, unit))
        evidence = break_evidence(z_before / units, z_after / units, flat_t=self.config.flat_t)
        if self.judge_lines:
            t_stat = evidence.t_max  # a trend moves the medians but is no change
        involved = set(np.flatnonzero(t_stat >= self.config.involve_t).tolist()) | set(candidate.columns)
        if not involved:
            involved = {int(np.argmax(t_stat))}
        cols = sorted(involved)
        kind = kind_of(evidence, cols, self.config.involve_t)
        # confirmation of an online alarm: one alarmed statistic's line t, or all statistics' level t
        # together (a small shift in many statistics), as the equivalent single t of a chi-square at 1e-4
        own = float(evidence.t_max[list(candidate.columns) or cols].max(initial=0.0))
        joint = float(np.sum(evidence.t_level**2))
        self._evidence_t = max(own, ONLINE_CONFIRM_T * math.sqrt(joint / _chi2_limit(len(evidence.t_level))))
        if self.judge_lines or kind != "level":
            effects = [effect_of(evidence, j, kind) * units[j] for j in cols] if kind != "variance" else \
                [effect_of(evidence, j, kind) for j in cols]
        else:
            effects = [abs(float(shift[j])) for j in cols if np.isfinite(shift[j])]
        effect = max((e for e in effects if math.isfinite(e)), default=0.0)
        self._relative_effect = self._relative(snap, cols, effects) if kind != "variance" else math.inf
        self._curve_t = math.inf
        if self.config.curve_t > 0 and kind in self.config.curve_kinds:
            # in the detector's noise units, like its other t statistics: autocorrelated residuals (a smooth
            # series' wiggles) inflate the F statistic as they inflate any sum of them
            t_curve = curve_t(z_before[:, cols], z_after[:, cols]) / unit
            self._curve_t = float(np.max(t_curve, initial=-math.inf))
        return ChangePoint(
            frame=frame,
            detected_at=int(snap.frames[-1]),
            statistics=tuple(self.statistics[j] for j in cols),
            before={self.statistics[j]: _num(level_before[j]) for j in cols},
            after={self.statistics[j]: _num(level_after[j]) for j in cols},
            effect_size=effect,
            detector=candidate.detector,
            severity=self._severity(effect),
            kind=kind,
            penalty=self.penalty_for(candidate.detector),
        )

    @staticmethod
    def _relative(snap: Snapshot, cols: list[int], effects: list[float]) -> float:
        """The largest effect of ``cols`` over the spread of that statistic in the window (MAD sd, at least
        the noise sd): a bend of a smooth curve that moves hundreds of noise sigmas is small beside it."""
        z = snap.z[:, cols]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            spread = 1.4826 * np.nanmedian(np.abs(z - np.nanmedian(z, axis=0)), axis=0)
        spread = np.where(np.isfinite(spread), np.maximum(spread, 1.0), 1.0)
        ratios = [e / s for e, s in zip(effects, spread.tolist(), strict=False) if math.isfinite(e)]
        return max(ratios, default=math.inf)

    def _severity(self, effect: float) -> Severity:
        thresholds = self.config.severity
        if effect >= thresholds.critical:
            return "critical"
        if effect >= thresholds.warning:
            return "warning"
        return "info"


@lru_cache(maxsize=64)
def _chi2_limit(n_dims: int) -> float:
    from scipy.stats import chi2

    return float(chi2.ppf(1.0 - 1e-4, n_dims))


def _upper_bound(scale: np.ndarray, samples: int) -> np.ndarray:
    """The scale plus one standard error of its estimate (the detector uses this bound).

    An underestimated scale makes every test too eager, so a fresh estimate (after the
    warm-up or a change) is used with its uncertainty; the margin shrinks as evidence grows.
    """
    return scale * (1.0 + SCALE_RELATIVE_SE / math.sqrt(max(samples, 1)))


def _num(value: float) -> float:
    return float(value) if np.isfinite(value) else math.nan


def build_detector(config: ChangepointConfig | None = None) -> StreamingDetector:
    """The detector a config describes, thresholds calibrated to its false-alarm target (and its
    reference run read, when it names one)."""
    config = config or ChangepointConfig()
    windowed, online = build_parts(config)
    prior, samples = (None, 0) if config.reference is None else reference_scale(config.reference, config.stats)
    return StreamingDetector(config, windowed=windowed, online=online, prior_scale=prior, prior_samples=samples)


def reference_scale(path: str, statistics: list[str]) -> tuple[np.ndarray, int]:
    """(robust noise scale per statistic, usable frames) of a reference run's record file; NaN for a
    statistic the reference does not have (its scale is then learnt in the warm-up)."""
    from wirewatch.errors import InputError
    from wirewatch.records import read_record

    rows = [[_num(float(rec.stats.get(name, math.nan))) for name in statistics] for rec in read_record(path)]
    raw = np.array(rows, dtype=float).reshape(-1, len(statistics))
    raw = raw[np.isfinite(raw).any(axis=1)]
    if len(raw) < MIN_WARMUP:
        raise InputError(f"changepoint.reference {path}: {len(raw)} frames with the watched statistics "
                         f"({', '.join(statistics)}); at least {MIN_WARMUP} are needed for a noise scale")
    scale = robust_scale(raw, robust_location(raw))
    scale = np.where(np.isfinite(raw).sum(axis=0) >= MIN_WARMUP, scale, np.nan)  # too few values: no scale
    missing = [name for name, v in zip(statistics, scale, strict=True) if not (np.isfinite(v) and v > 0)]
    if missing:
        log.warning("changepoint.reference %s has no usable values of %s; their scale is learnt in the warm-up",
                    path, ", ".join(missing))
    log.info("changepoint: noise scale from the reference run %s (%d frames)", path, len(raw))
    return scale, len(raw)


def online_trend(config: ChangepointConfig) -> bool:
    """Whether the online test's baseline is a line. With a reference run it is a level unless
    ``online.trend`` is set explicitly: after a 5-frame warm-up a line extrapolates too loosely to test
    against (the windowed search, ``cost: linear``, still keeps a steady trend from being a change)."""
    if config.reference is not None and "trend" not in config.online.model_fields_set:
        return False
    return config.online.trend


def build_parts(config: ChangepointConfig) -> tuple[WindowSearch | None, OnlineTest | None]:
    """The windowed search and the online test of ``config``, thresholds set for its false-alarm budget."""
    n_dims = len(config.stats)
    rate = config.false_alarms_per_1000 / 1000.0
    both = config.windowed.enabled and config.online.enabled  # a detector alone gets the whole budget
    windowed_share = config.windowed.share if both else 1.0
    online_share = config.online.share if both else 1.0
    windowed = None
    if config.windowed.enabled:
        w = config.windowed
        penalty = windowed_penalty(cost=w.cost, method=w.method, n_dims=n_dims, window=w.window,
                                   min_size=w.min_segment, jump=w.jump, width=w.width,
                                   alpha_run=min(0.5, rate * windowed_share * w.every))
        windowed = WindowedSearch(w, penalty)
    online: OnlineTest | None = None
    if config.online.enabled:
        o = config.online
        if o.method == "bocpd":
            b = o.bocpd
            params = BocpdParams(expected_run=b.expected_run, max_run=b.max_run, lag=b.lag,
                                 linear=b.model == "linear", level_sd=b.level_sd, slope_sd=b.slope_sd,
                                 clip=o.clip_z)
            online = BocpdTest(params, threshold=bocpd_threshold(params, rate * online_share / n_dims),
                               holdoff=ONLINE_HOLDOFF)
        else:
            threshold = cusum_threshold(drift=o.shift / 2.0, n_dims=n_dims, rate_per_frame=rate * online_share)
            online = ONLINE_TESTS[o.method](drift=o.shift / 2.0, threshold=threshold, clip=o.clip_z,
                                            baseline_alpha=o.baseline_alpha, holdoff=ONLINE_HOLDOFF,
                                            warmup=config.warmup, trend=online_trend(config))
    return windowed, online
