"""``wirewatch bench daemon``: sustained frames/s and frame-to-publish latency of the whole daemon.

A sender on loopback pushes 512 x 512 synthetic frames (array-1.0, uint8) at ``rate`` frames/s for
``seconds`` into a daemon built from the shipped config (policy ``latest``: the live setting) with
the chosen backend. Reported: frames processed per second once warm, latency from receipt of a
frame's message to its publication (p50/p99, processed frames only), frames dropped by the
overload policy. Run with ``rate`` above the daemon's capacity to measure its sustained rate.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wirewatch.config.daemon import load_daemon_config, shipped_config_path
from wirewatch.daemon.service import Daemon
from wirewatch.extension import FrameResult, Observer

TARGET_FPS = 3.0
TARGET_P99_S = 1.0


@dataclass(frozen=True)
class DaemonBench:
    backend: str
    model: str | None
    size: int
    rate: float
    seconds: float
    frames_sent: int
    frames_processed: int
    frames_dropped: int
    fps: float
    latency_p50_s: float
    latency_p99_s: float
    segment_p50_s: float
    particles_mean: float
    # p50 seconds per stage of the processed frames (decode, preprocess, segment, measure, changepoint,
    # publish) and ``waiting``: total latency minus those stages (raw buffer and queues).
    stages_p50_s: dict[str, float] = field(default_factory=dict)
    cpu_cores_used: float = float("nan")  # process CPU seconds per wall second in the window (sender included)
    cpu_s_per_frame: float = float("nan")
    load_average: tuple[float, float] = (float("nan"), float("nan"))  # 1-minute load at the start and the end
    options: dict[str, Any] = field(default_factory=dict)  # segment backend options used
    # backend ray: replicas that served frames, frames lost to errors (segment_failed ...), and Ray's own
    # share of the segment time (round trip minus the replica's queueing and inference), p50
    replicas: int | None = None
    frames_failed: int = 0
    ray_overhead_p50_s: float = float("nan")
    ray_startup_s: float = float("nan")  # Ray (embedded) + Serve + replicas ready, seconds
    # replicas segmenting at once on average over the window (their inference seconds / window): how many
    # replicas the serving kept busy, whatever the cores did
    replicas_busy: float = float("nan")

    @property
    def meets_target(self) -> bool:
        return self.fps >= TARGET_FPS and self.latency_p99_s < TARGET_P99_S


def bench_frames(size: int, count: int = 12, seed: int = 0) -> list[np.ndarray]:
    """Distinct synthetic frames (the paper's preset at ``size``), cycled by the sender."""
    from wirewatch.synth import generate, preset_config

    cfg = preset_config("ptychography", size)
    return [generate(cfg, seed=seed + i).image for i in range(count)]


def run_daemon_bench(backend: str | None, *, size: int = 512, rate: float = 10.0, seconds: float = 30.0,
                     warmup_s: float = 5.0, model: str | None = None, frames: list[np.ndarray] | None = None,
                     options: dict[str, Any] | None = None) -> DaemonBench:
    import zmq

    from wirewatch.ingest import encode_array10

    images = frames or bench_frames(size)
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 1000)
    push.setsockopt(zmq.LINGER, 0)
    push.bind("tcp://127.0.0.1:*")
    endpoint = push.getsockopt_string(zmq.LAST_ENDPOINT)
    overrides: dict[str, Any] = {
        "ingest": {"endpoint": endpoint, "format": "array-1.0", "policy": "latest", "socket": "pull",
                   "bind": False},
        "http": {"port": 0}, "record": {"path": None}, "alerts": {"sinks": [], "rules": []},
        "publish": {"zmq": None},
    }
    segment: dict[str, Any] = {}
    if backend is not None:
        segment["backend"] = backend
    if model is not None:
        segment["model"] = model
    if options:
        segment["options"] = dict(options)
    if segment:
        overrides["segment"] = segment
    path = shipped_config_path() if shipped_config_path().is_file() else None
    results: list[tuple[float, float, float, int, dict[str, float]]] = []  # published_at, latency, segment, n, timings
    lock = threading.Lock()
    cpu_marks: list[float] = []  # process CPU time when the measuring window opens
    busy_marks: list[float] = []  # backend ray: the replicas' summed inference seconds, same moments

    def on_result(r: FrameResult) -> None:
        with lock:
            results.append((r.published_at, r.latency_s, float(r.timings.get("segment", np.nan)), len(r.detections),
                            dict(r.timings)))

    daemon = Daemon(load_daemon_config(path, overrides=overrides), extensions=[Observer(on_result=on_result)])
    load_start = os.getloadavg()[0]
    daemon.start()
    sent = 0
    t0 = time.time()
    try:
        while time.time() - t0 < warmup_s + seconds:
            if not cpu_marks and time.time() - t0 >= warmup_s:
                cpu_marks.append(time.process_time())
                busy_marks.append(_busy_s(daemon))
            due = t0 + sent / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            push.send_multipart(encode_array10(sent, images[sent % len(images)], timestamp=time.time()))
            sent += 1
        cpu_marks.append(time.process_time())
        busy_marks.append(_busy_s(daemon))
        time.sleep(0.5)
    finally:
        daemon.stop()
        daemon.wait()
        push.close(0)
        ctx.term()
    window_start = t0 + warmup_s
    with lock:
        warm = [r for r in results if r[0] >= window_start]
    window = (warm[-1][0] - window_start) if warm else seconds
    stage_names = ("decode", "preprocess", "segment", "measure", "changepoint", "publish")
    stages = {name: float(np.median([r[4].get(name, 0.0) for r in warm])) if warm else float("nan")
              for name in stage_names}
    stages["waiting"] = float(np.median([r[4].get("total", r[1]) - sum(r[4].get(n, 0.0) for n in stage_names)
                                         for r in warm])) if warm else float("nan")
    cpu_s = cpu_marks[1] - cpu_marks[0] if len(cpu_marks) == 2 else float("nan")
    lat = np.array([r[1] for r in warm]) if warm else np.array([np.nan])
    seg = np.array([r[2] for r in warm]) if warm else np.array([np.nan])
    dropped = int(sum(daemon.registry.get_sample_value("wirewatch_frames_dropped_total", {"reason": r}) or 0
                      for r in ("overflow", "superseded")))
    failed = int(sum(m.value for metric in daemon.registry.collect() if metric.name == "wirewatch_frame_errors"
                     for m in metric.samples if m.name.endswith("_total")))
    seg_backend = daemon.built.segmenter
    replica_pids = getattr(seg_backend, "replica_pids", None)
    overheads = list(getattr(seg_backend, "overheads_s", []))
    return DaemonBench(
        backend=daemon.built.backend, model=daemon.built.model, size=size, rate=rate, seconds=seconds,
        frames_sent=sent, frames_processed=daemon.pipeline.processed, frames_dropped=dropped,
        fps=len(warm) / window if window > 0 else 0.0,
        latency_p50_s=float(np.nanpercentile(lat, 50)), latency_p99_s=float(np.nanpercentile(lat, 99)),
        segment_p50_s=float(np.nanpercentile(seg, 50)),
        particles_mean=float(np.mean([r[3] for r in warm])) if warm else float("nan"),
        stages_p50_s=stages, cpu_cores_used=cpu_s / seconds,
        cpu_s_per_frame=cpu_s / len(warm) if warm else float("nan"),
        load_average=(load_start, os.getloadavg()[0]), options=dict(options or {}),
        replicas=len(replica_pids) if replica_pids is not None else None, frames_failed=failed,
        ray_overhead_p50_s=float(np.median(overheads)) if overheads else float("nan"),
        ray_startup_s=float(getattr(seg_backend, "startup_s", float("nan"))),
        replicas_busy=(busy_marks[1] - busy_marks[0]) / seconds if len(busy_marks) == 2 else float("nan"))


def _busy_s(daemon: Daemon) -> float:
    """Seconds the ray backend's replicas spent segmenting so far (NaN for other backends)."""
    return float(getattr(daemon.built.segmenter, "busy_s", float("nan")))
