"""MessageBuffer: the overload policies, exact accounting, start/end messages never dropped."""

from __future__ import annotations

import threading
import time

import pytest

from wirewatch.ingest.base import RawMessage
from wirewatch.ingest.buffer import MessageBuffer


def msg(seq: int, control: bool = False) -> RawMessage:
    return RawMessage(parts=(str(seq).encode(),), received_at=0.0, seq=seq, control=control)


def drain(buf: MessageBuffer) -> list[int]:
    out = []
    while (m := buf.get(timeout=0)) is not None:
        out.append(m.seq)
    return out


def test_latest_keeps_the_newest_and_counts_every_drop() -> None:
    dropped: list[tuple[str, int]] = []
    buf = MessageBuffer(3, "latest", on_drop=lambda reason, m: dropped.append((reason, m.seq)))
    for i in range(10):
        assert buf.put(msg(i))
    assert len(buf) == 3 and buf.max_len == 3
    assert drain(buf) == [7, 8, 9]
    assert dropped == [("overflow", i) for i in range(7)]
    assert buf.put_count == 10 == buf.get_count + sum(buf.dropped.values())


def test_latest_never_drops_series_messages_and_keeps_order() -> None:
    buf = MessageBuffer(1, "latest")
    seq = [msg(0, True), msg(1), msg(2), msg(3, True), msg(4), msg(5), msg(6, True), msg(7)]
    for m in seq:
        buf.put(m)
    # data 1, 2, 4, 5 were each evicted by the next data message; start/end (0, 3, 6) kept, in arrival order
    assert drain(buf) == [0, 3, 6, 7]
    assert buf.dropped == {"overflow": 4}


def test_control_messages_have_their_own_bound() -> None:
    buf = MessageBuffer(1, "latest", control_capacity=4)
    for i in range(10):
        buf.put(msg(i, control=True))
    assert len(buf) == 4 and drain(buf) == [6, 7, 8, 9]
    assert buf.dropped == {"control_overflow": 6}


def test_queue_blocks_until_there_is_room_and_loses_nothing() -> None:
    buf = MessageBuffer(2, "queue")
    produced = threading.Event()

    def producer() -> None:
        for i in range(50):
            buf.put(msg(i))
        produced.set()

    t = threading.Thread(target=producer)
    t.start()
    time.sleep(0.05)
    assert len(buf) == 2 and not produced.is_set()  # back-pressure: the producer waits
    got = []
    while len(got) < 50:
        m = buf.get(timeout=2)
        assert m is not None
        got.append(m.seq)
        assert len(buf) <= 2
    t.join(2)
    assert got == list(range(50)) and not buf.dropped and buf.max_len == 2


def test_queue_put_gives_up_when_stopped() -> None:
    buf = MessageBuffer(1, "queue")
    buf.put(msg(0))
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    assert buf.put(msg(1), stop) is False
    assert drain(buf) == [0]


def test_get_times_out_and_close_wakes_readers() -> None:
    buf = MessageBuffer(1)
    t0 = time.monotonic()
    assert buf.get(timeout=0.05) is None
    assert time.monotonic() - t0 >= 0.04
    threading.Timer(0.05, buf.close).start()
    assert buf.get(timeout=5) is None  # returns at close, not after 5 s


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="capacity"):
        MessageBuffer(0)
    with pytest.raises(ValueError, match="latest, queue"):
        MessageBuffer(1, "newest")  # type: ignore[arg-type]
