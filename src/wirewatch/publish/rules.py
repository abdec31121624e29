"""Alert rules: each turns frames, change points and time into firing/resolved transitions.

A rule keeps only its own condition state and emits an ``Alert`` when its
condition starts (``firing``) or ends (``resolved``). Deduplication across
rules, rate limiting and global labels belong to ``AlertEngine``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from wirewatch.publish.config import (
    DEFAULT_ANNOTATIONS,
    ChangepointRule,
    NoFramesRule,
    RuleConfig,
    ThresholdRule,
)
from wirewatch.publish.templates import render_safe
from wirewatch.records import finite_or_none
from wirewatch.types import Alert, ChangePoint, FrameStats

log = logging.getLogger(__name__)

_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class Rule(Protocol):
    name: str

    def observe(self, stats: FrameStats, changepoints: Sequence[ChangePoint], now: float) -> list[Alert]: ...

    def tick(self, now: float) -> list[Alert]: ...


class _TemplatedRule:
    """Shared: labels and rendered annotations for one alert of this rule."""

    kind: str

    def __init__(self, config: ChangepointRule | ThresholdRule | NoFramesRule) -> None:
        self.name = config.name
        self._config = config
        self._templates = {**DEFAULT_ANNOTATIONS[config.kind], **config.annotations}
        self._names_checked = False

    def _check_names(self, wanted: Sequence[str], stats: FrameStats) -> None:
        """Once, on the first frame: a statistic the frames never carry is most likely a typo."""
        if self._names_checked or not stats.aggregates:
            return
        self._names_checked = True
        unknown = [name for name in wanted if name not in stats.aggregates]
        if unknown:
            log.warning("alert rule %s watches %s, which the frames do not carry; they have: %s", self.name,
                        ", ".join(unknown), ", ".join(sorted(stats.aggregates)))

    def _alert(self, state: str, *, severity: str, extra_labels: Mapping[str, str], values: Mapping[str, Any],
               starts_at: float, ends_at: float | None = None, frame: int | None = None) -> Alert:
        labels = {**self._config.labels, **extra_labels, "severity": severity}
        fields = {"alertname": self.name, "severity": severity, "rule": self.name, **values}
        annotations = {key: render_safe(t, fields) for key, t in self._templates.items()}
        return Alert(name=self.name, state=state, labels=labels,  # type: ignore[arg-type]
                     annotations=annotations, starts_at=starts_at, ends_at=ends_at, frame=frame)


class ChangepointAlertRule(_TemplatedRule):
    """One alert per matching statistic; it stays firing while changes keep coming, then resolves."""

    def __init__(self, config: ChangepointRule) -> None:
        super().__init__(config)
        self.config = config
        self._active: dict[str, tuple[Alert, float]] = {}  # statistic -> (firing alert, expiry time)

    def _matching_statistics(self, cp: ChangePoint) -> list[str]:
        c = self.config
        if c.detectors and cp.detector not in c.detectors:
            return []
        if cp.attribution not in c.attributions or (cp.suspect and not c.include_suspect):
            return []  # held back: the instrument changed, or the model stopped seeing the wires
        if _SEVERITY_RANK.get(cp.severity, 1) < _SEVERITY_RANK[c.min_severity]:
            return []
        effect = abs(cp.effect_size)
        # a NaN effect size passes only when no minimum was asked for
        if c.min_effect_size > 0.0 and not (math.isfinite(effect) and effect >= c.min_effect_size):
            return []
        return [s for s in cp.statistics if not c.statistics or s in c.statistics]

    def observe(self, stats: FrameStats, changepoints: Sequence[ChangePoint], now: float) -> list[Alert]:
        self._check_names(self.config.statistics, stats)
        out: list[Alert] = []
        for cp in changepoints:
            for statistic in self._matching_statistics(cp):
                severity = self.config.severity or cp.severity
                values = {"statistic": statistic, "detector": cp.detector, "frame": cp.frame,
                          "detected_at": cp.detected_at, "delay": cp.detected_at - cp.frame,
                          "before": cp.before.get(statistic), "after": cp.after.get(statistic),
                          "effect_size": cp.effect_size, "change_severity": cp.severity,
                          "attribution": cp.attribution, "suspect": cp.suspect}
                previous = self._active.get(statistic)
                starts_at = previous[0].starts_at if previous else now
                alert = self._alert("firing", severity=severity, extra_labels={"statistic": statistic},
                                    values=values, starts_at=starts_at, frame=cp.frame)
                if previous and previous[0].fingerprint != alert.fingerprint:
                    # severity changed: the old alert (other labels) ends here
                    out.append(_resolved(previous[0], now))
                self._active[statistic] = (alert, now + self.config.resolve_after_s)
                out.append(alert)
        return out

    def tick(self, now: float) -> list[Alert]:
        expired = [s for s, (_, expiry) in self._active.items() if expiry <= now]
        return [_resolved(self._active.pop(s)[0], now) for s in expired]


class ThresholdAlertRule(_TemplatedRule):
    """Statistic outside [min, max] for ``for_frames`` frames fires; ``clear_frames`` in range resolves."""

    def __init__(self, config: ThresholdRule) -> None:
        super().__init__(config)
        self.config = config
        self._breach_run = 0
        self._ok_run = 0
        self._firing: Alert | None = None

    def _condition(self) -> str:
        c = self.config
        if c.max is None:
            return f"below {c.min:g}"
        if c.min is None:
            return f"above {c.max:g}"
        return f"outside [{c.min:g}, {c.max:g}]"

    def _breached(self, value: float) -> bool | None:
        c = self.config
        if not math.isfinite(value):
            return {"ignore": None, "breach": True, "clear": False}[c.on_missing]
        return (c.min is not None and value < c.min) or (c.max is not None and value > c.max)

    def observe(self, stats: FrameStats, changepoints: Sequence[ChangePoint], now: float) -> list[Alert]:
        c = self.config
        self._check_names([c.statistic], stats)
        raw = stats.aggregates.get(c.statistic)
        try:
            value = float(raw) if raw is not None else math.nan
        except (TypeError, ValueError):
            value = math.nan
        breached = self._breached(value)
        if breached is None:
            return []
        if breached:
            self._breach_run += 1
            self._ok_run = 0
        else:
            self._ok_run += 1
            self._breach_run = 0
        if self._firing is None and self._breach_run >= c.for_frames:
            values = {"statistic": c.statistic, "value": finite_or_none(value),
                      "min": c.min, "max": c.max, "frame": stats.frame_id, "for_frames": c.for_frames,
                      "breach_frames": self._breach_run, "condition": self._condition()}
            self._firing = self._alert("firing", severity=c.severity or "warning",
                                       extra_labels={"statistic": c.statistic}, values=values,
                                       starts_at=now, frame=stats.frame_id)
            return [self._firing]
        if self._firing is not None and self._ok_run >= c.clear_frames:
            alert, self._firing = self._firing, None
            return [_resolved(alert, now, frame=stats.frame_id)]
        return []

    def tick(self, now: float) -> list[Alert]:
        return []


class NoFramesAlertRule(_TemplatedRule):
    """Silence longer than ``after_s`` fires; the next frame resolves. The clock starts at the first call."""

    def __init__(self, config: NoFramesRule) -> None:
        super().__init__(config)
        self.config = config
        self._last_seen: float | None = None
        self._last_frame: int | None = None
        self._firing: Alert | None = None

    def observe(self, stats: FrameStats, changepoints: Sequence[ChangePoint], now: float) -> list[Alert]:
        self._last_seen = now
        self._last_frame = stats.frame_id
        if self._firing is not None:
            alert, self._firing = self._firing, None
            return [_resolved(alert, now, frame=stats.frame_id)]
        return []

    def tick(self, now: float) -> list[Alert]:
        if self._last_seen is None:
            self._last_seen = now
        silence = now - self._last_seen
        if self._firing is None and silence >= self.config.after_s:
            values = {"after_s": self.config.after_s, "silence_s": silence, "last_frame": self._last_frame}
            self._firing = self._alert("firing", severity=self.config.severity or "warning", extra_labels={},
                                       values=values, starts_at=now, frame=self._last_frame)
            return [self._firing]
        return []


def _resolved(alert: Alert, now: float, frame: int | None = None) -> Alert:
    # max(): a wall clock stepped back (NTP) must not make an end before the start (receivers reject it)
    return Alert(name=alert.name, state="resolved", labels=alert.labels, annotations=alert.annotations,
                 starts_at=alert.starts_at, ends_at=max(now, alert.starts_at),
                 frame=frame if frame is not None else alert.frame)


# Explicit registry: rule config kind -> rule class.
RULE_TYPES: dict[str, type[Any]] = {
    "changepoint": ChangepointAlertRule,
    "threshold": ThresholdAlertRule,
    "no_frames": NoFramesAlertRule,
}


def build_rule(config: RuleConfig) -> Rule:
    rule: Rule = RULE_TYPES[config.kind](config)
    return rule
