"""Ray's own cost per frame: the ``ray`` backend against the in-process onnxruntime backend.

``python -m wirewatch.bench.ray_overhead [--size 512] [--frames 20] [--threads 1]``

One replica with ``threads`` onnxruntime threads (embedded local Ray) and an in-process
``OnnxSegmenter`` with the same threads segment the same frames one at a time, alternately. Reported:

- wall: per-frame round trip of the ray backend, the in-process segment time, and Ray's share of the
  round trip (round trip minus the replica's queueing and inference, as the replica reports them), and
  that share in parts: the request's way to the replica (Serve's routing, the frame through the object
  store), packing the masks in the replica, the reply's way back, unpacking them here;
- CPU: CPU seconds per frame of every process of the local Ray (GCS, raylet, Serve controller,
  replica) plus this process, minus the replica's inference CPU and minus what those processes use
  idle over the same time (heartbeats, polling). CPU time hardly depends on what else the machine
  runs; the wall figures do (on a loaded machine they include waiting for a core).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np


def _tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    tick = os.sysconf("SC_CLK_TCK")
    total, todo, seen = 0.0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        total += (int(stats[pid][11]) + int(stats[pid][12])) / tick  # utime, stime
        todo.extend(children.get(pid, []))
    return total


def run_ray_overhead_bench(size: int = 512, frames: int = 20, threads: int = 1,
                           replica_env: dict[str, str] | None = None) -> dict[str, Any]:
    from wirewatch.bench.daemon import bench_frames
    from wirewatch.segment import load_segmenter

    images = [f.astype(np.float32) / 255.0 for f in bench_frames(size, count=min(frames, 12))]
    local = load_segmenter("onnxruntime", model="default", threads=threads)
    t0 = time.monotonic()
    ray_seg: Any = load_segmenter("ray", model="default", replicas=1, threads=threads, max_in_flight=1,
                                  replica_env=replica_env)
    startup_s = time.monotonic() - t0
    try:
        for img in images[:3]:  # warm both
            ray_seg.segment(img)
            local.segment(img)
        ray_seg.overheads_s.clear()
        ray_seg.phases_s.clear()
        me = os.getpid()
        # idle: what the Ray processes use doing nothing, over about the time the measurement takes
        est = 0.0
        for img in images[:2]:
            t = time.perf_counter()
            ray_seg.segment(img)
            est += time.perf_counter() - t
        idle_window = est / 2 * frames
        c0, w0 = _tree_cpu_s(me), time.monotonic()
        time.sleep(idle_window)
        idle_cpu_per_s = (_tree_cpu_s(me) - c0) / (time.monotonic() - w0)
        rtt, inproc, infer_cpu = [], [], 0.0
        busy_cpu, busy_wall = 0.0, 0.0
        for i in range(frames):
            img = images[i % len(images)]
            c, w = _tree_cpu_s(me), time.monotonic()
            t = time.perf_counter()
            packed_before = len(ray_seg.overheads_s)
            ray_seg.segment(img)
            rtt.append(time.perf_counter() - t)
            busy_cpu += _tree_cpu_s(me) - c
            busy_wall += time.monotonic() - w
            assert len(ray_seg.overheads_s) == packed_before + 1
            infer_cpu += ray_seg.last_infer_cpu_s
            t = time.perf_counter()
            local.segment(img)
            inproc.append(time.perf_counter() - t)
        overhead_cpu = (busy_cpu - idle_cpu_per_s * busy_wall - infer_cpu) / frames
        return {
            "size": size, "frames": frames, "threads": threads, "startup_s": startup_s,
            "ray_round_trip_p50_ms": float(np.median(rtt)) * 1e3,
            "in_process_p50_ms": float(np.median(inproc)) * 1e3,
            "difference_p50_ms": (float(np.median(rtt)) - float(np.median(inproc))) * 1e3,
            "ray_share_of_round_trip_p50_ms": float(np.median(ray_seg.overheads_s)) * 1e3,
            # the share in parts (medians of each, so they need not add up to the share's median exactly)
            **{f"{name}_p50_ms": float(v) * 1e3 for name, v in
               zip(("to_replica", "packing", "from_replica", "unpacking"), np.median(ray_seg.phases_s, axis=0),
                   strict=True)},
            "ray_overhead_cpu_ms_per_frame": overhead_cpu * 1e3,
            "replica_inference_cpu_ms_per_frame": infer_cpu / frames * 1e3,
            "idle_ray_cpu_cores": idle_cpu_per_s,
            "load_average": os.getloadavg()[0],
        }
    finally:
        ray_seg.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--replica-env", action="append", default=None, metavar="KEY=VALUE",
                        help="a replica process's environment instead of the backend's default (repeatable; "
                             "--replica-env '' for Serve's own defaults)")
    args = parser.parse_args()
    env = None if args.replica_env is None else dict(kv.split("=", 1) for kv in args.replica_env if kv)
    print(json.dumps(run_ray_overhead_bench(args.size, args.frames, args.threads, env), indent=1))


if __name__ == "__main__":
    main()
