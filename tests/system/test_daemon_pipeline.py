"""The daemon end to end over real ZeroMQ sockets on loopback (watershed backend, small frames)."""

from __future__ import annotations

import json
import struct
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import numpy as np
import pytest
import zmq
from prometheus_client import CollectorRegistry

from wirewatch.config.daemon import DaemonConfig
from wirewatch.daemon.service import Daemon
from wirewatch.ingest import encode_array10, encode_series, encode_stream2_image
from wirewatch.publish.config import ZmqPublishConfig
from wirewatch.publish.record import read_record
from wirewatch.types import Detections

from .helpers import bind_push, daemon_config, last_endpoint, rods, wait_for

DECTRIS = Path(__file__).resolve().parents[3] / "shared" / "data" / "dectris-stream2"


def config(tmp_path: Path, endpoint: str, fmt: str, **ingest: Any) -> DaemonConfig:
    return daemon_config(endpoint, fmt, ingest={"policy": "queue", **ingest}, changepoint={"enabled": False},
                         record={"path": str(tmp_path / "record.jsonl"), "fsync": "never"},
                         pipeline={"shutdown_timeout_s": 20})


def counter(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def dropped_overload(registry: CollectorRegistry) -> float:
    """Frames dropped by the latest policy: evicted from the raw buffer or superseded by a newer one."""
    return sum(counter(registry, "wirewatch_frames_dropped_total", reason=r) for r in ("overflow", "superseded"))


@pytest.mark.parametrize("fmt", ["array-1.0", "stream2", "stream1"])
def test_n_frames_in_n_records_out_in_order(tmp_path: Path, pusher: tuple[zmq.Socket, str], fmt: str) -> None:
    sock, endpoint = pusher
    n = 20
    daemon = Daemon(config(tmp_path, endpoint, fmt)).start()
    try:
        for parts in encode_series(fmt, [rods(i) for i in range(n)], first_frame=100, pixel_size_nm=10.0):
            sock.send_multipart(parts)
        wait_for(lambda: daemon.pipeline.processed == n)
        body = urllib.request.urlopen(daemon.http.url + "/metrics", timeout=5).read().decode()  # type: ignore[union-attr]
    finally:
        assert daemon.close()
    lines = read_record(tmp_path / "record.jsonl")
    assert [ln["frame"] for ln in lines] == list(range(100, 100 + n))
    assert all(ln["stats"]["particle_count"] in (2, 3) for ln in lines)
    assert lines[1]["stats"]["particle_count"] == 3 and lines[0]["stats"]["particle_count"] == 2
    assert all(ln["stats"]["number_density_per_um2"] is not None for ln in lines)  # pixel size arrived
    reg = daemon.registry
    assert counter(reg, "wirewatch_frames_processed_total") == n
    assert counter(reg, "wirewatch_frames_received_total") == n + (2 if fmt != "array-1.0" else 0)
    assert "wirewatch_stage_latency_seconds_bucket{le=\"0.1\",stage=\"segment\"}" in body


@pytest.mark.skipif(not DECTRIS.is_dir(), reason="shared DECTRIS captures not present")
def test_real_dectris_captures_pass_through(tmp_path: Path, pusher: tuple[zmq.Socket, str]) -> None:
    sock, endpoint = pusher
    cfg = config(tmp_path, endpoint, "stream2")
    cfg.preprocess.max_side = 256  # detector counts are mostly noise to a segmenter: keep the test quick
    daemon = Daemon(cfg).start()
    try:
        for name in ("000001", "000002", "000003", "000011"):
            sock.send((DECTRIS / "bslz4_16bit" / f"{name}.cbor").read_bytes())
        sock.send((DECTRIS / "lz4_8bit" / "000001.cbor").read_bytes())
        wait_for(lambda: daemon.pipeline.processed == 4, timeout=60)
    finally:
        daemon.close()
    lines = read_record(tmp_path / "record.jsonl")
    assert [ln["frame"] for ln in lines] == [0, 1, 2, 0]
    assert lines[0]["series"] == "01GRXWT80JSDY2FNW8SGCCDZD9"
    assert counter(daemon.registry, "wirewatch_frame_errors_total", kind="truncated") == 0
    assert all(isinstance(ln["stats"]["particle_count"], float | int) for ln in lines)


def _a10(frame: int, **changes: Any) -> list[bytes]:
    header, payload = encode_array10(frame, rods(frame))
    h = json.loads(header) | changes
    return [json.dumps(h).encode(), payload]


def test_malformed_array10_messages_are_counted_and_skipped(tmp_path: Path, pusher: tuple[zmq.Socket, str]) -> None:
    sock, endpoint = pusher
    cfg = config(tmp_path, endpoint, "array-1.0", max_message_bytes=20_000)
    bad: list[tuple[str, list[bytes]]] = [
        ("truncated", [_a10(0)[0], _a10(0)[1][:-7]]),
        ("bad_dtype", _a10(0, type="complex128")),
        ("bad_shape", _a10(0, shape=[96, 96, 3])),
        ("unknown_type", _a10(0, htype="array-9.9")),
        ("oversized", [_a10(0)[0], b"\0" * 12_000, b"\0" * 12_000]),  # each part fits, the message does not
        ("bad_header", [b"{not json", b"\0" * 10]),
        ("size_lie", [_a10(0)[0], _a10(0)[1] + b"\0\0"]),
    ]
    interleave_bad_messages(Daemon(cfg).start(), sock, _a10, bad, tmp_path)


def interleave_bad_messages(daemon: Daemon, sock: zmq.Socket, good_message: Callable[[int], list[bytes]],
                            bad: list[tuple[str, list[bytes]]], tmp_path: Path) -> None:
    """Send good frame 0, bad message, good frame 1, ..., a last good frame: each bad one is counted under
    its kind exactly once and every good frame reaches the record, in order."""
    good = 0
    try:
        for _, parts in bad:
            sock.send_multipart(good_message(good))
            good += 1
            sock.send_multipart(parts)
        sock.send_multipart(good_message(good))
        good += 1
        wait_for(lambda: daemon.pipeline.processed == good)
        wait_for(lambda: sum(counter(daemon.registry, "wirewatch_frame_errors_total", kind=k)
                             for k, _ in bad) == len(bad))
    finally:
        daemon.close()
    for kind, _ in bad:
        assert counter(daemon.registry, "wirewatch_frame_errors_total", kind=kind) == 1, kind
    assert [ln["frame"] for ln in read_record(tmp_path / "record.jsonl")] == list(range(good))


def _s2_image(frame: int, data: Any) -> bytes:
    msg = dict(cbor2.loads(encode_stream2_image(frame, rods(frame), compression=None)[0], tag_hook=lambda t, i: t))
    msg["data"] = {"threshold_1": data}
    return cbor2.dumps(msg)


def test_malformed_stream2_messages_are_counted_and_skipped(tmp_path: Path, pusher: tuple[zmq.Socket, str]) -> None:
    sock, endpoint = pusher
    block = cbor2.CBORTag(56500, ["bslz4", 1, struct.pack(">QI", 10**12, 8192) + b"\0" * 8])
    bad: list[tuple[str, list[bytes]]] = [
        ("bad_cbor", [b"\xff\xfe garbage that is not CBOR"]),
        ("truncated", [b"\x9b" + (10**12).to_bytes(8, "big")]),  # an array claiming 10^12 items
        ("size_lie", [_s2_image(0, cbor2.CBORTag(40, [[96, 96], cbor2.CBORTag(64, block)]))]),
        ("unknown_type", [cbor2.dumps({"type": "calibration"})]),
        ("bad_dtype", [_s2_image(0, cbor2.CBORTag(40, [[2, 2], cbor2.CBORTag(84, b"\0" * 8)]))]),
    ]
    interleave_bad_messages(Daemon(config(tmp_path, endpoint, "stream2")).start(), sock,
                            lambda frame: encode_stream2_image(frame, rods(frame)), bad, tmp_path)


class SlowSegmenter:
    """Threshold segmentation that takes ``delay`` seconds: a daemon that cannot keep up."""

    name = "slow"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def segment(self, image: np.ndarray) -> Detections:
        time.sleep(self.delay)
        from scipy import ndimage

        labels, n = ndimage.label(image > 0.5)
        masks = labels[None] == np.arange(1, n + 1)[:, None, None]
        from wirewatch.coco import boxes_of

        return Detections(boxes=boxes_of(masks), scores=np.ones(n, np.float32), masks=masks,
                          image_shape=image.shape)


def test_overload_with_latest_keeps_memory_bounded_and_counts_every_drop(
        tmp_path: Path, pusher: tuple[zmq.Socket, str]) -> None:
    sock, endpoint = pusher
    cfg = config(tmp_path, endpoint, "array-1.0", policy="latest", buffer=2)
    daemon = Daemon(cfg, segmenter=SlowSegmenter(0.05)).start()
    sent = 300
    try:
        t0 = time.monotonic()
        for i in range(sent):
            sock.send_multipart(encode_array10(i, rods(i)))  # ~10x faster than the daemon
        send_s = time.monotonic() - t0
        src = daemon.pipeline.source
        wait_for(lambda: src.stats().received == sent)
        processed_while_sending = daemon.pipeline.processed
        wait_for(lambda: src.stats().buffered == 0 and daemon.pipeline.processed
                 + dropped_overload(daemon.registry) == sent)
    finally:
        daemon.close()
    stats = daemon.pipeline.source.stats()
    processed = daemon.pipeline.processed
    dropped = dropped_overload(daemon.registry)
    assert processed + dropped == sent  # exact
    assert counter(daemon.registry, "wirewatch_frames_dropped_total", reason="overflow") == stats.dropped["overflow"]
    assert dropped > sent / 2
    assert stats.max_buffered <= 2  # the raw buffer never held more than its bound
    frames = [ln["frame"] for ln in read_record(tmp_path / "record.jsonl")]
    assert len(frames) == processed and frames == sorted(frames)
    assert frames[-1] == sent - 1  # the newest frame is always processed
    assert processed_while_sending <= send_s / 0.05 + 5


def test_metrics_health_and_ready_endpoints(tmp_path: Path, pusher: tuple[zmq.Socket, str]) -> None:
    sock, endpoint = pusher
    daemon = Daemon(config(tmp_path, endpoint, "array-1.0")).start()
    try:
        url = daemon.http.url  # type: ignore[union-attr]
        sock.send_multipart(encode_array10(0, rods(0)))
        wait_for(lambda: daemon.pipeline.processed == 1)
        assert urllib.request.urlopen(url + "/healthz", timeout=5).status == 200
        assert urllib.request.urlopen(url + "/readyz", timeout=5).status == 200
        body = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url + "/nope", timeout=5)
        assert err.value.code == 404
    finally:
        daemon.close()
    for name in ("wirewatch_frames_received_total", "wirewatch_frames_processed_total",
                 'wirewatch_frames_dropped_total{reason="overflow"}', "wirewatch_stage_latency_seconds_bucket",
                 "wirewatch_particle_count 2.0", "wirewatch_particle_length_mean_pixels",
                 "wirewatch_orientation_order_ratio"):
        assert name in body, name


