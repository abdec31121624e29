"""AlertEngine: runs the rules, deduplicates, rate-limits and tracks what is active.

Rules report transitions; the engine turns them into the notifications sinks
get: a firing alert is emitted once per episode (repeats while active are
absorbed, their newest annotations kept), a resolution only for an alert that
was emitted, and new firing alerts beyond the rate limit wait in ``pending``
and go out on a later call while their condition still holds.
Thread-safe: the pipeline calls ``observe`` and a ticker thread ``tick``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence

from wirewatch.publish.metrics import AlertMetrics
from wirewatch.publish.rules import Rule
from wirewatch.types import Alert, ChangePoint, FrameStats


class RateLimiter:
    """Sliding window: at most ``max_events`` in any ``per_s`` seconds."""

    def __init__(self, max_events: int, per_s: float) -> None:
        self.max_events = max_events
        self.per_s = per_s
        self._times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        while self._times and self._times[0] <= now - self.per_s:
            self._times.popleft()
        if len(self._times) < self.max_events:
            self._times.append(now)
            return True
        return False


class AlertEngine:
    def __init__(self, rules: Sequence[Rule], *, labels: Mapping[str, str] | None = None,
                 rate_limiter: RateLimiter | None = None, metrics: AlertMetrics | None = None) -> None:
        self.rules = list(rules)
        self.labels = dict(labels or {})
        self._limiter = rate_limiter
        self._metrics = metrics
        self._active: dict[str, Alert] = {}  # fingerprint -> newest firing alert that was emitted
        self._pending: dict[str, Alert] = {}  # fingerprint -> firing alert held back by the rate limit
        self._lock = threading.Lock()

    def observe(self, stats: FrameStats, changepoints: Sequence[ChangePoint], now: float) -> list[Alert]:
        """One processed frame and the change points found with it; also runs the time-based checks."""
        with self._lock:
            transitions: list[Alert] = []
            for rule in self.rules:
                transitions += rule.observe(stats, changepoints, now)
                transitions += rule.tick(now)
            return self._settle(transitions, now)

    def tick(self, now: float) -> list[Alert]:
        """Time-based checks (no frames, change point expiry) and release of rate-limited alerts."""
        with self._lock:
            transitions: list[Alert] = []
            for rule in self.rules:
                transitions += rule.tick(now)
            return self._settle(transitions, now)

    def active(self) -> list[Alert]:
        with self._lock:
            return list(self._active.values())

    def pending(self) -> list[Alert]:
        with self._lock:
            return list(self._pending.values())

    def _with_labels(self, alert: Alert) -> Alert:
        if not self.labels:
            return alert
        return Alert(name=alert.name, state=alert.state, labels={**self.labels, **alert.labels},
                     annotations=alert.annotations, starts_at=alert.starts_at, ends_at=alert.ends_at,
                     frame=alert.frame)

    def _settle(self, transitions: list[Alert], now: float) -> list[Alert]:
        out: list[Alert] = []
        for raw in transitions:
            alert = self._with_labels(raw)
            fp = alert.fingerprint
            if alert.state == "firing":
                if fp in self._active:
                    self._active[fp] = alert  # duplicate: keep the newest details, notify nobody
                elif fp in self._pending or not self._allow(now):
                    if fp not in self._pending and self._metrics is not None:
                        self._metrics.suppressed.labels(alertname=alert.name).inc()
                    self._pending[fp] = alert
                else:
                    self._active[fp] = alert
                    out.append(alert)
            else:
                if self._active.pop(fp, None) is not None:
                    out.append(alert)
                else:
                    self._pending.pop(fp, None)  # never sent: nobody needs to hear it ended
        # rate-limited alerts whose condition still holds go out when the window allows
        for fp in list(self._pending):
            if not self._allow(now):
                break
            alert = self._pending.pop(fp)
            self._active[fp] = alert
            out.append(alert)
        if self._metrics is not None:
            for alert in out:
                self._metrics.alerts.labels(alertname=alert.name, state=alert.state).inc()
        return out

    def _allow(self, now: float) -> bool:
        return self._limiter is None or self._limiter.allow(now)
