"""``LiveState``: a read-only, thread-safe view of what the pipeline produced, for the web page and API.

The daemon registers ``LiveState.observe`` as a pipeline listener; it runs on the publish thread, so
it only copies references and small dicts into bounded deques and offers events to the push hub
(which never blocks). Nothing heavy (overlay rendering, PNG encoding) happens here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
from prometheus_client import CollectorRegistry

from wirewatch.publish.encode import alert_to_dict
from wirewatch.records import FrameRecord, changepoint_to_json
from wirewatch.types import Alert, ChangePoint, Detections, Frame, FrameStats

from .hub import PushHub, encode_event

Counters = Callable[[], Mapping[str, float]]

# What the live page shows (numbers and sparklines); pushed events carry only these (the full record is
# GET /api/latest), which keeps the per-frame cost of watching small.
LIVE_STATS: tuple[str, ...] = (
    "particle_count", "coverage_fraction", "length_px_mean", "width_px_mean", "area_px_mean",
    "aspect_ratio_mean", "orientation_mean_deg", "orientation_order", "reliability",
)


def live_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record with only the ``LIVE_STATS`` statistics (for the page)."""
    stats = record["stats"]
    return {**record, "stats": {k: stats[k] for k in LIVE_STATS if k in stats}}


class ResultLike(Protocol):
    """What the web view reads from a processed frame (the daemon's ``FrameResult`` has all of it)."""

    @property
    def frame(self) -> Frame: ...
    @property
    def stats(self) -> FrameStats: ...
    @property
    def changepoints(self) -> tuple[ChangePoint, ...]: ...
    @property
    def image(self) -> np.ndarray: ...
    @property
    def detections(self) -> Detections: ...
    @property
    def alerts(self) -> tuple[Alert, ...]: ...


class LiveState:
    """Last ``history`` records, change points, firing alerts, frames/s; pushes ``frame``, ``changepoint`` and
    ``alert`` events to ``hub`` while someone watches."""

    def __init__(self, *, history: int = 2000, hub: PushHub | None = None, counters: Counters | None = None,
                 fps_window_s: float = 5.0) -> None:
        self.hub = hub
        self.counters = counters
        self.fps_window_s = fps_window_s
        self._lock = threading.Lock()
        self._records: deque[dict[str, Any]] = deque(maxlen=history)
        self._changepoints: deque[dict[str, Any]] = deque(maxlen=500)
        self._firing: dict[str, dict[str, Any]] = {}
        self._recent_alerts: deque[dict[str, Any]] = deque(maxlen=100)
        self._arrivals: deque[float] = deque(maxlen=1000)
        self._latest: ResultLike | None = None
        self.version = 0  # increments per observed frame (the overlay encoder keys on it)
        self.changed = threading.Event()  # set on every new frame; the overlay pusher clears it
        self.observed = 0
        self.observe_cpu_s = 0.0  # CPU spent in observe() on the pipeline's publish thread
        self.started_at = time.time()

    # -- fed by the pipeline (publish thread) -----------------------------------------------------
    def observe(self, result: ResultLike) -> None:
        cpu0 = time.thread_time()
        try:
            self._observe(result)
        finally:
            self.observe_cpu_s += time.thread_time() - cpu0  # the benchmark reads it

    def _observe(self, result: ResultLike) -> None:
        frame = result.frame
        # the frame's record line, as the record file holds it
        record = FrameRecord(frame=int(frame.frame_id), time=float(frame.time), series=frame.series_id,
                             stats=dict(result.stats.aggregates),
                             latency_s=getattr(result, "latency_s", None)).to_json()
        cps = [changepoint_to_json(cp) for cp in result.changepoints]
        alerts = [alert_to_dict(a) for a in result.alerts]
        now = time.monotonic()
        with self._lock:
            self._records.append(record)
            self._changepoints.extend(cps)
            for alert in alerts:
                self._recent_alerts.append(alert)
                if alert["state"] == "firing":
                    self._firing[alert["fingerprint"]] = alert
                else:
                    self._firing.pop(alert["fingerprint"], None)
            self._arrivals.append(now)
            self._latest = result
            self.version += 1
            self.observed += 1
        self.changed.set()
        hub = self.hub
        if hub is not None and hub.watching.is_set():  # encode JSON only while someone watches
            hub.publish(encode_event("frame", {**live_record(record), "fps": self.fps()}))
            for cp in cps:
                hub.publish(encode_event("changepoint", cp))
            for alert in alerts:
                hub.publish(encode_event("alert", alert))

    # -- read by the web app (HTTP threads) -------------------------------------------------------
    def latest(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._records[-1]) if self._records else None

    def latest_result(self) -> tuple[int, ResultLike | None]:
        with self._lock:
            return self.version, self._latest

    def records(self, last: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._records)
        return items if last is None else items[-last:] if last > 0 else []

    def stat_names(self) -> list[str]:
        latest = self.latest()
        return sorted(latest["stats"]) if latest else []

    def series(self, stat: str, last: int | None = None) -> dict[str, Any]:
        """``{"stat", "frames", "times", "values"}`` of the last ``last`` frames (all kept when None)."""
        records = self.records(last)
        return {"stat": stat, "frames": [r["frame"] for r in records], "times": [r["time"] for r in records],
                "values": [r["stats"].get(stat) for r in records]}

    def changepoints(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._changepoints)

    def alerts(self) -> dict[str, Any]:
        with self._lock:
            return {"firing": list(self._firing.values()), "recent": list(self._recent_alerts)}

    def fps(self) -> float:
        """Frames published per second over the last ``fps_window_s``."""
        now = time.monotonic()
        with self._lock:
            if not self._arrivals or now - self._arrivals[-1] > self.fps_window_s:
                return 0.0
            newest = self._arrivals[-1]
            oldest, n = newest, 0
            for t in reversed(self._arrivals):  # newest first; stop at the window's edge
                if now - t > self.fps_window_s:
                    break
                oldest, n = t, n + 1
        return (n - 1) / (newest - oldest) if n >= 2 and newest > oldest else 0.0

    def status(self) -> dict[str, Any]:
        counters: dict[str, float] = {}
        if self.counters is not None:
            try:
                counters = {k: float(v) for k, v in self.counters().items()}
            except Exception:  # a broken counter source must not break the page
                counters = {}
        latest = self.latest()
        return {"frames_observed": self.observed, "fps": round(self.fps(), 3),
                "last_frame": latest["frame"] if latest else None,
                "clients": self.hub.client_count if self.hub else 0,
                "slow_clients_dropped": self.hub.dropped_clients if self.hub else 0,
                "uptime_s": round(time.time() - self.started_at, 1), **counters}


def registry_counters(registry: CollectorRegistry) -> Counters:
    """Frames received / processed / dropped / errors summed over labels from a Prometheus registry."""
    wanted = {"wirewatch_frames_received_total": "received", "wirewatch_frames_processed_total": "processed",
              "wirewatch_frames_dropped_total": "dropped", "wirewatch_frame_errors_total": "errors"}

    def read() -> dict[str, float]:
        out = dict.fromkeys(wanted.values(), 0.0)
        for metric in registry.collect():
            for sample in metric.samples:
                key = wanted.get(sample.name)
                if key is not None:
                    out[key] += float(sample.value)
        return out

    return read