def test_stop_drains_frames_in_flight(tmp_path: Path, pusher: tuple[zmq.Socket, str]) -> None:
    """Frames received before the stop are all processed and recorded (policy queue)."""
    sock, endpoint = pusher
    cfg = config(tmp_path, endpoint, "array-1.0", buffer=50)
    daemon = Daemon(cfg, segmenter=SlowSegmenter(0.02)).start()
    n = 30
    for i in range(n):
        sock.send_multipart(encode_array10(i, rods(i)))
    wait_for(lambda: daemon.pipeline.source.stats().received == n)
    stopper = threading.Timer(0.05, daemon.stop)
    stopper.start()
    assert daemon.wait()
    assert [ln["frame"] for ln in read_record(tmp_path / "record.jsonl")] == list(range(n))


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.mark.slow
def test_overload_soak_ten_times_capacity_for_60_s(tmp_path: Path, pusher: tuple[zmq.Socket, str]) -> None:
    """512 x 512 frames at ~10x what the daemon can process, for 60 s: memory stays bounded, the newest
    frames keep coming, /metrics answers within 1 s, and the drop counter is exact."""
    sock, endpoint = pusher
    cfg = config(tmp_path, endpoint, "array-1.0", policy="latest", buffer=2, hwm=16)
    daemon = Daemon(cfg, segmenter=SlowSegmenter(0.1)).start()  # capacity ~10 frames/s
    frame = np.zeros((512, 512), np.uint8)
    frame[100:110, 50:450] = 200
    rate, seconds = 100.0, 60.0
    rss_start = _rss_mib()
    rss_max = rss_start
    slowest_scrape = 0.0
    sent = 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            delay = t0 + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sock.send_multipart(encode_array10(sent, frame))
            sent += 1
            if sent % 200 == 0:
                s0 = time.monotonic()
                urllib.request.urlopen(daemon.http.url + "/metrics", timeout=5).read()  # type: ignore[union-attr]
                slowest_scrape = max(slowest_scrape, time.monotonic() - s0)
                rss_max = max(rss_max, _rss_mib())
                if time.monotonic() - t0 > 5:  # past start-up: results stay fresh
                    lines = read_record(tmp_path / "record.jsonl")
                    assert lines and sent - 1 - lines[-1]["frame"] < 50, (sent, lines[-1:] or None)
        src = daemon.pipeline.source
        wait_for(lambda: src.stats().received == sent)
        wait_for(lambda: daemon.pipeline.processed
                 + dropped_overload(daemon.registry) == sent)
    finally:
        daemon.close()
    dropped = dropped_overload(daemon.registry)
    assert daemon.pipeline.processed + dropped == sent
    assert dropped > 0.8 * sent
    assert rss_max - rss_start < 100, (rss_start, rss_max)  # MiB: bounded, independent of frames sent
    assert slowest_scrape < 1.0
    print(f"soak: sent {sent}, processed {daemon.pipeline.processed}, dropped {int(dropped)}, "
          f"RSS {rss_start:.0f} -> max {rss_max:.0f} MiB, slowest /metrics {slowest_scrape * 1000:.0f} ms")


