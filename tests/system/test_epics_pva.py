"""PV Access end to end: a real p4p server (the simulated IOC) -> the daemon -> the daemon's own PVs read by a
real p4p client. Loopback only, with free non-default ports per test (``EPICS_PVA_SERVER_PORT`` and
``EPICS_PVA_BROADCAST_PORT``), so parallel runs never collide."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("p4p", reason="p4p (the epics extra) is not installed")

from prometheus_client import CollectorRegistry

from wirewatch.config.daemon import DaemonConfig
from wirewatch.daemon.service import Daemon
from wirewatch.epics.config import EpicsConfig
from wirewatch.epics.daemon import PvaInput, PvaOutput
from wirewatch.epics.ntndarray import make_ntndarray
from wirewatch.epics.server import PvaServer
from wirewatch.epics.simulator import PvaSimulator
from wirewatch.epics.source import PvaSource
from wirewatch.publish.record import read_record
from wirewatch.types import FrameStats

from .helpers import rods

INPUT_PV = "TEST:cam1:Pva1:Image"
PREFIX = "TEST:WW:"


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pva_conf() -> dict[str, str]:
    """Loopback-only PVA settings with a free TCP server port and a free UDP search (broadcast) port."""
    tcp, udp = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    return {
        "EPICS_PVA_ADDR_LIST": "127.0.0.1", "EPICS_PVA_AUTO_ADDR_LIST": "NO",
        "EPICS_PVA_SERVER_PORT": str(tcp), "EPICS_PVA_BROADCAST_PORT": str(udp),
        "EPICS_PVAS_INTF_ADDR_LIST": "127.0.0.1", "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1",
        "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
    }


def rods16(i: int) -> np.ndarray:
    return rods(i).astype(np.uint16) * 200 + 100


def wait_for(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition", rig: Any = None) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            extra = "" if rig is None else (f": source {rig.source.stats()}, processed {rig.processed()}, "
                                            f"records {[r['frame'] for r in rig.records()]}")
            raise AssertionError(f"timed out waiting for {what}{extra}")
        time.sleep(0.05)


class Rig:
    """Simulated IOC + daemon (watershed) + PV server, all on private loopback ports."""

    def __init__(self, tmp_path: Path, *, policy: str = "queue", statistics: dict[str, Any] | None = None,
                 rules: list[dict[str, Any]] | None = None, changepoint: bool = False, segmenter: Any = None,
                 writers: list[dict[str, str]] | None = None) -> None:
        self.ioc_conf = pva_conf()
        self.out_conf = pva_conf()
        self.record = tmp_path / "record.jsonl"
        self.config = DaemonConfig.model_validate({
            "ingest": {"policy": policy, "buffer": 4},
            "segment": {"backend": "watershed"},
            "changepoint": {"enabled": changepoint},
            "alerts": {"rules": rules or [], "tick_interval_s": 0.2},
            "publish": {"zmq": None},
            "record": {"path": str(self.record), "fsync": "never"},
            "http": {"enabled": False},
            "pipeline": {"shutdown_timeout_s": 20},
        })
        self.input_epics = EpicsConfig.model_validate({
            "input": {"pv": INPUT_PV, "pixel_size_attribute": "PixelSizeNm", "monitor_queue": 64},
            "pva": self.ioc_conf})
        self.output_epics = EpicsConfig.model_validate({
            "server": {"prefix": PREFIX, "statistics": statistics or {}, "overlay_interval_s": 0.0},
            "pva": self.out_conf, "writers": writers if writers is not None else [{"host": "127.0.0.1"}]})
        self.registry = CollectorRegistry()
        self.input = PvaInput(self.input_epics)  # the daemon's extensions (wirewatch.extension)
        self.output = PvaOutput(self.output_epics, prefix=PREFIX)
        self.daemon = Daemon(self.config, registry=self.registry, segmenter=segmenter,
                             extensions=[self.input, self.output])
        assert isinstance(self.daemon.pipeline.source, PvaSource) and self.daemon.pipeline.source is self.input.made
        self.source: PvaSource = self.daemon.pipeline.source
        self.server: PvaServer = self.output.server

    def start(self) -> Rig:
        self.daemon.start()
        return self

    def records(self) -> list[dict[str, Any]]:
        return list(read_record(self.record)) if self.record.exists() else []

    def processed(self) -> int:
        return self.daemon.pipeline.processed

    def metric(self, name: str, **labels: str) -> float:
        v = self.registry.get_sample_value(name, labels or None)
        return 0.0 if v is None else v

    def close(self) -> None:
        self.daemon.stop()
        self.daemon.wait(30)  # and closes the PV server after the last frame

    def client(self) -> Any:
        from p4p.client.thread import Context

        return Context("pva", conf=self.out_conf, useenv=False)


@pytest.fixture
def rig_factory(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(**kw: Any) -> Rig:
        rig = Rig(tmp_path, **kw)
        made.append(rig)
        return rig.start()

    yield make
    for rig in made:
        rig.close()


def simulator(rig: Rig, images: Callable[[int], np.ndarray], n: int, *, codec: str = "none",
              first_id: int = 1, rate: float = 40.0) -> PvaSimulator:
    sim = PvaSimulator(None, pv=INPUT_PV, rate=rate, frames=n, codec=codec, first_id=first_id,
                       pva_conf=rig.ioc_conf, images=images, wait_for_client_s=20.0)
    sim.pixel_size_nm = 12.5
    return sim


@pytest.mark.parametrize(("images", "codec"), [(rods, "none"), (rods16, "none"), (rods16, "bslz4")],
                         ids=["uint8", "uint16", "uint16-bslz4"])
def test_n_updates_in_n_records_out_with_unique_ids(rig_factory: Callable[..., Rig],
                                                    images: Callable[[int], np.ndarray], codec: str) -> None:
    rig = rig_factory()
    n = 12
    sim = simulator(rig, images, n, codec=codec, first_id=101)
    try:
        sim.open()
        result = sim.run()
        assert result.frames_sent == n
        wait_for(lambda: rig.processed() >= n, what=f"{n} processed frames", rig=rig)
        time.sleep(0.3)
    finally:
        sim.close()
    records = rig.records()
    assert [r["frame"] for r in records] == list(range(101, 101 + n))
    assert all(r["stats"]["particle_count"] == (3 if (r["frame"] - 101) % 2 else 2) for r in records)
    assert rig.source.missed == 0
    assert rig.metric("wirewatch_frame_errors_total", kind="bad_shape") == 0
    # the pixel size attribute became the frames' pixel size (so nm statistics exist)
    assert records[0]["stats"].get("length_nm_mean") is not None


class Monitor:
    """A real p4p client monitor collecting every update of one PV (value, severity, time, message)."""

    def __init__(self, ctx: Any, name: str) -> None:
        self.updates: list[tuple[Any, int, float, str]] = []
        self._lock = threading.Lock()
        self.sub = ctx.monitor(name, self._on, request="record[queueSize=256]")

    def _on(self, v: Any) -> None:
        with self._lock:
            self.updates.append((v.real if hasattr(v, "real") else v, int(v.severity), float(v.timestamp),
                                 str(v.raw.alarm.message)))

    def values(self) -> list[tuple[Any, int, float, str]]:
        with self._lock:
            return list(self.updates)


def run_frames(rig: Rig, images: Callable[[int], np.ndarray], n: int, **kw: Any) -> None:
    sim = simulator(rig, images, n, **kw)
    try:
        sim.open()
        assert sim.run().frames_sent == n
        wait_for(lambda: rig.processed() >= n, what=f"{n} processed frames", rig=rig)
    finally:
        sim.close()


def test_statistic_pvs_carry_the_record_values_and_alarm_severities(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(statistics={"particle_count": {"high_alarm": 2.5, "description": "wires in view"}},
                      rules=[{"kind": "threshold", "name": "TooManyWires", "statistic": "particle_count",
                              "max": 2.5}])
    n = 6
    with rig.client() as ctx:
        count = Monitor(ctx, PREFIX + "particle_count")
        alert = Monitor(ctx, PREFIX + "alert_TooManyWires")
        wait_for(lambda: count.values() and alert.values(), what="PV connections")
        run_frames(rig, rods, n)
        wait_for(lambda: len(count.values()) >= n + 1 and len(alert.values()) >= n, what="PV updates")
        records = rig.records()
        assert len(records) == n
        # every processed frame posted its value with the frame's own time stamp
        posted = count.values()[1:]
        assert [v for v, *_ in posted] == [r["stats"]["particle_count"] for r in records]
        assert [t for _, _, t, _ in posted] == pytest.approx([r["time"] for r in records], abs=1e-6)
        # 3 wires is above high_alarm 2.5: MAJOR (HIHI); back to 2: NO_ALARM
        for value, severity, _, message in posted:
            assert (severity, message) == ((2, "HIHI") if value > 2.5 else (0, ""))
        assert {s for _, s, _, _ in posted} == {0, 2}
        # the alert rule's alarm PV: MAJOR while firing, NO_ALARM once resolved
        states = [(v, s) for v, s, _, _ in alert.values()[1:]]
        assert (1, 2) in states and (0, 0) in states
        assert states[-1] == ((1, 2) if records[-1]["stats"]["particle_count"] > 2.5 else (0, 0))
        # a one-shot read of a statistic gives the record's last value, with units and limits
        for name in ("particle_count", "length_px_mean", "coverage_fraction"):
            v = ctx.get(PREFIX + name)
            assert float(v) == pytest.approx(records[-1]["stats"][name])
        raw = ctx.get(PREFIX + "particle_count").raw
        assert raw.display.units == "particles" and raw.display.description == "wires in view"
        assert raw.valueAlarm.highAlarmLimit == 2.5 and raw.valueAlarm.active
        assert ctx.get(PREFIX + "length_px_mean").raw.display.units == "px"
        assert int(ctx.get(PREFIX + "frames_processed")) == n
        table = ctx.get(PREFIX + "particles")
        assert len(table.value.length_px) == records[-1]["stats"]["particle_count"]
        assert float(np.mean(table.value.length_px)) == pytest.approx(records[-1]["stats"]["length_px_mean"])
        overlay = ctx.get(PREFIX + "overlay")
        assert overlay.shape == (96, 96, 3)


class Recording:
    """An alert sink that keeps what it is sent (a pausable one, like Alertmanager or a webhook)."""

    name = "recording"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, alert: Any) -> None:
        self.sent.append((alert.name, alert.state))

    def close(self, timeout: float = 5.0) -> None:
        pass


def test_control_pvs_validate_writes_and_act(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(changepoint=True, rules=[{"kind": "no_frames", "name": "NoFrames", "after_s": 0.5}])
    publisher = rig.daemon.built.publisher
    assert publisher is not None
    recording = Recording()
    publisher.add_sink(recording)
    with rig.client() as ctx:
        wait_for(lambda: ctx.get(PREFIX + "status") is not None, what="status PV")
        # a time-based rule fires from the publisher's ticker, between frames: its alarm PV follows
        wait_for(lambda: int(ctx.get(PREFIX + "alert_NoFrames")) == 1, timeout=10, what="NoFrames firing")
        assert ctx.get(PREFIX + "alert_NoFrames").severity == 2
        assert recording.sent == [("NoFrames", "firing")]
        sinks = list(publisher.sinks)
        alarm = Monitor(ctx, PREFIX + "alert_NoFrames")
        ctx.put(PREFIX + "alerts_paused", 1)
        assert int(ctx.get(PREFIX + "alerts_paused")) == 1
        assert publisher.paused and publisher.sinks == sinks  # held back, not removed
        # while paused the alarm PV keeps following the rule (a frame resolves it, silence fires it again);
        # the other sinks are sent nothing
        publisher.publish(FrameStats(frame_id=1, time=time.time(), aggregates={}))
        wait_for(lambda: [v for v, *_ in alarm.values()][-2:] == [0, 1], timeout=10, what="resolved, firing again")
        assert recording.sent == [("NoFrames", "firing")]
        ctx.put(PREFIX + "alerts_paused", 0)
        assert not publisher.paused and publisher.sinks == sinks
        publisher.publish(FrameStats(frame_id=2, time=time.time(), aggregates={}))
        assert recording.sent == [("NoFrames", "firing"), ("NoFrames", "resolved")]  # sent again once resumed
        with pytest.raises(Exception, match="must be 0"):
            ctx.put(PREFIX + "alerts_paused", 7)
        assert int(ctx.get(PREFIX + "alerts_paused")) == 0
        ctx.put(PREFIX + "reset_changepoints", 1)
        assert rig.server.reset_requests == 1
        with pytest.raises(Exception, match="takes 1"):
            ctx.put(PREFIX + "reset_changepoints", -3)
        wait_for(lambda: ctx.get(PREFIX + "status").raw.value.startswith("running"), timeout=10, what="heartbeat")
        assert "disconnected" in ctx.get(PREFIX + "status").raw.value  # no IOC in this test


def bad_updates() -> list[tuple[str, Any]]:
    """(expected error kind, NTNDArray value) for each malformed update."""
    from p4p.nt import NTNDArray

    img = rods(0)
    out: list[tuple[str, Any]] = []
    v = make_ntndarray(img, unique_id=1001)
    v["dimension"] = [{"size": 97}, {"size": 96}]  # value length does not match the dimensions
    out.append(("bad_shape", v))
    v = make_ntndarray(img, unique_id=1002, codec="bslz4")
    v["codec.name"] = "jpeg"
    out.append(("unknown_codec", v))
    v = make_ntndarray(img.astype(np.uint16), unique_id=1003, codec="lz4")
    v["uncompressedSize"] = 96 * 96 * 4  # the announced size lies
    out.append(("size_lie", v))
    v = NTNDArray().wrap(img.astype(np.uint64))  # 64-bit unsigned: not a supported pixel type
    v["uniqueId"] = 1004
    out.append(("bad_dtype", v))
    return out


def test_malformed_updates_are_counted_and_skipped(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    bad = bad_updates()
    sequence: list[Any] = []
    for i, (_, value) in enumerate(bad):
        sequence += [make_ntndarray(rods(i), unique_id=10 * i + 1), value]
    sequence.append(make_ntndarray(rods(9), unique_id=99))
    sim = simulator(rig, rods, 1)
    try:
        sim.open()
        sim._clients.wait(20)
        for value in sequence:
            sim._pv.post(value)
            time.sleep(0.05)
        wait_for(lambda: rig.processed() >= len(bad) + 1, what="good frames", rig=rig)
        wait_for(lambda: sum(rig.metric("wirewatch_frame_errors_total", kind=k) for k, _ in bad) >= len(bad),
                 what="errors counted", rig=rig)
    finally:
        sim.close()
    for kind, _ in bad:
        assert rig.metric("wirewatch_frame_errors_total", kind=kind) == 1, kind
    assert [r["frame"] for r in rig.records()] == [1, 11, 21, 31, 99]


def test_ioc_restart_mid_stream_is_survived(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    run_frames(rig, rods, 4)
    wait_for(lambda: rig.source.disconnects == 1, what="the disconnect to be noticed", rig=rig)
    assert rig.metric("wirewatch_pva_disconnects_total") == 1
    # the IOC comes back on the same ports; its counter starts again at 1: a new series
    sim = simulator(rig, rods16, 5)
    try:
        sim.open()
        assert sim.run().frames_sent == 5
        wait_for(lambda: rig.processed() >= 9, what="frames after the restart", rig=rig)
    finally:
        sim.close()
    records = rig.records()
    assert [r["frame"] for r in records] == [1, 2, 3, 4, 1, 2, 3, 4, 5]
    assert records[0]["series"] != records[4]["series"]
    assert rig.metric("wirewatch_series_total") == 2
    assert rig.source.stats().reconnects == 1


def test_bench_body_measures_a_slow_rate_without_loss() -> None:
    from wirewatch.bench.pva import decode_cost, sustained

    cost = decode_cost("bslz4", repeats=5)
    assert cost.payload_bytes < 512 * 512 * 2 and cost.decode_median_ms > 0
    result = sustained("bslz4", 20.0, 10)
    assert (result.sent, result.received, result.decoded, result.missed, result.dropped) == (10, 10, 10, 0, 0)
    assert result.kept_up


class SlowSegmenter:
    """The watershed baseline plus a fixed delay: a segmenter slower than the detector."""

    name = "slow-watershed"

    def __init__(self, delay_s: float) -> None:
        from wirewatch.segment import load_segmenter

        self.inner = load_segmenter("watershed")
        self.delay_s = delay_s

    def segment(self, image: np.ndarray) -> Any:
        time.sleep(self.delay_s)
        return self.inner.segment(image)


def test_policy_latest_drops_old_frames_counted_and_keeps_the_newest(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(policy="latest", segmenter=SlowSegmenter(0.15))
    n = 30
    sim = simulator(rig, rods, n, rate=60.0)
    try:
        sim.open()
        assert sim.run().frames_sent == n
        def settled() -> bool:
            dropped = sum(rig.metric("wirewatch_frames_dropped_total", reason=r) for r in ("overflow", "superseded"))
            return rig.processed() + dropped + rig.source.missed >= n and rig.source.stats().buffered == 0
        wait_for(settled, what="every update processed or counted", rig=rig)
        time.sleep(0.5)
    finally:
        sim.close()
    ids = [r["frame"] for r in rig.records()]
    dropped = sum(rig.metric("wirewatch_frames_dropped_total", reason=r) for r in ("overflow", "superseded"))
    assert ids == sorted(ids) and ids[-1] == n  # the newest frame is always the one kept
    assert dropped > 0 and len(ids) < n
    assert len(ids) + dropped + rig.source.missed == n  # every update accounted for


def test_metrics_exposition_has_each_pva_metric_once(rig_factory: Callable[..., Rig]) -> None:
    from prometheus_client import generate_latest

    rig = rig_factory()
    other = PvaInput(rig.input_epics)  # a second input extension on the same source must not count it again
    assert rig.daemon.built.hooks is not None
    other.attach(rig.daemon.built.hooks)
    text = generate_latest(rig.registry).decode()
    assert text.count("wirewatch_pva_disconnects_total 0.0") == 1
    assert text.count("wirewatch_pva_missed_updates_total 0.0") == 1


def test_control_pvs_are_read_only_without_writers(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory(writers=[])
    with rig.client() as ctx:
        wait_for(lambda: ctx.get(PREFIX + "status") is not None, what="status PV")
        with pytest.raises(Exception, match="read-only for this client"):
            ctx.put(PREFIX + "alerts_paused", 1)
        assert int(ctx.get(PREFIX + "alerts_paused")) == 0
    assert rig.metric("wirewatch_pva_writes_refused_total", pv="alerts_paused") == 1
    assert rig.metric("wirewatch_pva_writes_refused_total", pv="reset_changepoints") == 0
    assert rig.metric("wirewatch_alert_sink_up", sink="pva") == 1
    assert rig.daemon.healthy()
