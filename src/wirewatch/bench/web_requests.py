"""Requests/s and latency of the HTTP port: ``wirewatch bench web --requests``.

An ``HttpServer`` with the web view (no stream; a ``LiveState`` holding a few hundred records) in this
process, and ``concurrency`` keep-alive clients in a separate process (so the clients' CPU does not count as
the server's) sending GET requests to one path as fast as answers come back for ``seconds``. Uses only
``HttpServer`` / ``WebApp`` / ``LiveState`` public surface, so the same module measures any version of the
server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

CLIENT = r"""
import http.client, json, sys, threading, time
host, port, path, seconds, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
lat, errors, lock = [], [0], threading.Lock()
start = threading.Barrier(n + 1)
def run():
    conn = http.client.HTTPConnection(host, port, timeout=10)
    mine, bad = [], 0
    start.wait()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        try:
            conn.request("GET", path, headers={"Host": "127.0.0.1"})
            resp = conn.getresponse(); resp.read()
            if resp.status != 200: bad += 1
        except Exception:
            bad += 1; conn.close(); conn = http.client.HTTPConnection(host, port, timeout=10); continue
        mine.append(time.perf_counter() - t0)
    with lock:
        lat.extend(mine); errors[0] += bad
ts = [threading.Thread(target=run) for _ in range(n)]
[t.start() for t in ts]
start.wait(); t0 = time.monotonic()
[t.join() for t in ts]
print(json.dumps({"seconds": time.monotonic() - t0, "latencies": lat, "errors": errors[0]}))
"""


@dataclass(frozen=True)
class RequestBench:
    path: str
    concurrency: int
    seconds: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    server_cpu_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "concurrency": self.concurrency, "seconds": self.seconds,
                "requests": self.requests, "errors": self.errors, "requests_per_s": self.rate,
                "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "server_cpu_ms_per_request":
                1e3 * self.server_cpu_s / max(self.requests, 1)}


def _fake_record(i: int) -> Any:
    """What ``LiveState.observe`` reads of a processed frame (``wirewatch.web.live.ResultLike``)."""
    from types import SimpleNamespace

    import numpy as np

    from wirewatch.types import Detections, Frame, FrameStats

    image = np.zeros((4, 4), np.float32)
    return SimpleNamespace(
        frame=Frame(frame_id=i, image=image, time=float(i), series_id="bench"),
        stats=FrameStats(frame_id=i, time=float(i), aggregates={"particle_count": float(i % 7),
                                                                 "coverage_fraction": 0.1}),
        changepoints=(), image=image, detections=Detections.empty((4, 4)), alerts=())


def run_request_bench(*, paths: tuple[str, ...] = ("/api/status", "/metrics", "/api/series?stat=particle_count"),
                      concurrency: int = 8, seconds: float = 10.0) -> list[RequestBench]:
    from prometheus_client import CollectorRegistry

    from wirewatch.web import HttpServer, LiveState, WebApp

    state = LiveState(history=500)
    for i in range(300):
        state.observe(_fake_record(i))
    server = HttpServer(CollectorRegistry(), port=0, app=WebApp(state))
    out = []
    try:
        for path in paths:
            cpu0 = time.process_time()
            proc = subprocess.run([sys.executable, "-c", CLIENT, server.host, str(server.port), path, str(seconds),
                                   str(concurrency)], capture_output=True, text=True, timeout=seconds + 60, check=True)
            cpu = time.process_time() - cpu0
            got = json.loads(proc.stdout)
            lat = sorted(got["latencies"])
            out.append(RequestBench(path=path, concurrency=concurrency, seconds=got["seconds"], requests=len(lat),
                                    errors=got["errors"], p50_ms=_quantile_ms(lat, 0.5),
                                    p99_ms=_quantile_ms(lat, 0.99), server_cpu_s=cpu))
    finally:
        server.close()
    return out


def _quantile_ms(sorted_s: list[float], q: float) -> float:
    return 1e3 * sorted_s[min(len(sorted_s) - 1, int(q * len(sorted_s)))] if sorted_s else float("nan")
