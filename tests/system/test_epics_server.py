"""``PvaServer`` driven directly with synthetic frame results, read back by a real p4p client on loopback."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("p4p", reason="p4p (the epics extra) is not installed")

from tests.system.test_epics_pva import pva_conf, wait_for
from wirewatch.daemon.stages import FrameResult
from wirewatch.epics.config import EpicsServerConfig
from wirewatch.epics.server import PvaServer
from wirewatch.types import Alert, ChangePoint, Detections, Frame, FrameStats

P = "UNIT:WW:"


def result(frame_id: int, stats: dict[str, float], *, changepoints: tuple[ChangePoint, ...] = (),
           alerts: tuple[Alert, ...] = (), t: float = 1_700_000_000.5) -> FrameResult:
    image = np.zeros((8, 10), np.float32)
    masks = np.zeros((1, 8, 10), bool)
    masks[0, 2:4, 1:9] = True
    det = Detections(boxes=np.array([[1, 2, 9, 4]], np.float32), scores=np.array([0.9], np.float32), masks=masks,
                     image_shape=(8, 10))
    particles = {"length_px": np.array([8.0]), "width_px": np.array([2.0]), "touches_border": np.array([False])}
    return FrameResult(frame=Frame(frame_id=frame_id, image=image, time=t + frame_id), changepoints=changepoints,
                       stats=FrameStats(frame_id=frame_id, time=t + frame_id, aggregates=stats, particles=particles),
                       image=image, detections=det, timings={}, alerts=alerts)


@pytest.fixture
def served() -> Iterator[tuple[PvaServer, Any]]:
    from p4p.client.thread import Context

    conf = pva_conf()
    cfg = EpicsServerConfig.model_validate({"prefix": P, "changepoint_history": 2, "overlay_interval_s": 0,
                                            "statistics": {"width_px_mean": {"low_warning": 2, "high_warning": 5,
                                                                             "hysteresis": 0.5}}})
    server = PvaServer(cfg, statistics=["particle_count", "width_px_mean"], rules=["Wide"], pva_conf=conf).start()
    with Context("pva", conf=conf, useenv=False) as ctx:
        yield server, ctx
    server.close()


def test_tables_counters_invalid_and_new_statistics(served: tuple[PvaServer, Any]) -> None:
    server, ctx = served
    cp = [ChangePoint(frame=i, detected_at=i + 3, statistics=("width_px_mean",), before={}, after={}, effect_size=1.5 + i,
                      detector="cusum") for i in range(3)]
    server.publish(result(1, {"particle_count": 1.0, "width_px_mean": 5.5, "brand_new_stat": 7.0}, changepoints=(cp[0],)))
    server.publish(result(2, {"particle_count": 0.0, "width_px_mean": math.nan}, changepoints=(cp[1], cp[2])))
    table = ctx.get(P + "changepoints")
    assert list(table.value.frame) == [1, 2]  # the last changepoint_history rows
    assert list(table.value.statistics) == ["width_px_mean", "width_px_mean"]
    assert int(ctx.get(P + "changepoints_total")) == 3
    width = ctx.get(P + "width_px_mean")
    assert math.isnan(float(width)) and width.severity == 3  # undefined (no particles): INVALID
    assert float(ctx.get(P + "brand_new_stat")) == 7.0  # a statistic not known up front gets its PV
    assert ctx.get(P + "particle_count").timestamp == pytest.approx(1_700_000_002.5)
    particles = ctx.get(P + "particles")
    assert list(particles.value.length_px) == [8.0] and list(particles.value.touches_border) == [0.0]
    overlay = ctx.get(P + "overlay")
    assert overlay.shape == (8, 10, 3) and overlay[3, 5, 0] > overlay[3, 5, 1]  # mask pixels tinted red
    assert int(ctx.get(P + "frames_processed")) == 2


def test_minor_alarm_with_hysteresis_and_alert_pv(served: tuple[PvaServer, Any]) -> None:
    server, ctx = served
    severities = []
    for i, width in enumerate([3.0, 5.2, 4.8, 4.4, 1.9]):
        server.publish(result(i, {"width_px_mean": width}))
        v = ctx.get(P + "width_px_mean")
        severities.append((float(v), v.severity, v.raw.alarm.message))
    assert severities == [(3.0, 0, ""), (5.2, 1, "HIGH"), (4.8, 1, "HIGH"), (4.4, 0, ""), (1.9, 1, "LOW")]
    firing = Alert(name="Wide", state="firing", labels={}, annotations={"summary": "too wide"}, starts_at=time.time())
    server.post_alert(firing)
    v = ctx.get(P + "alert_Wide")
    assert (int(v), v.severity, v.raw.alarm.message) == (1, 2, "too wide")
    server.post_alert(Alert(name="Wide", state="resolved", labels={}, annotations={}, starts_at=firing.starts_at,
                            ends_at=time.time()))
    v = ctx.get(P + "alert_Wide")
    assert (int(v), v.severity) == (0, 0)
    wait_for(lambda: "running" in ctx.get(P + "status").raw.value, timeout=5, what="heartbeat")
