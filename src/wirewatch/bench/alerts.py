"""Benchmark bodies for ``wirewatch bench alerts``.

- ``publish``: the pipeline's per-frame cost of ``Publisher.publish`` (rules + ZeroMQ ``stats`` and
  ``changepoint`` topics to a connected SUB), with a change point every 50 frames; target < 1 ms.
- ``webhook send``: what ``send`` costs the caller per alert (one atomic, fsynced spool file).
- ``webhook delivery``: alerts per second from the spool to a local stdlib HTTP receiver (loopback).
"""

from __future__ import annotations

import math
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TARGET_PUBLISH_MS = 1.0


@dataclass(frozen=True)
class AlertsBenchResult:
    name: str
    unit: str
    median: float
    p99: float
    n: int
    target: float | None = None

    @property
    def meets_target(self) -> bool | None:
        return None if self.target is None else self.p99 <= self.target


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _stats(i: int) -> dict[str, float]:
    base = {"particle_count": 12.0 + (i % 3), "coverage_fraction": 0.2, "orientation_mean_deg": 45.0,
            "orientation_order": 0.3}
    for d in ("area_px", "length_px", "width_px", "aspect_ratio", "od_mean", "overlap_fraction"):
        for s in ("mean", "median", "p10", "p90"):
            base[f"{d}_{s}"] = 10.0 + (i % 7)
    return base


def bench_publish(frames: int, progress: Callable[[int], None] | None = None) -> AlertsBenchResult:
    import zmq
    from prometheus_client import CollectorRegistry

    from wirewatch.publish import AlertsConfig, build_publisher
    from wirewatch.publish.config import ZmqPublishConfig
    from wirewatch.types import ChangePoint, FrameStats

    config = AlertsConfig.model_validate({
        "rules": [
            {"kind": "changepoint", "name": "Changed", "min_severity": "warning"},
            {"kind": "threshold", "name": "CountLow", "statistic": "particle_count", "min": 5, "for_frames": 10},
            {"kind": "threshold", "name": "Width", "statistic": "width_px_mean", "min": 3, "max": 40},
            {"kind": "no_frames", "name": "NoFrames", "after_s": 60},
        ],
    })
    context = zmq.Context()
    publisher = build_publisher(config, CollectorRegistry(), zmq_config=ZmqPublishConfig(bind="tcp://127.0.0.1:*"),
                                context=context)
    assert publisher.zmq is not None
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(publisher.zmq.endpoint)
    received = 0
    stop = threading.Event()

    def drain() -> None:
        nonlocal received
        while not stop.is_set():
            if sub.poll(50):
                sub.recv_multipart()
                received += 1

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    times: list[float] = []
    try:
        now = time.time()
        for i in range(frames):
            cps = []
            if i % 50 == 49:
                cps = [ChangePoint(frame=i - 10, detected_at=i, statistics=("length_px_mean",),
                                   before={"length_px_mean": 10.0}, after={"length_px_mean": 20.0},
                                   effect_size=4.0, detector="binseg")]
            stats = FrameStats(i, now + i, _stats(i))
            t0 = time.perf_counter()
            publisher.publish(stats, cps, now=now + i)
            times.append(time.perf_counter() - t0)
            if progress is not None:
                progress(1)
    finally:
        stop.set()
        drainer.join(2)
        sub.close(0)
        publisher.close(1)
        context.term()
    ms = [t * 1e3 for t in times]
    return AlertsBenchResult("publish per frame (4 rules, ZeroMQ stats to 1 SUB)", "ms",
                             statistics.median(ms), _percentile(ms, 0.99), len(ms), TARGET_PUBLISH_MS)


class _Receiver:
    def __init__(self) -> None:
        self.count = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.count += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def bench_webhook(alerts: int, spool_root: Path | None = None,
                  progress: Callable[[int], None] | None = None) -> list[AlertsBenchResult]:
    from prometheus_client import CollectorRegistry

    from wirewatch.publish.config import WebhookSinkConfig
    from wirewatch.publish.metrics import AlertMetrics
    from wirewatch.publish.sinks.webhook import WebhookSink
    from wirewatch.types import Alert

    receiver = _Receiver()
    with tempfile.TemporaryDirectory(dir=spool_root) as tmp:
        config = WebhookSinkConfig(type="webhook", url=receiver.url, spool_dir=Path(tmp) / "spool")
        sink = WebhookSink(config, metrics=AlertMetrics.on(CollectorRegistry()))
        send_ms: list[float] = []
        try:
            started = time.perf_counter()
            for i in range(alerts):
                alert = Alert(name="Bench", state="firing", labels={"n": str(i)}, annotations={"summary": "x"},
                              starts_at=1.7e9 + i)
                t0 = time.perf_counter()
                sink.send(alert)
                send_ms.append((time.perf_counter() - t0) * 1e3)
                if progress is not None:
                    progress(1)
            sink.flush(120)
            elapsed = time.perf_counter() - started
        finally:
            sink.close(5)
            receiver.close()
    delivered = receiver.count
    rate = delivered / elapsed if elapsed > 0 else float("nan")
    return [
        AlertsBenchResult("webhook send (spool write + fsync)", "ms", statistics.median(send_ms),
                          _percentile(send_ms, 0.99), len(send_ms)),
        AlertsBenchResult(f"webhook spool + delivery to a loopback receiver ({delivered}/{alerts} delivered)", "alerts/s",
                          rate, rate, delivered),
    ]