def test_per_frame_stats_published_on_zmq_pub_in_order(tmp_path: Path, pusher: tuple[zmq.Socket, str]) -> None:
    sock, endpoint = pusher
    cfg = config(tmp_path, endpoint, "array-1.0")
    cfg.publish.zmq = ZmqPublishConfig(bind="tcp://127.0.0.1:*")
    daemon = Daemon(cfg).start()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"stats")
    sub.connect(daemon.built.publisher.zmq.endpoint)
    try:
        # a SUB joins asynchronously: send frames until the first stats message arrives, then 10 more
        got: list[dict[str, Any]] = []
        i = 0
        while not got and i < 200:
            sock.send_multipart(encode_array10(i, rods(i)))
            i += 1
            if sub.poll(100):
                topic, body = sub.recv_multipart()
                got.append(json.loads(body))
        first = i
        for j in range(first, first + 10):
            sock.send_multipart(encode_array10(j, rods(j)))
        while len(got) < 11 or got[-1]["frame"] < first + 9:
            assert sub.poll(10_000), "no stats message"
            topic, body = sub.recv_multipart()
            assert topic == b"stats"
            got.append(json.loads(body))
    finally:
        sub.close(0)
        ctx.term()
        daemon.close()
    tail = [m["frame"] for m in got if m["frame"] >= first]
    assert tail == list(range(first, first + 10))
    assert all({"frame", "time", "stats"} <= set(m) for m in got)
    assert got[-1]["stats"]["particle_count"] in (2, 3)


