"""``PvaServer``: the daemon's results as PV Access PVs (``--pv-prefix PREFIX``).

PVs (all names PREFIX + ...):

- one ``NTScalar`` double per per-frame statistic, named exactly as in the record's ``stats``
  (``particle_count``, ``length_px_mean``, ...), posted every processed frame with the frame's time
  stamp; ``display.units`` / ``display.description`` / ``display.precision`` and ``valueAlarm`` come
  from ``epics.server.statistics`` (units and descriptions default from the name); the alarm severity
  is computed here (MINOR/MAJOR outside the warning/alarm limits, INVALID when undefined);
- ``frames_processed``, ``frames_dropped`` (sum over reasons), ``fps``, ``status`` (state text,
  re-posted every ``heartbeat_s`` as a heartbeat);
- ``particles`` (``NTTable`` of the last frame's particles), ``changepoints`` (``NTTable`` of the last
  ``changepoint_history`` change points) and ``changepoints_total``;
- ``alert_<rule>`` per alert rule: 1 and MAJOR while firing, 0 and NO_ALARM once resolved;
- ``overlay``: ``NTNDArray`` RGB of the segmenter input with the masks tinted, at most once per
  ``overlay_interval_s``;
- controls: ``alerts_paused`` (0/1: while 1 no alert is sent to the alert sinks) and
  ``reset_changepoints`` (write 1: the change detector starts afresh at the next frame). Other values
  are refused with an error naming the allowed ones. They are read-only unless ``writers`` (the config's
  ``epics.writers``) lists the client: its host (``op.peer()``, the TCP peer address) and/or its account
  (``op.account()``, the name the client presents). A refused write is answered with an error, logged
  and counted in ``refused_writes`` (the daemon exports ``wirewatch_pva_writes_refused_total{pv}``).

The pipeline calls ``publish(result)`` from its publish thread (a listener); p4p serves from its own
threads.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from wirewatch.epics import alarms
from wirewatch.epics.config import EpicsServerConfig, PvWriter, StatisticPV, check_pv_name
from wirewatch.extension import FrameResult
from wirewatch.types import Alert, ChangePoint

log = logging.getLogger(__name__)

PARTICLE_COLUMNS: tuple[str, ...] = (
    "area_px", "area_nm2", "length_px", "width_px", "length_nm", "width_nm", "aspect_ratio", "orientation_deg",
    "centroid_x", "centroid_y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "od_mean", "od_integrated",
    "overlap_fraction", "touches_border")
CHANGEPOINT_COLUMNS = (("frame", "l"), ("detected_at", "l"), ("statistics", "s"), ("effect_size", "d"),
                       ("detector", "s"), ("severity", "s"))
MASK_TINT = np.array([255, 60, 40], np.float32)


def peer_ip(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address of a PV Access peer string (``10.0.0.5:40312``, ``[::1]:40312``); None if unreadable."""
    try:
        host = peer[1:peer.index("]")] if peer.startswith("[") else peer.rsplit(":", 1)[0]
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _stamp(t: float) -> tuple[int, int]:
    sec, frac = divmod(t, 1.0)
    return int(sec), int(frac * 1e9)


class Controls:
    """What the writable PVs act on; the daemon hook fills these in (all optional)."""

    def __init__(self, *, pause_alerts: Callable[[bool], None] | None = None,
                 reset_changepoints: Callable[[], None] | None = None) -> None:
        self.pause_alerts = pause_alerts
        self.reset_changepoints = reset_changepoints


