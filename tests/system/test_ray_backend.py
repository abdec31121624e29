"""The ``ray`` segmenter backend against a real local Ray: order under concurrency, the latest / queue
policies, a replica killed mid-stream, and a clean shutdown of the embedded Ray of ``wirewatch run``.

One local Ray (2 CPUs) and one Serve deployment of 2 watershed replicas are shared by the daemon tests
(module fixture): each daemon built with ``segment.backend: ray`` finds the application running and uses
it. The shutdown test runs first, on its own embedded Ray (a ``wirewatch run`` process, the onnxruntime
replicas of the default)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
import zmq

from wirewatch.config.daemon import DaemonConfig
from wirewatch.daemon.service import Daemon
from wirewatch.ingest import encode_array10
from wirewatch.publish.record import read_record
from wirewatch.segment import load_segmenter
from wirewatch.stats import measure

from .helpers import bind_push, daemon_config, last_endpoint, rods, wait_for

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

APP = "wirewatch-test-segment"


def frame(i: int) -> np.ndarray:
    """Alternately large and small frames: a small one sent after a large one finishes first on the other
    replica, so results come back out of order and the daemon must put them back in order."""
    return rods(i, size=320 if i % 2 == 0 else 96)


def expected_counts(ids: list[int]) -> dict[int, float]:
    """Particle count of each frame segmented in process by the replicas' own segmenter (watershed)."""
    ws = load_segmenter("watershed")
    out = {}
    for i in ids:
        img = frame(i).astype(np.float32) / 255.0
        out[i] = measure(ws.segment(img), img).aggregates["particle_count"]
    return out


def ray_config(tmp_path: Path, endpoint: str, policy: str, **segment: Any) -> DaemonConfig:
    return daemon_config(endpoint, "array-1.0", ingest={"policy": policy},
                         segment={"backend": "ray", "options": {"app_name": APP, "inner": "watershed",
                                                                "replicas": 2, "max_in_flight": 4, **segment}},
                         changepoint={"enabled": False}, http={"port": 0, "web": {"enabled": False}},
                         record={"path": str(tmp_path / "record.jsonl"), "fsync": "never"},
                         pipeline={"shutdown_timeout_s": 20})


def counter(daemon: Daemon, name: str, **labels: str) -> float:
    return daemon.registry.get_sample_value(name, labels or None) or 0.0


def dropped(daemon: Daemon) -> float:
    return sum(counter(daemon, "wirewatch_frames_dropped_total", reason=r) for r in ("overflow", "superseded"))


