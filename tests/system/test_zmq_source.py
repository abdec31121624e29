"""ZmqSource over real ZeroMQ sockets on loopback (port 0 / '*'): order, topics, overload, bad input."""

from __future__ import annotations

import resource
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zmq

from wirewatch.errors import ConfigError, DecodeError
from wirewatch.ingest import IngestConfig, RawMessage, ZmqSource, make_decoder
from wirewatch.ingest import encode as enc
from wirewatch.ingest.decoders import FORMATS
from wirewatch.types import Frame, SeriesEnd, SeriesStart

N = 30


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def images(n: int = N, shape: tuple[int, int] = (32, 48)) -> list[np.ndarray]:
    return [np.full(shape, i, np.uint16) + np.arange(shape[1], dtype=np.uint16) for i in range(n)]


def consume(source: ZmqSource, fmt: str, expect_messages: int, per_get: float = 0.0) -> list:
    decoder = make_decoder(fmt)
    events: list = []
    got = 0
    deadline = time.monotonic() + 20
    while got < expect_messages and time.monotonic() < deadline:
        msg = source.get(timeout=0.2)
        if msg is None:
            continue
        got += 1
        events += decoder.decode(msg.parts, msg.received_at)
        if per_get:
            time.sleep(per_get)
    return events


def push_bound(ctx: zmq.Context, sndhwm: int = 1000) -> tuple[zmq.Socket, str]:
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, sndhwm)
    push.setsockopt(zmq.LINGER, 0)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    return push, f"tcp://127.0.0.1:{port}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_pull_connects_to_push_n_frames_in_order(ctx: zmq.Context, fmt: str) -> None:
    push, endpoint = push_bound(ctx)
    source = ZmqSource(IngestConfig(endpoint=endpoint, format=fmt, policy="queue", buffer=4), context=ctx)
    source.start()
    try:
        messages = enc.encode_series(fmt, images(), series_id=2, first_frame=100, pixel_size_nm=7.5)
        for parts in messages:
            push.send_multipart(parts)
        events = consume(source, fmt, len(messages))
        frames = [e for e in events if isinstance(e, Frame)]
        assert [f.frame_id for f in frames] == list(range(100, 100 + N))
        for f, img in zip(frames, images(), strict=True):
            np.testing.assert_array_equal(f.image, img)
            assert f.pixel_size_nm == pytest.approx(7.5)
        if fmt != "array-1.0":
            assert isinstance(events[0], SeriesStart) and isinstance(events[-1], SeriesEnd)
        stats = source.stats()
        assert stats.received == stats.delivered == len(messages) and not stats.dropped
        assert stats.max_buffered <= 4 + 2  # data buffer + start/end messages (never evicted)
    finally:
        source.close()
        push.close()


def test_source_binds_and_reports_its_port(ctx: zmq.Context) -> None:
    source = ZmqSource(IngestConfig(endpoint="tcp://127.0.0.1:*", bind=True, format="array-1.0", policy="queue"),
                       context=ctx)
    source.start()
    try:
        assert source.endpoint is not None and source.endpoint.startswith("tcp://127.0.0.1:")
        assert int(source.endpoint.rsplit(":", 1)[1]) > 0
        push = ctx.socket(zmq.PUSH)
        push.connect(source.endpoint)
        for i, img in enumerate(images(5)):
            push.send_multipart(enc.encode_array10(i, img))
        frames = consume(source, "array-1.0", 5)
        assert [f.frame_id for f in frames] == [0, 1, 2, 3, 4]
        push.close(0)
    finally:
        source.close()


