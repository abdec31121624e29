"""PV Access end to end: a real p4p server (the simulated IOC) -> the daemon -> the daemon's own PVs read by a
real p4p client. Loopback only, with free non-default ports per test (``EPICS_PVA_SERVER_PORT`` and
``EPICS_PVA_BROADCAST_PORT``), so parallel runs never collide."""

from __future__ import annotations

import socket
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
from wirewatch.epics.daemon import attach_epics, make_pva_source
from wirewatch.epics.server import PvaServer
from wirewatch.epics.simulator import PvaSimulator
from wirewatch.publish.record import read_record

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


def rods(i: int, size: int = 96) -> np.ndarray:
    """uint8 frame: 2 bright rods, a third one on odd frames."""
    img = np.zeros((size, size), np.uint8)
    img[10 + i % 5:16 + i % 5, 8:70] = 200
    img[30:90, 60 + i % 3:66 + i % 3] = 180
    if i % 2:
        img[70:76, 5:40] = 220
    return img


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
                 rules: list[dict[str, Any]] | None = None, changepoint: bool = False) -> None:
        self.ioc_conf = pva_conf()
        self.out_conf = pva_conf()
        self.record = tmp_path / "record.jsonl"
        self.config = DaemonConfig.model_validate({
            "ingest": {"policy": policy, "buffer": 4},
            "segment": {"backend": "watershed"},
            "changepoint": {"enabled": changepoint},
            "alerts": {"zmq": None, "rules": rules or []},
            "record": {"path": str(self.record), "fsync": "never"},
            "http": {"enabled": False},
            "pipeline": {"shutdown_timeout_s": 20},
        })
        self.input_epics = EpicsConfig.model_validate({
            "input": {"pv": INPUT_PV, "pixel_size_attribute": "PixelSizeNm", "monitor_queue": 64},
            "pva": self.ioc_conf})
        self.output_epics = EpicsConfig.model_validate({
            "server": {"prefix": PREFIX, "statistics": statistics or {}, "overlay_interval_s": 0.0},
            "pva": self.out_conf})
        self.registry = CollectorRegistry()
        self.source = make_pva_source(self.config, self.input_epics)
        self.daemon = Daemon(self.config, registry=self.registry, source=self.source)
        attach_epics(self.daemon, self.input_epics)  # input metrics
        self.server: PvaServer | None = attach_epics(self.daemon, self.output_epics, pv_prefix=PREFIX)

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
        self.daemon.wait(30)
        if self.server is not None:
            self.server.close()

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
