"""The ``changepoint`` config section.

Thresholds are not magic constants: the windowed search's penalty and the online
test's decision threshold are both derived from ``false_alarms_per_1000`` (the
target number of false alarms per 1000 change-free frames), split between the two
detectors by ``share`` (see ``calibrate.py``). Levels are measured in robust
standard deviations of each statistic (MAD-based, see ``robust.py``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from wirewatch.config.base import StrictModel

DEFAULT_STATISTICS = ["length_px_mean", "width_px_mean", "particle_count", "orientation_order",
                      "aspect_ratio_mean"]

WindowMethod = Literal["binseg", "pelt", "window"]
CostName = Literal["linear", "l2", "normal", "rbf"]
OnlineMethod = Literal["cusum", "page-hinkley", "bocpd"]
CurveKind = Literal["level", "slope"]


def _slope_only() -> list[CurveKind]:
    return ["slope"]


class WindowedConfig(StrictModel):
    """Ruptures search re-run every ``every`` frames over the last ``window`` frames."""

    enabled: bool = True
    method: WindowMethod = "binseg"
    cost: CostName = "linear"  # piecewise linear: a steady trend is no change (l2: piecewise constant)
    window: int = Field(default=100, ge=20, le=5000)
    every: int = Field(default=4, ge=1)
    min_segment: int = Field(default=8, ge=2)  # ruptures min_size, and how old a change must be to confirm
    # slow streams: the same in seconds; at the end of the warm-up it becomes frames at the stream's median
    # frame interval, and the smaller of the two is used (at least 2 frames)
    min_segment_s: float | None = Field(default=None, gt=0)
    jump: int = Field(default=2, ge=1)  # candidate break every `jump` frames (refined to 1 frame afterwards)
    confirmations: int = Field(default=2, ge=1)  # consecutive runs that must find the change
    width: int = Field(default=40, ge=4)  # sliding-window width (method "window" only)
    share: float = Field(default=0.1, gt=0, le=1)  # share of the false-alarm budget (see OnlineConfig.share)

    @model_validator(mode="after")
    def _fits(self) -> WindowedConfig:
        if self.window < 2 * self.min_segment + 1:
            raise ValueError(f"window ({self.window}) must be > 2 * min_segment ({self.min_segment})")
        if self.method == "window" and self.width >= self.window:
            raise ValueError(f"width ({self.width}) must be smaller than window ({self.window})")
        return self


class BocpdConfig(StrictModel):
    """Bayesian online change-point detection (``online.method: bocpd``), see ``bocpd.py``."""

    expected_run: float = Field(default=250.0, gt=1)  # frames; constant hazard 1 / expected_run
    max_run: int = Field(default=100, ge=10, le=2000)  # run lengths kept (memory and time per frame)
    lag: int = Field(default=15, ge=2)  # alarm on the posterior mass of runs shorter than this
    model: Literal["linear", "constant"] = "linear"  # segment model: a line or a constant level
    level_sd: float = Field(default=3.0, gt=0)  # prior sd of a new segment's level jump (sigma)
    slope_sd: float = Field(default=0.05, gt=0)  # prior sd of a new segment's slope change (sigma / frame)

    @model_validator(mode="after")
    def _fits(self) -> BocpdConfig:
        if self.lag >= self.max_run:
            raise ValueError(f"lag ({self.lag}) must be < max_run ({self.max_run})")
        return self


class OnlineConfig(StrictModel):
    """Per-statistic sequential test for early warning."""

    enabled: bool = True
    method: OnlineMethod = "cusum"
    trend: bool = True  # cusum: the baseline is a local line (Holt), so a steady trend raises nothing
    shift: float = Field(default=2.0, gt=0)  # smallest shift (robust sigmas) it is tuned for; drift k = shift / 2
    clip_z: float = Field(default=3.0, gt=0)  # single outliers add at most clip_z - k to the sum
    baseline_alpha: float = Field(default=0.02, ge=0, lt=1)  # slow tracking of the baseline (drift)
    # most of the budget: its alarms are confirmed against lines on each side before they are reported
    share: float = Field(default=0.9, gt=0, le=1)
    bocpd: BocpdConfig = Field(default_factory=BocpdConfig)


class SeasonalConfig(StrictModel):
    """A periodic component found from the autocorrelation and removed before testing (``seasonal.py``)."""

    enabled: bool = False
    max_period: int = Field(default=52, ge=3)  # longest period looked for, in frames (3 cycles must fit the window)
    min_acf: float = Field(default=0.4, gt=0, lt=1)  # autocorrelation at the period for it to count as clear


class CalibrationConfig(StrictModel):
    """Thresholds re-fitted from the stream's own residuals (block bootstrap), see ``calibrate.py``."""

    enabled: bool = True
    every: int = Field(default=50, ge=1)  # frames between re-calibrations
    memory: int = Field(default=5, ge=1)  # the inflation used is the median of this many calibrations