def test_sub_with_topic_filter_strips_the_topic_frame(ctx: zmq.Context) -> None:
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    source = ZmqSource(IngestConfig(endpoint=f"tcp://127.0.0.1:{port}", socket="sub", topic="frames",
                                    format="stream2", policy="queue", buffer=64), context=ctx)
    source.start()
    try:
        # PUB/SUB "slow joiner": publish probes until the subscription has arrived
        probe = enc.encode_stream2_start(series_unique_id="probe")
        wait_for(lambda: (pub.send_multipart([b"frames", *probe]), source.get(timeout=0.05))[1] is not None)
        while source.get(timeout=0.2) is not None:
            pass
        messages = enc.encode_series("stream2", images(10), compression="lz4")
        for parts in messages:
            pub.send_multipart([b"other", *parts])  # filtered out by ZeroMQ
            pub.send_multipart([b"frames", *parts])
        events = consume(source, "stream2", len(messages))
        frames = [e for e in events if isinstance(e, Frame)]
        assert [f.frame_id for f in frames] == list(range(10))
        assert source.get(timeout=0.3) is None  # nothing from topic "other"
    finally:
        source.close()
        pub.close(0)


def test_latest_with_a_slow_consumer_is_bounded_and_exact(ctx: zmq.Context) -> None:
    push, endpoint = push_bound(ctx, sndhwm=4)
    source = ZmqSource(IngestConfig(endpoint=endpoint, format="stream2", policy="latest", buffer=2, hwm=4,
                                    max_message_bytes=2 << 20), context=ctx)
    source.start()
    try:
        big = np.random.default_rng(0).integers(0, 60000, (512, 1024)).astype(np.uint16)  # 1 MiB
        image_body = enc.encode_stream2_image(0, big, compression=None)[0]
        id_at = image_body.index(b"image_id") + len(b"image_id")  # patch the id in place: no 300 MiB list
        assert image_body[id_at:id_at + 1] == b"\x00"

        def message(i: int) -> list[bytes]:
            if i == 0:
                return enc.encode_stream2_start(image_shape=big.shape)
            if i == 301:
                return enc.encode_stream2_end()
            return [image_body[:id_at] + b"\x19" + (i - 1).to_bytes(2, "big") + image_body[id_at + 1:]]

        messages = range(302)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        consumed: list[tuple[str, int | None]] = []  # (event type, frame id): frames would pin their buffers
        decoder = make_decoder("stream2")

        def take(msg: RawMessage) -> None:
            for event in decoder.decode(msg.parts, msg.received_at):
                consumed.append((type(event).__name__, getattr(event, "frame_id", None)))

        for i in messages:
            push.send_multipart(message(i))  # never stalls for long: the drain thread keeps reading
            if i % 50 == 25:  # a consumer far slower than the sender
                msg = source.get(timeout=5)
                assert msg is not None
                take(msg)
        wait_for(lambda: source.stats().received == len(messages))
        while (msg := source.get(timeout=0.2)) is not None:
            take(msg)
        stats = source.stats()
        frames = [fid for kind, fid in consumed if kind == "Frame"]
        # exact accounting: everything received was either consumed or dropped
        assert stats.received == len(messages) == stats.delivered + sum(stats.dropped.values())
        assert stats.dropped["overflow"] == 300 - len(frames) > 0
        assert stats.max_buffered <= 2 + 2  # data buffer + the start/end messages
        # newest frames kept, order preserved, series messages never dropped
        assert frames == sorted(frames) and frames[-1] == 299
        assert consumed[0][0] == "SeriesStart" and consumed[-1][0] == "SeriesEnd"
        # 300 MiB went through; resident memory grew by far less (KiB)
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 120_000
    finally:
        source.close()
        push.close()


def test_queue_with_a_slow_consumer_is_lossless(ctx: zmq.Context) -> None:
    push, endpoint = push_bound(ctx, sndhwm=2)
    source = ZmqSource(IngestConfig(endpoint=endpoint, format="array-1.0", policy="queue", buffer=2, hwm=2),
                       context=ctx)
    source.start()
    try:
        frames = []
        decoder = make_decoder("array-1.0")
        img = images(1)[0]
        blocked = 0
        # a PUSH with no peer yet also answers Again: send the first frame blocking, so the
        # Again below can only be back-pressure from the connected (and slow) consumer
        push.setsockopt(zmq.SNDTIMEO, 10_000)
        push.send_multipart(enc.encode_array10(0, img))
        sent = 1
        while sent < 60:
            try:
                push.send_multipart(enc.encode_array10(sent, img), zmq.NOBLOCK)
                sent += 1
            except zmq.Again:  # back-pressure reached the sender
                blocked += 1
                msg = source.get(timeout=5)
                assert msg is not None
                frames += decoder.decode(msg.parts)
                time.sleep(0.005)
        frames += consume(source, "array-1.0", 60 - len(frames))
        assert [f.frame_id for f in frames] == list(range(60))
        assert blocked > 0 and not source.stats().dropped
    finally:
        source.close()
        push.close()


