"""Drain throughput: how many raw messages per second one ``ZmqSource`` takes off a PUSH socket.

A sender process (so it does not share our GIL) binds PUSH on loopback and sends
``count`` copies of one encoded Stream V2 image as fast as it can; the source
(PULL, policy ``latest``, no consumer) drains them into its bounded buffer.
The figure is messages received per second between the first and the last
message, and the check is the exact accounting ``received == dropped + buffered``.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from wirewatch.ingest.config import IngestConfig
from wirewatch.ingest.encode import encode_stream2_image
from wirewatch.ingest.zmq_source import ZmqSource


@dataclass(frozen=True)
class DrainTiming:
    name: str
    message_bytes: int
    count: int
    seconds: float
    received: int
    dropped: int
    buffered: int

    @property
    def messages_per_s(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else float("nan")

    @property
    def exact(self) -> bool:
        return self.received == self.count == self.dropped + self.buffered


def _sender(body: bytes, count: int, port_queue: Any, go: Any) -> None:
    import zmq

    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 1000)
    port_queue.put(push.bind_to_random_port("tcp://127.0.0.1"))
    go.wait(30)
    for _ in range(count):
        push.send(body)
    push.close(linger=30_000)
    ctx.term()


def time_drain(name: str, body: bytes, count: int) -> DrainTiming:
    spawn = mp.get_context("spawn")
    ports: Any = spawn.Queue()
    go = spawn.Event()
    proc = spawn.Process(target=_sender, args=(body, count, ports, go), daemon=True)
    proc.start()
    port = ports.get(timeout=60)
    cfg = IngestConfig(endpoint=f"tcp://127.0.0.1:{port}", format="stream2", policy="latest", buffer=2, hwm=1000,
                       max_message_bytes=max(1024, 2 * len(body)))
    source = ZmqSource(cfg)
    source.start()
    try:
        time.sleep(0.3)  # connected before the clock starts
        go.set()
        first: float | None = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            received = source.stats().received
            if first is None and received > 0:
                first = time.perf_counter()
            if received >= count:
                break
            time.sleep(0.01)
        elapsed = time.perf_counter() - (first or time.perf_counter())
        stats = source.stats()
    finally:
        source.close()
        proc.join(10)
    return DrainTiming(name=name, message_bytes=len(body), count=count, seconds=elapsed, received=stats.received,
                       dropped=sum(stats.dropped.values()), buffered=stats.buffered)


def run_drain_bench(count: int = 20_000) -> list[DrainTiming]:
    rng = np.random.default_rng(0)
    small = encode_stream2_image(0, rng.poisson(1.0, (96, 96)).astype(np.uint16), compression="bslz4")[0]
    frame = encode_stream2_image(0, rng.poisson(2.0, (514, 1030)).astype(np.uint16), compression="bslz4")[0]
    return [time_drain("ARINA-like 96 x 96 uint16 bslz4", small, count),
            time_drain("EIGER2 500K-like 514 x 1030 uint16 bslz4", frame, max(200, count // 20))]