def test_sender_restart_mid_series_reconnects_and_starts_a_new_series(tmp_path: Path) -> None:
    """The detector process dies mid-series (no end message) and comes back on the same endpoint with a
    new series: the daemon reconnects by itself, records both series and resets change detection."""
    from wirewatch.ingest import encode_stream2_start

    ctx = zmq.Context()
    sockets: list[zmq.Socket] = []
    first = bind_push(ctx)
    sockets.append(first)
    endpoint = last_endpoint(first)
    daemon = Daemon(config(tmp_path, endpoint, "stream2")).start()
    try:
        first.send_multipart(encode_stream2_start(series_unique_id="A", image_shape=(96, 96), image_dtype="uint8"))
        for i in range(5):
            first.send_multipart(encode_stream2_image(i, rods(i), series_unique_id="A"))
        wait_for(lambda: daemon.pipeline.processed == 5)
        first.close()  # the sender is gone, mid-series
        second = bind_push(ctx, endpoint)  # ...and back on the same port
        sockets.append(second)
        for parts in encode_series("stream2", [rods(i) for i in range(5)], series_id=2,
                                   series_unique_id="B"):
            second.send_multipart(parts)
        wait_for(lambda: daemon.pipeline.processed == 10, timeout=60)
    finally:
        daemon.close()
        for sock in sockets:
            sock.close(0)
        ctx.term()
    lines = read_record(tmp_path / "record.jsonl")
    assert [(ln["series"], ln["frame"]) for ln in lines] == [("A", i) for i in range(5)] + [("B", i) for i in range(5)]
    assert counter(daemon.registry, "wirewatch_series_total") == 2