def test_oversized_and_malformed_messages_are_counted_and_good_frames_keep_flowing(ctx: zmq.Context) -> None:
    push, endpoint = push_bound(ctx)
    rejected: Counter[str] = Counter()
    source = ZmqSource(IngestConfig(endpoint=endpoint, format="stream2", policy="queue", buffer=8,
                                    max_message_bytes=1 << 20), context=ctx,
                       on_reject=lambda kind, detail: rejected.update([kind]))
    source.start()
    try:
        img = images(1)[0]
        good = [enc.encode_stream2_image(i, img) for i in range(6)]
        bad = [
            [b"\xa2\x64type\x65image"],  # truncated CBOR: a map of 2 pairs holding 1
            [b"\xff not cbor at all"],
            [b"\x9b" + (10**12).to_bytes(8, "big")],  # array claiming 10^12 elements
            [enc.encode_stream2_image(9, img)[0][:-100]],  # truncated payload
            [b"\x81" * 500 + b"\x00"],  # deeply nested
            good[0] + [b"extra part"],
        ]
        # total over the limit although each part is under ZeroMQ's per-part MAXMSGSIZE
        over = [b"\0" * (600 << 10), b"\0" * (600 << 10)]
        sequence = [good[0], bad[0], good[1], over, bad[1], good[2], bad[2], bad[3], good[3], bad[4], bad[5],
                    good[4], good[5]]
        for parts in sequence:
            push.send_multipart(parts)
        decoder = make_decoder("stream2")
        errors: Counter[str] = Counter()
        frames = []
        for _ in range(len(sequence) - 1):
            msg = source.get(timeout=5)
            assert msg is not None
            try:
                frames += [e for e in decoder.decode(msg.parts) if isinstance(e, Frame)]
            except DecodeError as exc:
                errors[exc.kind] += 1
        assert [f.frame_id for f in frames] == [0, 1, 2, 3, 4, 5]
        assert rejected == {"oversized": 1} and source.stats().rejected == {"oversized": 1}
        assert errors == {"truncated": 3, "bad_cbor": 2, "bad_header": 1}
        stats = source.stats()
        assert stats.received == len(sequence) == stats.delivered + 1
    finally:
        source.close()
        push.close()


def test_a_part_above_maxmsgsize_disconnects_the_sender_and_stream_resumes(ctx: zmq.Context) -> None:
    push, endpoint = push_bound(ctx)
    push.setsockopt(zmq.SNDTIMEO, 200)
    source = ZmqSource(IngestConfig(endpoint=endpoint, format="array-1.0", policy="queue", buffer=8,
                                    max_message_bytes=1 << 20), context=ctx)
    source.start()
    try:
        img = images(1)[0]
        push.send_multipart(enc.encode_array10(0, img))
        assert source.get(timeout=5) is not None
        push.send_multipart([b"{}", b"\0" * (2 << 20)])  # ZeroMQ refuses it before allocating 2 MiB
        time.sleep(0.3)  # the PULL side reconnects (ZeroMQ's reconnect interval is 100 ms)
        received = []
        for i in range(1, 50):
            try:
                push.send_multipart(enc.encode_array10(i, img))
            except zmq.Again:  # no peer until the source has reconnected
                continue
            msg = source.get(timeout=0.05)
            if msg is not None:
                received.append(msg)
            if len(received) >= 3:
                break
        assert len(received) >= 3
        assert all(m.nbytes < (1 << 20) for m in received)
        assert source.stats().reconnects == 1
    finally:
        source.close()
        push.close()