class PvaServer:
    def __init__(self, config: EpicsServerConfig, *, statistics: Iterable[str] = (), rules: Iterable[str] = (),
                 pva_conf: Mapping[str, str] | None = None, controls: Controls | None = None,
                 counters: Callable[[], tuple[int, int]] | None = None,
                 state: Callable[[], str] | None = None, writers: Sequence[PvWriter] = (),
                 on_error: Callable[[], None] | None = None) -> None:
        from p4p.server import StaticProvider

        if config.prefix is None:
            raise ValueError("PvaServer needs epics.server.prefix")
        self.config = config
        self.prefix = config.prefix
        self.pva_conf = dict(pva_conf or {})
        self.controls = controls or Controls()
        self.counters = counters
        self.state = state
        self.provider = StaticProvider("wirewatch")
        self._lock = threading.Lock()
        self._stats: dict[str, Any] = {}
        self._stat_alarm: dict[str, alarms.AlarmState] = {}
        self._alerts: dict[str, Any] = {}
        self._changepoints: deque[ChangePoint] = deque(maxlen=config.changepoint_history)
        self._changepoint_count = 0
        self._processed = 0
        self._last_overlay = -math.inf
        self._server: Any = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._fps = 0.0
        self._last_frame: int | None = None
        self.paused = False
        self.reset_requests = 0
        self.alerts_from_results = True  # False when an alert sink feeds post_alert instead
        self.writers = list(writers)
        self.refused_writes: dict[str, int] = {}  # control PV suffix -> writes refused (not in writers)
        self.heartbeat_errors = 0
        self._on_error = on_error
        self._build(statistics, rules)

    # -- PVs ---------------------------------------------------------------------------------------
    def name(self, suffix: str) -> str:
        return check_pv_name(self.prefix + suffix, "PV name")

    def _add(self, suffix: str, pv: Any) -> Any:
        self.provider.add(self.name(suffix), pv)
        return pv

    def _scalar(self, suffix: str, code: str, initial: Any, *, description: str, units: str = "",
                writable: Callable[[Any], str | None] | None = None) -> Any:
        from p4p.nt import NTScalar
        from p4p.server.thread import SharedPV

        nt = NTScalar(code, display=True)
        value = nt.wrap(initial)
        value["display.description"] = description
        if code != "s":
            value["display.units"] = units
        pv = SharedPV(nt=nt, initial=value)
        if writable is not None:
            def on_put(pv: Any, op: Any) -> None:
                if not self._may_write(suffix, op):
                    op.done(error=f"{self.name(suffix)} is read-only for this client (see epics.writers)")
                    return
                error = writable(op.value())
                if error is not None:
                    op.done(error=error)
                    return
                pv.post(op.value(), timestamp=time.time())
                op.done()
            pv.put(on_put)
        return self._add(suffix, pv)

    def _build(self, statistics: Iterable[str], rules: Iterable[str]) -> None:
        from p4p.nt import NTNDArray, NTTable
        from p4p.server.thread import SharedPV

        for name in [*statistics, *self.config.statistics]:
            self._stat_pv(name)
        self.frames_processed = self._scalar("frames_processed", "l", 0, description="frames processed")
        self.frames_dropped = self._scalar("frames_dropped", "l", 0, description="frames dropped (all reasons)")
        self.fps = self._scalar("fps", "d", 0.0, description="frames processed per second", units="1/s")
        self.status = self._scalar("status", "s", "starting", description="daemon state (heartbeat)")
        self.changepoints_total = self._scalar("changepoints_total", "l", 0, description="change points detected")
        self.alerts_paused = self._scalar("alerts_paused", "i", 0, description="1: alerts are not sent",
                                          writable=self._write_pause)
        self.reset_changepoints = self._scalar("reset_changepoints", "i", 0,
                                               description="write 1 to reset change-point state",
                                               writable=self._write_reset)
        columns = [(c, "d") for c in PARTICLE_COLUMNS]
        self._particles_nt = NTTable(columns)
        self.particles = self._add("particles", SharedPV(nt=self._particles_nt, initial=[]))
        self._cp_nt = NTTable(list(CHANGEPOINT_COLUMNS))
        self.changepoints = self._add("changepoints", SharedPV(nt=self._cp_nt, initial=[]))
        for rule in rules:
            self._alert_pv(rule)
        self.overlay = None
        if self.config.overlay:
            blank = NTNDArray().wrap(np.zeros((1, 1), np.uint8))
            self.overlay = self._add("overlay", SharedPV(initial=blank))

    def _stat_pv(self, name: str) -> Any:
        from p4p.nt import NTScalar
        from p4p.server.thread import SharedPV

        if name in self._stats:
            return self._stats[name]
        meta = self.config.statistics.get(name, StatisticPV())
        nt = NTScalar("d", display=True, valueAlarm=True)
        value = nt.wrap(math.nan)
        value["display.units"] = meta.units if meta.units is not None else alarms.default_units(name)
        value["display.description"] = meta.description or alarms.default_description(name)
        value["display.format"] = f"%.{meta.precision}f"
        limits = (meta.low_alarm, meta.low_warning, meta.high_warning, meta.high_alarm)
        value["valueAlarm.active"] = any(v is not None for v in limits)
        for field, limit in zip(("lowAlarmLimit", "lowWarningLimit", "highWarningLimit", "highAlarmLimit"), limits,
                                strict=True):
            value[f"valueAlarm.{field}"] = math.nan if limit is None else limit
        value["valueAlarm.lowAlarmSeverity"] = alarms.MAJOR if meta.low_alarm is not None else 0
        value["valueAlarm.highAlarmSeverity"] = alarms.MAJOR if meta.high_alarm is not None else 0
        value["valueAlarm.lowWarningSeverity"] = alarms.MINOR if meta.low_warning is not None else 0
        value["valueAlarm.highWarningSeverity"] = alarms.MINOR if meta.high_warning is not None else 0
        value["valueAlarm.hysteresis"] = meta.hysteresis
        pv = SharedPV(nt=nt, initial=value)
        self._stats[name] = pv
        self._stat_alarm[name] = alarms.OK
        return self._add(name, pv)

    def _alert_pv(self, rule: str) -> Any:
        if rule not in self._alerts:
            self._alerts[rule] = self._scalar(f"alert_{rule}", "i", 0, description=f"alert rule {rule}: 1 while firing")
        return self._alerts[rule]

    # -- writes ------------------------------------------------------------------------------------
    def _may_write(self, suffix: str, op: Any) -> bool:
        """True when the client of PV Access operation ``op`` matches an ``epics.writers`` entry."""
        try:
            peer, account = str(op.peer()), str(op.account())
        except Exception:  # no identity, no write
            peer, account = "?", "?"
        ip = peer_ip(peer)
        if any(w.allows(ip, account) for w in self.writers):
            log.info("PV Access write to %s by %s (account %r)", self.name(suffix), peer, account)
            return True
        with self._lock:
            count = self.refused_writes[suffix] = self.refused_writes.get(suffix, 0) + 1
        if count <= 10 or count % 100 == 0:  # a client hammering the PV must not flood the log
            log.warning("refused a PV Access write to %s from %s (account %r): not in epics.writers "
                        "(%d refused so far)", self.name(suffix), peer, account, count)
        return False

    def _write_pause(self, value: Any) -> str | None:
        if value not in (0, 1):
            return f"alerts_paused must be 0 (send alerts) or 1 (pause them), got {value!r}"
        self.paused = bool(value)
        if self.controls.pause_alerts is not None:
            self.controls.pause_alerts(self.paused)
        log.info("alerts %s over PV Access", "paused" if self.paused else "resumed")
        return None

    def _write_reset(self, value: Any) -> str | None:
        if value not in (0, 1):
            return f"reset_changepoints takes 1 (reset) or 0, got {value!r}"
        if value == 1:
            self.reset_requests += 1
            if self.controls.reset_changepoints is not None:
                self.controls.reset_changepoints()
            log.info("change-point state reset over PV Access")
        return None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> PvaServer:
        from p4p.server import Server

        conf = self.pva_conf or None
        self._server = Server(providers=[self.provider], conf=conf, useenv=conf is None)
        self._heartbeat = threading.Thread(target=self._beat, name="pva-heartbeat", daemon=True)
        self._heartbeat.start()
        log.info("PV Access server: %d PVs under %s", len(self._stats) + 12, self.prefix)
        return self

    def conf(self) -> dict[str, str]:
        """The effective PVA settings of the running server (for a client that must find it)."""
        return dict(self._server.conf()) if self._server is not None else {}

    def close(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(2.0)
        self._post_status("stopped")
        if self._server is not None:
            self._server.stop()
            self._server = None

    def heartbeat_alive(self) -> bool:
        """True while the heartbeat thread runs (or was stopped by ``close()``)."""
        return self._stop.is_set() or (self._heartbeat is not None and self._heartbeat.is_alive())

    def _beat(self) -> None:
        last_n, last_t = self._processed, time.monotonic()
        while not self._stop.wait(self.config.heartbeat_s):
            try:
                now = time.monotonic()
                n = self._processed
                self._fps = (n - last_n) / max(now - last_t, 1e-9)
                last_n, last_t = n, now
                stamp = time.time()
                self.fps.post(self._fps, timestamp=stamp)
                if self.counters is not None:
                    _processed, dropped = self.counters()
                    self.frames_dropped.post(dropped, timestamp=stamp)
                self._post_status(self.state() if self.state is not None else "running")
            except Exception:  # catch-all: a failing callback or post must not stop the heartbeat for good
                self.heartbeat_errors += 1
                if self._on_error is not None:
                    self._on_error()
                if self.heartbeat_errors <= 10 or self.heartbeat_errors % 100 == 0:
                    log.exception("PV Access heartbeat failed (%d time(s)); going on", self.heartbeat_errors)

    def _post_status(self, text: str) -> None:
        extra = f"; last frame {self._last_frame}" if self._last_frame is not None else ""
        paused = "; alerts paused" if self.paused else ""
        self.status.post(f"{text}{extra}{paused}"[:256], timestamp=time.time())

    # -- per frame (pipeline listener) ---------------------------------------------------------------
    def publish(self, result: FrameResult) -> None:
        """Post one processed frame (a result listener of the daemon)."""
        stamp = result.frame.time
        for name, value in result.stats.aggregates.items():
            self.post_statistic(name, float(value), stamp)
        self._processed += 1
        self._last_frame = result.frame_id
        self.frames_processed.post(self._processed, timestamp=stamp)
        self._post_particles(result.stats.particles, stamp)
        if result.changepoints:
            self.add_changepoints(result.changepoints, stamp)
        if self.alerts_from_results:
            for alert in result.alerts:
                self.post_alert(alert)
        if self.overlay is not None and time.monotonic() - self._last_overlay >= self.config.overlay_interval_s:
            self._last_overlay = time.monotonic()
            self._post_overlay(result, stamp)

    def post_statistic(self, name: str, value: float, stamp: float) -> None:
        with self._lock:
            pv = self._stat_pv(name)
            meta = self.config.statistics.get(name, StatisticPV())
            state = alarms.evaluate(value, meta, self._stat_alarm[name])
            self._stat_alarm[name] = state
        pv.post({"value": value, "alarm.severity": state.severity, "alarm.status": state.status,
                 "alarm.message": state.message}, timestamp=_stamp(stamp))

    def _post_particles(self, particles: Mapping[str, np.ndarray], stamp: float) -> None:
        from p4p.wrapper import Value

        cols = {c: np.asarray(particles[c], np.float64) for c in PARTICLE_COLUMNS if c in particles}
        value = Value(self._particles_nt.type, {"labels": list(PARTICLE_COLUMNS), "value": cols})
        self.particles.post(value, timestamp=_stamp(stamp))

    def add_changepoints(self, changepoints: Iterable[ChangePoint], stamp: float) -> None:
        for cp in changepoints:
            self._changepoints.append(cp)
            self._changepoint_count += 1
        rows = [{"frame": cp.frame, "detected_at": cp.detected_at, "statistics": ",".join(cp.statistics),
                 "effect_size": float(cp.effect_size), "detector": cp.detector, "severity": cp.severity}
                for cp in self._changepoints]
        self.changepoints.post(rows, timestamp=_stamp(stamp))
        self.changepoints_total.post(self._changepoint_count, timestamp=_stamp(stamp))

    def post_alert(self, alert: Alert) -> None:
        pv = self._alert_pv(alert.name)
        firing = alert.state == "firing"
        stamp = alert.starts_at if firing or alert.ends_at is None else alert.ends_at
        pv.post({"value": 1 if firing else 0, "alarm.severity": alarms.MAJOR if firing else alarms.NO_ALARM,
                 "alarm.status": alarms.STATUS_RECORD if firing else alarms.STATUS_NONE,
                 "alarm.message": (alert.annotations.get("summary", alert.name) if firing else "")[:200]},
                timestamp=_stamp(stamp))

    def _post_overlay(self, result: Any, stamp: float) -> None:
        from p4p.nt import NTNDArray

        rgb = overlay_rgb(np.asarray(result.image), result.detections.masks)
        value = NTNDArray().wrap(rgb, attrib={"ColorMode": 2})
        value["uniqueId"] = int(result.frame_id) & 0x7FFFFFFF
        self._post_raw(self.overlay, value, stamp)

    @staticmethod
    def _post_raw(pv: Any, value: Any, stamp: float) -> None:
        sec, ns = _stamp(stamp)
        value["timeStamp"] = {"secondsPastEpoch": sec, "nanoseconds": ns}
        pv.post(value)


def overlay_rgb(image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """uint8 RGB (height, width, 3): the 0..1 segmenter input in grey, particle pixels tinted red."""
    grey = np.clip(np.nan_to_num(image.astype(np.float32)), 0.0, 1.0) * 255.0
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if masks.size:
        any_mask = masks.any(axis=0)
        rgb[any_mask] = 0.5 * rgb[any_mask] + 0.5 * MASK_TINT
    return np.rint(rgb).astype(np.uint8)
