"""``OrderedWindow``: results in submission order whatever order the jobs finish in; bounded slots."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

from wirewatch.daemon.inflight import OrderedWindow
from wirewatch.segment.ray_backend import SegmentFailed, pack_detections, unpack_detections
from wirewatch.types import Detections


class Collected:
    def __init__(self) -> None:
        self.items: list[object] = []
        self.lock = threading.Lock()

    def __call__(self, item: object) -> None:
        with self.lock:
            self.items.append(item)


def test_results_leave_in_submission_order_when_jobs_finish_in_reverse() -> None:
    out = Collected()
    window: OrderedWindow[int] = OrderedWindow(4, out)
    gates = [threading.Event() for _ in range(4)]
    finished: list[int] = []

    def job(i: int) -> int:
        gates[i].wait(5)
        finished.append(i)
        return i

    for i in range(4):
        assert window.submit(lambda i=i: job(i))
    for i in reversed(range(4)):  # the last submitted finishes first
        gates[i].set()
        time.sleep(0.02)
    assert window.finish(timeout=5) == 0
    assert finished == [3, 2, 1, 0]
    assert out.items == [0, 1, 2, 3]
    assert window.delivered == 4 and window.in_flight == 0


def test_random_durations_many_jobs_keep_order_and_never_exceed_the_slots() -> None:
    out = Collected()
    window: OrderedWindow[int] = OrderedWindow(3, out)
    running = 0
    most = 0
    lock = threading.Lock()
    rng = random.Random(1)
    delays = [rng.uniform(0, 0.01) for _ in range(60)]

    def job(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(delays[i])
        with lock:
            running -= 1
        return i

    for i in range(60):
        window.submit(lambda i=i: job(i))
        assert window.in_flight <= 3
    window.finish(timeout=10)
    assert out.items == list(range(60))
    assert most <= 3


def test_ready_items_keep_their_place_between_jobs() -> None:
    out = Collected()
    window: OrderedWindow[str] = OrderedWindow(2, out)
    gate = threading.Event()
    window.submit(lambda: (gate.wait(5), "frame 0")[1])
    window.put_ready("series end")  # must not overtake frame 0
    window.submit(lambda: "frame 1")
    time.sleep(0.05)
    assert out.items == []
    gate.set()
    window.finish(timeout=5)
    assert out.items == ["frame 0", "series end", "frame 1"]


def test_full_window_blocks_or_drops_and_counts() -> None:
    out = Collected()
    window: OrderedWindow[int] = OrderedWindow(2, out)
    gate = threading.Event()
    assert window.submit(lambda: (gate.wait(5), 0)[1])
    assert window.submit(lambda: (gate.wait(5), 1)[1])
    assert not window.wait_for_slot(0.05)  # queue policy: the producer waits
    assert not window.submit(lambda: 2, block=False)  # latest policy: refused at once, counted
    assert not window.submit(lambda: 3, timeout=0.05)
    assert window.dropped == 2
    gate.set()
    assert window.wait_for_slot(5)
    assert window.submit(lambda: 4)
    window.finish(timeout=5)
    assert out.items == [0, 1, 4]


def test_a_slow_consumer_holds_the_slots() -> None:
    """A slot is freed only after delivery: back-pressure reaches the producer."""
    release = threading.Event()
    out: list[int] = []

    def deliver(item: int) -> None:
        release.wait(5)
        out.append(item)

    window: OrderedWindow[int] = OrderedWindow(2, deliver)
    window.submit(lambda: 0)
    window.submit(lambda: 1)
    time.sleep(0.05)  # both jobs done, delivery of 0 blocked
    assert not window.wait_for_slot(0.05)
    release.set()
    window.finish(timeout=5)
    assert out == [0, 1]


def test_a_failing_job_is_skipped_and_the_rest_delivered() -> None:
    out = Collected()
    window: OrderedWindow[int] = OrderedWindow(2, out)

    def boom() -> int:
        raise RuntimeError("bug")

    window.submit(lambda: 0)
    window.submit(boom)
    window.submit(lambda: 2)
    window.finish(timeout=5)
    assert out.items == [0, 2]
    assert window.in_flight == 0


def test_finish_abandons_stuck_jobs_when_aborted_and_counts_them() -> None:
    out = Collected()
    window: OrderedWindow[int] = OrderedWindow(2, out)
    stuck = threading.Event()
    window.submit(lambda: 0)
    window.submit(lambda: (stuck.wait(5), 1)[1])
    t0 = time.monotonic()
    assert window.finish(timeout=0.3) == 1
    assert time.monotonic() - t0 < 3
    assert out.items == [0]
    stuck.set()
    with pytest.raises(RuntimeError, match="finished"):
        window.submit(lambda: 9)


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        OrderedWindow(0, print)


def test_packed_detections_round_trip_and_are_compact() -> None:
    rng = np.random.default_rng(0)
    masks = np.zeros((6, 512, 512), bool)
    masks[0] = rng.random((512, 512)) > 0.7  # a mask over the whole frame
    masks[1, 100:140, 200:206] = True  # a wire: 40 x 6
    masks[2, 0, 511] = True  # one pixel in a corner
    masks[3, 300:310, 0:300] = True
    # masks[4], masks[5]: empty
    det = Detections(boxes=rng.random((6, 4)).astype(np.float32), scores=rng.random(6).astype(np.float32),
                     masks=masks, image_shape=(512, 512), mask_scores=rng.random(6).astype(np.float32))
    packed = pack_detections(det)
    assert packed["bits"].nbytes == 512 * 512 // 8 + 40 * 6 // 8 + 1 + 10 * 300 // 8  # each crop at 1 bit/pixel
    back = unpack_detections(packed)
    assert np.array_equal(back.masks, masks)
    assert np.array_equal(back.boxes, det.boxes) and np.array_equal(back.scores, det.scores)
    assert back.mask_scores is not None and np.array_equal(back.mask_scores, det.mask_scores)
    odd = Detections.empty((7, 13))
    assert unpack_detections(pack_detections(odd)).masks.shape == (0, 7, 13)
    with pytest.raises(SegmentFailed, match="not packed detections"):
        unpack_detections({"shape": (4, 4)})
    bad = dict(packed, crops=packed["crops"] + 600)
    with pytest.raises(SegmentFailed, match="outside"):
        unpack_detections(bad)
