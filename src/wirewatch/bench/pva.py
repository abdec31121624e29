"""Benchmark of the PV Access input (``wirewatch bench pva``).

1. Decode cost per 512 x 512 uint16 frame: ``pack_update`` (what the monitor thread does with the
   received ``p4p.Value``) plus ``NTNDArrayDecoder.decode`` (the segment thread's part), uncompressed and
   bslz4, median and p90 over ``repeats``.
2. Sustained update rate: a real p4p server (the simulator's ``SharedPV``) posts ``frames`` updates at a
   fixed rate to a real ``PvaSource`` over loopback; a consumer thread decodes every message it gets
   (no segmentation: this measures the input alone). A rate is *kept up with* when every update was
   received (no ``uniqueId`` gap), none was dropped by the ``latest`` buffer, and all were decoded.
   Rates are tried in increasing order; the highest one kept up with is reported.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from wirewatch.epics.config import EpicsInputConfig
from wirewatch.epics.ntndarray import NTNDArrayDecoder, make_ntndarray, pack_update

SIZE = 512
WARMUP = 5


@dataclass(frozen=True)
class DecodeCost:
    codec: str
    payload_bytes: int
    pack_ms: float  # monitor thread: Value -> raw message
    decode_median_ms: float  # segment thread: raw message -> Frame
    decode_p90_ms: float


@dataclass(frozen=True)
class RateResult:
    codec: str
    target_hz: float
    sent: int
    received: int
    decoded: int
    missed: int
    dropped: int
    achieved_hz: float

    @property
    def kept_up(self) -> bool:
        return self.missed == 0 and self.dropped == 0 and self.decoded == self.sent


def test_image(i: int = 0) -> np.ndarray:
    """512 x 512 uint16 with a little structure (so bslz4 compresses like a real detector frame)."""
    rng = np.random.default_rng(i)
    img = rng.poisson(40, size=(SIZE, SIZE)).astype(np.uint16)
    img[100:110, 50:400] += 3000
    img[200:460, 300:312] += 2500
    return img


def decode_cost(codec: str, repeats: int = 100) -> DecodeCost:
    value = make_ntndarray(test_image(), unique_id=1, codec=codec)
    decoder = NTNDArrayDecoder()
    pack_t, dec_t = [], []
    parts = pack_update(value)
    for i in range(repeats):
        t0 = time.perf_counter()
        parts = pack_update(value)
        t1 = time.perf_counter()
        decoder.decode(parts)
        t2 = time.perf_counter()
        if i:  # the first one warms caches and imports
            pack_t.append(t1 - t0)
            dec_t.append(t2 - t1)
    return DecodeCost(codec=codec, payload_bytes=len(parts[1]), pack_ms=float(np.median(pack_t)) * 1e3,
                      decode_median_ms=float(np.median(dec_t)) * 1e3,
                      decode_p90_ms=float(np.percentile(dec_t, 90)) * 1e3)


def loopback_conf() -> dict[str, str]:
    ports = []
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            ports.append(str(s.getsockname()[1]))
    return {"EPICS_PVA_ADDR_LIST": "127.0.0.1", "EPICS_PVA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_SERVER_PORT": ports[0], "EPICS_PVA_BROADCAST_PORT": ports[1],
            "EPICS_PVAS_INTF_ADDR_LIST": "127.0.0.1", "EPICS_PVAS_BEACON_ADDR_LIST": "127.0.0.1",
            "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO"}


def sustained(codec: str, rate_hz: float, frames: int, *, buffer: int = 2, monitor_queue: int = 4) -> RateResult:
    """Post ``frames`` updates at ``rate_hz`` and count what the input received, dropped and decoded."""
    from wirewatch.epics.simulator import PvaSimulator
    from wirewatch.epics.source import PvaSource

    conf = loopback_conf()
    pv = "BENCH:cam1:Pva1:Image"
    images = [test_image(i) for i in range(4)]
    # pre-built values: the simulator's own encoding cost must not limit the rate measured
    values = [make_ntndarray(images[i % 4], unique_id=i + 1, codec=codec) for i in range(min(frames, 64))]
    sim = PvaSimulator(None, pv=pv, rate=0, frames=1, codec="none", pva_conf=conf, images=lambda i: images[0])
    sim.open()
    source = PvaSource(EpicsInputConfig(pv=pv, monitor_queue=monitor_queue), policy="latest", buffer=buffer,
                       pva_conf=conf)
    decoded = 0
    stop = threading.Event()

    def consume() -> None:
        nonlocal decoded
        decoder = NTNDArrayDecoder()
        while not stop.is_set() or source.stats().buffered:
            msg = source.get(timeout=0.05)
            if msg is not None:
                decoder.decode(msg.parts, msg.received_at)
                decoded += 1

    consumer = threading.Thread(target=consume, daemon=True)
    try:
        source.start()
        if not sim._clients.wait(10):
            raise RuntimeError("the PVA input did not connect to the benchmark server")
        consumer.start()
        # warm-up (connection, first allocations), not counted
        for i in range(WARMUP):
            value = values[i % len(values)]
            value["uniqueId"] = i + 1
            sim._pv.post(value)
            time.sleep(0.02)
        _wait(lambda: source.stats().received >= WARMUP and source.stats().buffered == 0, 5.0)
        base, base_missed, base_decoded = source.stats(), source.missed, decoded
        period = 1.0 / rate_hz
        t0 = time.perf_counter()
        for i in range(frames):
            delay = t0 + i * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            value = values[i % len(values)]
            value["uniqueId"] = WARMUP + i + 1
            sim._pv.post(value)
        sent_s = time.perf_counter() - t0
        _wait(lambda: (source.stats().received - base.received + source.missed - base_missed >= frames
                       and source.stats().buffered == 0), 5.0)
        time.sleep(0.1)
        stop.set()
        consumer.join(5.0)
        st = source.stats()
        received = st.received - base.received
        missed = source.missed - base_missed
        missed += max(0, frames - received - missed)  # losses at the very end leave no later id to show them
        dropped = sum(st.dropped.values()) - sum(base.dropped.values())
        return RateResult(codec=codec, target_hz=rate_hz, sent=frames, received=received,
                          decoded=decoded - base_decoded, missed=missed, dropped=dropped, achieved_hz=frames / sent_s)
    finally:
        stop.set()
        source.close()
        sim.close()


def _wait(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)


def sweep(codec: str, rates: Sequence[float], seconds: float = 3.0,
          progress: Callable[[RateResult], None] | None = None) -> list[RateResult]:
    """Each rate for about ``seconds``; stops after the second rate in a row not kept up with."""
    out: list[RateResult] = []
    failures = 0
    for rate in rates:
        res = sustained(codec, rate, max(20, int(rate * seconds)))
        out.append(res)
        if progress is not None:
            progress(res)
        failures = 0 if res.kept_up else failures + 1
        if failures >= 2:
            break
    return out