def test_bad_endpoint_is_a_config_error(ctx: zmq.Context) -> None:
    with pytest.raises(ConfigError, match="cannot bind"):
        ZmqSource(IngestConfig(endpoint="tcp://256.1.1.1:5", bind=True), context=ctx).start()


def test_a_failing_drop_callback_is_reported_not_silent(ctx: zmq.Context) -> None:
    push, endpoint = push_bound(ctx)

    def broken(reason: str, msg: RawMessage) -> None:
        raise RuntimeError("metrics backend gone")

    source = ZmqSource(IngestConfig(endpoint=endpoint, format="array-1.0", buffer=1), context=ctx, on_drop=broken)
    source.start()
    try:
        for i in range(3):
            push.send_multipart(enc.encode_array10(i, images(1)[0]))
        wait_for(lambda: source.error is not None)
        assert isinstance(source.error, RuntimeError)
    finally:
        source.close()
        push.close()


def test_sender_restart_mid_series_reconnects_and_marks_the_new_series(ctx: zmq.Context) -> None:
    push, endpoint = push_bound(ctx)
    source = ZmqSource(IngestConfig(endpoint=endpoint, format="stream2", policy="queue", buffer=64), context=ctx)
    source.start()
    decoder = make_decoder("stream2")
    try:
        img = images(1)[0]
        push.send_multipart(enc.encode_stream2_start(series_unique_id="run-1", image_shape=img.shape))
        for i in range(3):
            push.send_multipart(enc.encode_stream2_image(i, img, series_unique_id="run-1"))
        events = []
        for _ in range(4):
            msg = source.get(timeout=5)
            assert msg is not None
            events += decoder.decode(msg.parts)
        push.close(0)  # the detector process dies mid-series (no end message)...
        time.sleep(0.2)
        push = ctx.socket(zmq.PUSH)  # ...and comes back on the same port with a new series
        push.setsockopt(zmq.LINGER, 0)
        push.bind(endpoint)
        push.setsockopt(zmq.SNDTIMEO, 5000)
        push.send_multipart(enc.encode_stream2_start(series_id=2, series_unique_id="run-2", image_shape=img.shape))
        push.send_multipart(enc.encode_stream2_image(0, img, series_id=2, series_unique_id="run-2"))
        for _ in range(2):
            msg = source.get(timeout=5)
            assert msg is not None
            events += decoder.decode(msg.parts)
        kinds = [(type(e).__name__, e.series_id) for e in events]
        assert kinds == [("SeriesStart", "run-1"), ("Frame", "run-1"), ("Frame", "run-1"), ("Frame", "run-1"),
                         ("SeriesStart", "run-2"), ("Frame", "run-2")]
    finally:
        source.close()
        push.close(0)


def test_ipc_endpoint(ctx: zmq.Context, tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/frames.sock"
    source = ZmqSource(IngestConfig(endpoint=endpoint, bind=True, format="stream1", policy="queue", buffer=8),
                       context=ctx)
    source.start()
    push = ctx.socket(zmq.PUSH)
    push.connect(endpoint)
    try:
        for parts in enc.encode_series("stream1", images(3)):
            push.send_multipart(parts)
        frames = [e.frame_id for e in consume(source, "stream1", 5) if isinstance(e, Frame)]
        assert frames == [0, 1, 2] and source.endpoint == endpoint
    finally:
        push.close(0)
        source.close()


def test_a_message_of_too_many_parts_is_rejected_part_by_part(ctx: zmq.Context) -> None:
    push, endpoint = push_bound(ctx)
    source = ZmqSource(IngestConfig(endpoint=endpoint, format="array-1.0", policy="queue", buffer=8), context=ctx)
    source.start()
    try:
        push.send_multipart([b"x"] * 1000)  # far more parts than max_parts (16)
        push.send_multipart(enc.encode_array10(7, images(1)[0]))
        msg = source.get(timeout=5)
        assert msg is not None and len(msg.parts) == 2
        assert source.stats().rejected == {"oversized": 1} and source.stats().received == 2
    finally:
        source.close()
        push.close()