class SeverityThresholds(StrictModel):
    """Effect size (robust sigmas) at which a change is a warning / critical; below: info."""

    warning: float = Field(default=1.0, ge=0)
    critical: float = Field(default=3.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> SeverityThresholds:
        if self.critical < self.warning:
            raise ValueError(f"critical ({self.critical}) must be >= warning ({self.warning})")
        return self


class ChangepointConfig(StrictModel):
    enabled: bool = True
    stats: list[str] = Field(default_factory=lambda: list(DEFAULT_STATISTICS), min_length=1)
    warmup: int = Field(default=50, ge=5)  # frames with data before detection starts (robust scale)
    # Slow streams (docs/changepoint.md, "Slow streams"): the warm-up ends at `warmup` frames or `warmup_s`
    # seconds after the series' first frame, whichever comes first (never before 5 frames); the
    # false-alarm budget may be given per hour instead, converted with the warm-up's median frame interval
    warmup_s: float | None = Field(default=None, gt=0)
    false_alarms_per_1000: float = Field(default=1.0, gt=0, le=100)
    false_alarms_per_hour: float | None = Field(default=None, gt=0)
    # a record file (JSON Lines) of an earlier run: the statistics' noise scale comes from it, so the
    # warm-up only needs `reference_warmup` frames to learn the level and detection starts right away
    reference: str | None = None
    reference_warmup: int = Field(default=5, ge=3)
    clip_z: float = Field(default=5.0, gt=0)  # Hampel filter: |x - local median| > clip_z sigma is an outlier
    involve_t: float = Field(default=4.0, gt=0)  # t statistic for a statistic to be named in an event
    # issue 38: t statistics of a break against the residual sd of a line on each side when that is larger
    # than the noise of the first differences (smooth curves, sawtooths), and windowed breaks confirmed by
    # them like online alarms (t >= 4)
    residual_units: bool = False
    confirm_windowed: bool = True
    # a level or slope change must move its statistic by at least this fraction of the statistic's spread
    # over the window (MAD sd): a bend of a smooth, nearly noise-free curve is no change (0: off; 0.2 before
    # the third session's panel, docs/changepoint.md)
    min_relative_effect: float = Field(default=0.4, ge=0)
    # a statistic flat on both sides of a break (slope below this many standard errors) has its jump
    # measured between means, not extrapolated lines (the power of a constant-mean test; 0: off)
    flat_t: float = Field(default=1.0, ge=0)
    # a change of these kinds must fit better than one quadratic through both sides of it, by this t (the
    # square root of the F statistic against the lines' own residuals, in noise units: divided by the square
    # root of the noise inflation; classify.curve_t): the bends of a smooth growth curve are no changes (0: off)
    curve_t: float = Field(default=2.0, ge=0)
    curve_kinds: list[CurveKind] = Field(default_factory=_slope_only)
    merge_margin: int = Field(default=15, ge=0)  # frames: events closer than this to a reported one merge
    windowed: WindowedConfig = Field(default_factory=WindowedConfig)
    online: OnlineConfig = Field(default_factory=OnlineConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    seasonal: SeasonalConfig = Field(default_factory=SeasonalConfig)
    # offline only (the record's length is known): a series shorter than warmup / this fraction warms up on
    # this fraction of its length, at least 10 frames (0: off; the daemon never knows a length)
    short_record_warmup: float = Field(default=0.25, ge=0, le=1)
    severity: SeverityThresholds = Field(default_factory=SeverityThresholds)

    @model_validator(mode="after")
    def _check(self) -> ChangepointConfig:
        if len(set(self.stats)) != len(self.stats):
            raise ValueError(f"stats has duplicates: {self.stats}")
        if any(not s for s in self.stats):
            raise ValueError("stats has an empty name")
        if not (self.windowed.enabled or self.online.enabled):
            raise ValueError("enable at least one of windowed and online")
        return self

    def with_stats(self, stats: list[str]) -> ChangepointConfig:
        """A copy watching ``stats`` instead (validated like the rest)."""
        # exclude_unset: what was left to its default stays so (e.g. online.trend with a reference run)
        return ChangepointConfig.model_validate({**self.model_dump(exclude_unset=True), "stats": list(stats)})