def readyz(daemon: Daemon) -> bool:
    assert daemon.http is not None
    try:
        with urllib.request.urlopen(daemon.http.url + "/readyz", timeout=2) as resp:
            return resp.status == 200
    except urllib.error.HTTPError:
        return False


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc: no psutil here)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- runs first: its own embedded Ray in a `wirewatch run` process ---------------------------------------
def test_embedded_ray_starts_segments_with_onnxruntime_and_leaves_no_process_behind(tmp_path: Path) -> None:
    from wirewatch.bench.daemon import bench_frames

    ctx = zmq.Context()
    push = bind_push(ctx)
    record = tmp_path / "record.jsonl"
    cfg = {"ingest": {"endpoint": last_endpoint(push), "format": "array-1.0", "policy": "queue"},
           # scale none: the frames reach the replica as given, so the in-process result below is comparable
           "segment": {"backend": "ray", "options": {"replicas": 1, "threads": 1, "num_cpus": 1, "scale": "none",
                                                     "polarity": "bright"}},
           "changepoint": {"enabled": False}, "http": {"port": 0, "web": {"enabled": False}},
           "publish": {"zmq": None}, "record": {"path": str(record), "fsync": "never"}}
    (tmp_path / "ray.yaml").write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.Popen([sys.executable, "-m", "wirewatch", "run", "--config", str(tmp_path / "ray.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    images = bench_frames(128, count=3)
    try:
        t0 = time.monotonic()
        for i in range(3):
            push.send_multipart(encode_array10(i, images[i]))
        wait_for(lambda: record.is_file() and len(read_record(record)) == 3, timeout=120,
                 what="3 records from the ray backend")
        startup = time.monotonic() - t0
        ray_procs = descendants(proc.pid)
        assert len(ray_procs) >= 3  # at least GCS, raylet, a replica
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        push.close(0)
        ctx.term()
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    wait_for(lambda: not any(alive(p) for p in ray_procs), timeout=20, what="Ray's processes to exit")
    lines = read_record(record)
    assert [line["frame"] for line in lines] == [0, 1, 2]
    onnx = load_segmenter("onnxruntime", model="default", threads=1)  # the replicas' segmenter, in process
    for line, img in zip(lines, images, strict=True):
        image = img.astype(np.float32) / 255.0
        assert line["stats"]["particle_count"] == measure(onnx.segment(image), image).aggregates["particle_count"]
    print(f"embedded Ray: first 3 frames recorded {startup:.1f} s after the daemon was started")


# -- one shared local Ray and deployment for the rest ------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="wirewatch",
             object_store_memory=128 * 1024 * 1024)
    try:
        seg = load_segmenter("ray", app_name=APP, inner="watershed", replicas=2)
        seg.close()  # the application stays: every daemon below uses it as it is
        yield ray
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture
def push() -> Iterator[zmq.Socket]:
    ctx = zmq.Context()
    sock = bind_push(ctx)
    yield sock
    sock.close(0)
    ctx.term()


def test_results_in_frame_order_under_concurrency(ray_cluster: Any, push: zmq.Socket, tmp_path: Path) -> None:
    n = 30
    daemon = Daemon(ray_config(tmp_path, last_endpoint(push), "queue")).start()
    try:
        for i in range(n):
            push.send_multipart(encode_array10(i, frame(i)))
        wait_for(lambda: daemon.pipeline.processed == n, timeout=60, what=f"{n} frames processed")
        assert daemon.pipeline._window is not None
        window_peak = daemon.pipeline._window.peak_in_flight
        seg = daemon.built.segmenter
    finally:
        assert daemon.close()
    lines = read_record(tmp_path / "record.jsonl")
    assert [line["frame"] for line in lines] == list(range(n))
    expected = expected_counts(list(range(n)))
    assert [line["stats"]["particle_count"] for line in lines] == [expected[i] for i in range(n)]
    assert len(seg.replica_pids) == 2  # both replicas served frames
    assert window_peak >= 2  # several frames were in flight at once


def test_queue_policy_processes_every_frame_latest_drops_and_counts(ray_cluster: Any, push: zmq.Socket,
                                                                     tmp_path: Path) -> None:
    n = 24
    daemon = Daemon(ray_config(tmp_path, last_endpoint(push), "queue")).start()
    try:
        for i in range(n):
            push.send_multipart(encode_array10(i, frame(i)))
        wait_for(lambda: daemon.pipeline.processed == n, timeout=60, what="every frame (queue)")
        assert dropped(daemon) == 0
    finally:
        assert daemon.close()
    assert [line["frame"] for line in read_record(tmp_path / "record.jsonl")] == list(range(n))

    latest = tmp_path / "latest"
    latest.mkdir()
    n = 120
    daemon = Daemon(ray_config(latest, last_endpoint(push), "latest")).start()
    try:
        for i in range(n):  # all at once: far above what 2 replicas segment
            push.send_multipart(encode_array10(i, rods(i, size=320)))
        wait_for(lambda: daemon.pipeline.processed + dropped(daemon) == n, timeout=60,
                 what="processed + dropped == sent (latest)")
        time.sleep(0.3)
        assert daemon.pipeline.processed + dropped(daemon) == n  # nothing counted twice
        assert dropped(daemon) > 0
    finally:
        assert daemon.close()
    ids = [line["frame"] for line in read_record(latest / "record.jsonl")]
    assert ids == sorted(set(ids)) and ids[-1] == n - 1  # in order, the newest frame always processed


def test_replicas_killed_mid_stream_are_restarted_and_the_daemon_goes_on(ray_cluster: Any, push: zmq.Socket,
                                                                         tmp_path: Path) -> None:
    daemon = Daemon(ray_config(tmp_path, last_endpoint(push), "queue", ready_poll_s=0.1)).start()
    seg = daemon.built.segmenter
    sent = 0
    ready_seen: list[bool] = []
    try:
        wait_for(lambda: readyz(daemon), timeout=10, what="/readyz true")
        while len(seg.replica_pids) < 2:  # until both replicas have served
            push.send_multipart(encode_array10(sent, frame(sent)))
            sent += 1
            time.sleep(0.05)
        before = set(seg.replica_pids)
        for _ in range(24):  # large frames (slow to segment), more than the window holds: both replicas stay busy
            # until the kill, so some frames are surely being segmented on them when they die
            push.send_multipart(encode_array10(sent, rods(sent, size=2048)))
            sent += 1
        window = daemon.pipeline._window
        assert window is not None
        wait_for(lambda: window.in_flight >= 2, timeout=10, what="frames in flight")
        time.sleep(0.5)  # sent on to the replicas (Serve re-routes requests it has not dispatched yet itself)
        for pid in before:  # every replica: no replica alive for a moment
            os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        while time.monotonic() - t_kill < 30 and not (False in ready_seen and ready_seen[-1]):
            push.send_multipart(encode_array10(sent, frame(sent)))
            sent += 1
            ready_seen.append(readyz(daemon))
            time.sleep(0.1)
        for _ in range(10):  # and some more once restarted
            push.send_multipart(encode_array10(sent, frame(sent)))
            sent += 1
        failed = lambda: counter(daemon, "wirewatch_frame_errors_total", kind="segment_failed")  # noqa: E731
        wait_for(lambda: daemon.pipeline.processed + failed() == sent, timeout=60,
                 what="every frame processed or counted as segment_failed")
        assert daemon.pipeline.healthy and daemon.pipeline.running  # the daemon never stopped
        assert readyz(daemon)
        new = seg.replica_pids - before
    finally:
        assert daemon.close()
    assert False in ready_seen, "/readyz never turned false while no replica was alive"
    assert ready_seen[-1] is True
    assert len(new) >= 1  # restarted replicas (new processes) served frames
    assert seg.retried >= 1 or failed() >= 1  # frames in flight at the kill: retried or counted
    ids = [line["frame"] for line in read_record(tmp_path / "record.jsonl")]
    assert ids == sorted(ids) and len(ids) == daemon.pipeline.processed
    assert ids[-1] == sent - 1


def test_rays_share_of_each_frame_is_split_into_its_parts(ray_cluster: Any) -> None:
    """bench.ray_overhead reports the share in parts: to the replica, packing, back, unpacking."""
    seg = load_segmenter("ray", app_name=APP, inner="watershed", replicas=2)
    try:
        for i in range(4):
            seg.segment(rods(i, size=256).astype(np.float32) / 255.0)
        assert len(seg.phases_s) == len(seg.overheads_s) == 4
        for parts, share in zip(seg.phases_s, seg.overheads_s, strict=True):
            assert all(p > -0.002 for p in parts)  # two processes' wall clocks on one machine
            assert parts[1] > 0 and parts[3] > 0  # packing and unpacking are timed within one process each
            # the parts are the share but for a few clock reads between them
            assert abs(sum(parts) - share) < 0.005 + 0.25 * share
    finally:
        seg.close()


def test_bench_daemon_reports_the_usual_fields_and_the_replicas(ray_cluster: Any) -> None:
    from wirewatch.bench.daemon import run_daemon_bench

    frames = [rods(i, size=256) for i in range(4)]
    r = run_daemon_bench("ray", size=256, rate=40, seconds=3, warmup_s=1, frames=frames,
                         options={"app_name": APP, "inner": "watershed", "replicas": 2})
    assert r.backend == "ray" and r.replicas == 2
    assert r.frames_sent == r.frames_processed + r.frames_dropped + r.frames_failed
    assert r.fps > 0 and r.latency_p99_s >= r.latency_p50_s > 0 and r.segment_p50_s > 0
    assert 0 < r.replicas_busy <= 2.0 and r.ray_overhead_p50_s > 0
