"""Faults around a running daemon (real ZeroMQ sockets on loopback, a real tmpfs for the record):
the publisher restarting mid-series, and the record's disk filling up then getting space back."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from wirewatch.config.daemon import DaemonConfig
from wirewatch.daemon.service import Daemon
from wirewatch.ingest import encode_array10, encode_stream2_end, encode_stream2_image, encode_stream2_start

from .helpers import bind_push, daemon_config, last_endpoint, rods, wait_for


def _config(tmp_path: Path, endpoint: str, fmt: str, record: Path, **http: Any) -> DaemonConfig:
    return daemon_config(endpoint, fmt, ingest={"policy": "queue"}, changepoint={"enabled": True, "warmup": 5},
                         alerts={"enabled": False}, record={"path": str(record), "fsync": "always"}, http=http)


def _counter(daemon: Daemon, name: str, **labels: str) -> float:
    value = daemon.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def _lines(record: Path) -> list[dict[str, Any]]:
    raw = record.read_bytes()
    assert not raw or raw.endswith(b"\n"), "partial last line"
    return [json.loads(x) for x in raw.splitlines()]


# ----------------------------------------------------------------- publisher restart mid-series

def test_stream2_publisher_restart_mid_series_reconnects_and_keeps_series_apart(tmp_path: Path) -> None:
    """The detector process dies after 8 images of series A (no end message) and a new one binds the same
    port: first it resumes series A (no start message seen again), then starts series B. The daemon
    reconnects by itself, records every frame once under the right series and resets at each series."""
    record = tmp_path / "record.jsonl"
    ctx = zmq.Context()
    first = bind_push(ctx)
    endpoint = last_endpoint(first)
    daemon = Daemon(_config(tmp_path, endpoint, "stream2", record)).start()
    shape = rods(0).shape
    try:
        first.send_multipart(encode_stream2_start(series_unique_id="A", image_shape=shape, image_dtype="uint8"))
        for i in range(8):
            first.send_multipart(encode_stream2_image(i, rods(i), series_unique_id="A"))
        wait_for(lambda: daemon.pipeline.processed == 8)
        first.close()  # the publisher dies mid-series: no end message
        second = bind_push(ctx, endpoint)
        try:
            for i in range(8, 12):  # the restarted publisher carries on with series A
                second.send_multipart(encode_stream2_image(i, rods(i), series_unique_id="A"))
            second.send_multipart(encode_stream2_end(series_unique_id="A"))
            second.send_multipart(encode_stream2_start(series_id=2, series_unique_id="B", image_shape=shape,
                                                       image_dtype="uint8"))
            for i in range(6):
                second.send_multipart(encode_stream2_image(i, rods(i), series_id=2, series_unique_id="B"))
            second.send_multipart(encode_stream2_end(series_id=2, series_unique_id="B"))
            wait_for(lambda: daemon.pipeline.processed == 18, timeout=60)
            assert urllib.request.urlopen(daemon.http.url + "/healthz", timeout=5).status == 200  # type: ignore[union-attr]
        finally:
            second.close()
    finally:
        daemon.close()
        ctx.term()
    got = [(ln["series"], ln["frame"]) for ln in _lines(record)]
    assert got == [("A", i) for i in range(12)] + [("B", i) for i in range(6)]
    assert _counter(daemon, "wirewatch_frame_errors_total", kind="bad_header") == 0
    # the resumed images belong to the series whose start the daemon already saw: A and B, two series
    assert _counter(daemon, "wirewatch_series_total") == 2


def test_array10_publisher_restart_with_ids_from_zero_is_a_new_series(tmp_path: Path) -> None:
    """array-1.0 has no series messages: a restarted sender counting from 0 again is recognised by the id
    going backwards, recorded in full (nothing taken for a replay) and the change detector is reset."""
    record = tmp_path / "record.jsonl"
    ctx = zmq.Context()
    first = bind_push(ctx)
    endpoint = last_endpoint(first)
    daemon = Daemon(_config(tmp_path, endpoint, "array-1.0", record)).start()
    try:
        for i in range(10):
            first.send_multipart(encode_array10(100 + i, rods(i)))
        wait_for(lambda: daemon.pipeline.processed == 10)
        first.close()
        second = bind_push(ctx, endpoint)
        try:
            for i in range(5):
                second.send_multipart(encode_array10(i, rods(i)))
            wait_for(lambda: daemon.pipeline.processed == 15, timeout=60)
        finally:
            second.close()
    finally:
        daemon.close()
        ctx.term()
    assert [ln["frame"] for ln in _lines(record)] == [100 + i for i in range(10)] + list(range(5))
    assert _counter(daemon, "wirewatch_frames_dropped_total", reason="replay") == 0
    # the decoder turns the id going backwards into a SeriesStart, which resets the change detector
    assert _counter(daemon, "wirewatch_series_total") == 1


# ----------------------------------------------------------------- disk full for the record

@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs (needs root / CAP_SYS_ADMIN; skipped otherwise)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> int:
    """Write zeros until the file system refuses (ENOSPC); bytes written."""
    n = 0
    with open(path, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            n += f.write(b"\0" * 1024)
    return n


def test_disk_full_for_the_record_is_counted_survived_and_recovered(tiny_disk: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """The record lives on a 64 KiB tmpfs that a filler file fills up mid-stream. The daemon keeps
    processing and serving /metrics, logs a clear error, counts the failed writes and holds the lines in
    its backlog; once the filler is deleted the next frame brings every held line out, in order, with no
    partial line and no frame twice."""
    record = tiny_disk / "record.jsonl"
    caplog.set_level(logging.INFO, logger="wirewatch")
    ctx = zmq.Context()
    push = bind_push(ctx)
    daemon = Daemon(_config(tiny_disk, last_endpoint(push), "array-1.0", record)).start()
    filler = tiny_disk / "filler"
    try:
        for i in range(5):
            push.send_multipart(encode_array10(i, rods(i)))
        wait_for(lambda: daemon.pipeline.processed == 5)
        assert len(_lines(record)) == 5
        assert _fill(filler) > 0  # the disk is now full
        for i in range(5, 15):
            push.send_multipart(encode_array10(i, rods(i)))
        wait_for(lambda: daemon.pipeline.processed == 15)
        url = daemon.http.url  # type: ignore[union-attr]
        body = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
        assert urllib.request.urlopen(url + "/healthz", timeout=5).status == 200  # no crash
        # the record's last, partly used page still takes a few lines; then writes fail
        on_disk = len(_lines(record))  # also: no partial line was left behind
        backlog = _counter(daemon, "wirewatch_record_backlog_lines")
        assert backlog >= 5 and on_disk + backlog == 15
        assert f"wirewatch_record_backlog_lines {backlog}" in body
        assert _counter(daemon, "wirewatch_record_write_errors_total") == backlog  # one failed try per frame
        assert "No space left on device" in caplog.text and str(record) in caplog.text
        filler.unlink()  # space returns
        push.send_multipart(encode_array10(15, rods(15)))
        wait_for(lambda: daemon.pipeline.processed == 16)
        wait_for(lambda: _counter(daemon, "wirewatch_record_backlog_lines") == 0)
    finally:
        daemon.close()
        push.close(0)
        ctx.term()
    assert [ln["frame"] for ln in _lines(record)] == list(range(16))
    assert os.statvfs(tiny_disk).f_bavail > 0


# ----------------------------------------------------------------- bad Stream V1 messages, counted by kind

def test_malformed_stream1_messages_are_counted_by_kind_and_skipped(tmp_path: Path) -> None:
    """The daemon-level counterpart of the decoder tests for DECTRIS Stream V1 (array-1.0 and Stream V2
    have theirs in test_daemon_pipeline.py): each bad message is one count of its kind, good frames
    around it are all recorded, in order."""
    from wirewatch.ingest import encode_stream1_end, encode_stream1_header, encode_stream1_image

    record = tmp_path / "record.jsonl"

    def image(frame: int, **desc: Any) -> list[bytes]:
        parts = encode_stream1_image(1, frame, rods(frame).astype(np.uint16))
        return [parts[0], json.dumps(json.loads(parts[1]) | desc).encode(), *parts[2:]]

    def claiming(frame: int, total: int) -> list[bytes]:
        parts = encode_stream1_image(1, frame, rods(frame).astype(np.uint16))
        return [parts[0], parts[1], struct.pack(">QI", total, 8192) + parts[2][12:], *parts[3:]]

    bad: list[tuple[str, list[bytes]]] = [
        ("size_lie", claiming(90, 10**12)),  # bitshuffle-LZ4 header claiming 10^12 bytes
        ("bad_dtype", image(91, type="float16")),
        ("unknown_type", image(92, htype="dimage_x-1.0")),
        ("truncated", image(93)[:2]),  # data part missing
        ("bad_header", [b"{not json", b"{}"]),
    ]
    ctx = zmq.Context()
    push = bind_push(ctx)
    daemon = Daemon(_config(tmp_path, last_endpoint(push), "stream1", record)).start()
    try:
        push.send_multipart(encode_stream1_header(1, image_shape=rods(0).shape))
        good = 0
        for _, parts in bad:
            push.send_multipart(encode_stream1_image(1, good, rods(good).astype(np.uint16)))
            good += 1
            push.send_multipart(parts)
        push.send_multipart(encode_stream1_image(1, good, rods(good).astype(np.uint16)))
        good += 1
        push.send_multipart(encode_stream1_end(1))
        wait_for(lambda: daemon.pipeline.processed == good)
        wait_for(lambda: sum(_counter(daemon, "wirewatch_frame_errors_total", kind=k) for k, _ in bad) >= len(bad))
    finally:
        daemon.close()
        push.close(0)
        ctx.term()
    for kind, _ in bad:
        assert _counter(daemon, "wirewatch_frame_errors_total", kind=kind) == 1, kind
    assert [ln["frame"] for ln in _lines(record)] == list(range(good))


# ----------------------------------------------------------------- repeated SIGKILL, all real processes

@pytest.mark.slow
def test_repeated_sigkill_of_wirewatch_run_keeps_one_valid_record(tmp_path: Path) -> None:
    """``wirewatch run`` (Stream V2, policy queue) is SIGKILLed three times mid-series and restarted on the
    same record; each time the detector re-sends the whole series from its start message. At the end the
    record is valid JSON Lines holding every frame exactly once, in order."""
    import signal
    import sys

    record = tmp_path / "record.jsonl"
    n = 40
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.setsockopt(zmq.SNDHWM, 4)  # the detector waits for the daemon rather than queueing the series
    push.bind("tcp://127.0.0.1:*")
    endpoint = push.getsockopt_string(zmq.LAST_ENDPOINT)
    shape = rods(0).shape
    series = [encode_stream2_start(series_unique_id="S", image_shape=shape, image_dtype="uint8")]
    series += [encode_stream2_image(i, rods(i), series_unique_id="S") for i in range(n)]
    series.append(encode_stream2_end(series_unique_id="S"))
    lines_before = 0
    after_kill: list[int] = []
    try:
        for attempt in range(4):
            proc = subprocess.Popen([sys.executable, "-m", "wirewatch", "run", "--input", endpoint, "--format",
                                     "stream2", "--backend", "watershed", "--record", str(record),
                                     "--metrics-port", "0", "--policy", "queue", "--publish", "tcp://127.0.0.1:*"],
                                    stderr=subprocess.DEVNULL)
            try:
                last = attempt == 3

                def count() -> int:
                    return record.read_bytes().count(b"\n") if record.exists() else 0

                for image_no, msg in enumerate(series, start=-1):  # -1: the start message
                    # pace like a detector the daemon keeps up with: at most 3 images not yet recorded
                    wait_for(lambda n_=image_no, p_=proc: n_ - count() <= 3 or p_.poll() is not None, timeout=120)
                    while not push.poll(100, zmq.POLLOUT):
                        assert proc.poll() is None, "daemon exited"
                    push.send_multipart(msg)
                    if not last and count() >= lines_before + 5 + 2 * attempt:
                        break  # a few new frames recorded: kill it now
                if last:
                    wait_for(lambda: record.read_bytes().count(b"\n") == n, timeout=120)
                    proc.send_signal(signal.SIGTERM)
                    assert proc.wait(timeout=30) == 0
                else:
                    time.sleep(0.2 * attempt)  # vary where in the write path the kill lands
                    proc.kill()
                    proc.wait(timeout=10)
                lines_before = len(_lines(record))  # valid after every kill
                after_kill.append(lines_before)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    finally:
        push.close(0)
        ctx.term()
    got = [(ln["series"], ln["frame"]) for ln in _lines(record)]
    assert got == [("S", i) for i in range(n)]
    print(f"record lines after each kill: {after_kill[:-1]}, after the last run: {after_kill[-1]}")
    assert all(0 < k < n for k in after_kill[:-1]), after_kill  # each kill landed mid-series


# ----------------------------------------------------------------- HTTP clients that never finish a request

def test_metrics_answer_within_1_s_while_200_clients_hold_connections_open(tmp_path: Path) -> None:
    """Slow or stuck scrapers (connections opened and left idle, requests sent half-way) do not block
    ``/metrics`` for anyone else: the server's event loop holds idle connections, handlers run on worker
    threads."""
    import socket

    cfg = daemon_config("tcp://127.0.0.1:1", alerts={"enabled": False})
    daemon = Daemon(cfg).start()
    held: list[socket.socket] = []
    try:
        assert daemon.http is not None
        for i in range(200):
            s = socket.create_connection((daemon.http.host, daemon.http.port), timeout=5)
            if i % 2:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            held.append(s)
        worst = 0.0
        for _ in range(5):
            t0 = time.monotonic()
            body = urllib.request.urlopen(daemon.http.url + "/metrics", timeout=5).read()
            worst = max(worst, time.monotonic() - t0)
            assert b"wirewatch_frames_received_total" in body
        assert worst < 1.0, worst
        assert urllib.request.urlopen(daemon.http.url + "/healthz", timeout=5).status == 200
    finally:
        for s in held:
            s.close()
        daemon.close()
