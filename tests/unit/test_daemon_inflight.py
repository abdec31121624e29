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


def _tight_rects(masks: np.ndarray) -> np.ndarray:
    """The bounding rectangle (y0, y1, x0, x1) of each mask's pixels, found the slow way (0s when empty)."""
    out = np.zeros((len(masks), 4), np.int32)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if len(ys):
            out[i] = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
    return out


def _random_detections(rng: np.random.Generator, n: int, h: int, w: int) -> Detections:
    """Masks of every awkward kind, each with a box that fits it, misses it by a little or a lot, lies outside
    the frame, is inverted or is not finite: what packing must survive losslessly."""
    masks = np.zeros((n, h, w), bool)
    boxes = np.zeros((n, 4), np.float32)
    for i in range(n):
        kind = rng.integers(0, 5)
        if kind == 0:  # speckle anywhere (often touching the frame's edges)
            masks[i] = rng.random((h, w)) > rng.choice([0.5, 0.95, 0.999])
        elif kind == 1:  # a filled rectangle, edges included
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            masks[i, y0:rng.integers(y0 + 1, h + 1), x0:rng.integers(x0 + 1, w + 1)] = True
        elif kind == 2:  # a line along one frame edge
            masks[i, -1 if rng.random() < 0.5 else 0, :] = True
        elif kind == 3:  # one pixel
            masks[i, rng.integers(0, h), rng.integers(0, w)] = True
        # kind 4: empty
        rect = _tight_rects(masks[i:i + 1])[0]
        box = np.array([rect[2], rect[0], rect[3], rect[1]], np.float32)  # x0, y0, x1, y1 of the mask
        how = rng.integers(0, 5)
        if how == 1:  # the mask overshoots its box (shrunk by up to 40 px a side) or the box misses it
            box += rng.uniform(-40, 40, 4).astype(np.float32)
        elif how == 2:  # outside the frame
            box = np.array([w + 50, h + 50, w + 90, h + 70], np.float32) * rng.choice([1, -1])
        elif how == 3:  # inverted
            box = box[[2, 3, 0, 1]]
        elif how == 4:
            box[rng.integers(0, 4)] = rng.choice([np.nan, np.inf, -np.inf])
        boxes[i] = box
    return Detections(boxes=boxes, scores=rng.random(n).astype(np.float32), masks=masks, image_shape=(h, w))


def test_packing_is_lossless_whatever_the_boxes() -> None:
    """Property: the round trip gives the masks back bit for bit and each crop is the mask's tight bounding
    rectangle (as compact as a full scan), however the boxes relate to the masks, for any frame size and N."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 6), h=st.integers(1, 90), w=st.integers(1, 90))
    def check(seed: int, n: int, h: int, w: int) -> None:
        det = _random_detections(np.random.default_rng(seed), n, h, w)
        packed = pack_detections(det)
        assert np.array_equal(packed["crops"], _tight_rects(det.masks))
        back = unpack_detections(packed)
        assert back.masks.shape == det.masks.shape and back.masks.dtype == bool
        assert np.array_equal(back.masks, det.masks)
        assert np.array_equal(back.boxes, det.boxes, equal_nan=True) and np.array_equal(back.scores, det.scores)

    check()


def test_masks_far_outside_their_boxes_are_packed_whole() -> None:
    """The box only says where to look first: a mask reaching far beyond it (another backend's boxes, or none
    that fit) is still packed completely, and the masks that fit keep their tight rectangles."""
    masks = np.zeros((3, 256, 300), bool)
    masks[0, 10:20, 10:200] = True  # a wire, box fits
    masks[1, 100:110, 0:300] = True  # runs across the frame; its box covers only the middle
    masks[1, 255, 299] = True  # plus the far corner
    masks[2, 0, 0] = True  # one pixel, box on the other side of the frame
    boxes = np.array([[10, 10, 200, 20], [140, 100, 160, 110], [250, 200, 300, 256]], np.float32)
    det = Detections(boxes=boxes, scores=np.ones(3, np.float32), masks=masks, image_shape=(256, 300))
    packed = pack_detections(det)
    assert packed["crops"].tolist() == [[10, 20, 10, 200], [100, 256, 0, 300], [0, 1, 0, 1]]
    assert np.array_equal(unpack_detections(packed).masks, masks)


def test_unpacking_rejects_bits_shorter_than_the_crops() -> None:
    masks = np.zeros((2, 32, 32), bool)
    masks[0, 4:12, 4:12] = True
    masks[1, 20:30, 2:30] = True
    packed = pack_detections(Detections(boxes=np.array([[4, 4, 12, 12], [2, 20, 30, 30]], np.float32),
                                        scores=np.ones(2, np.float32), masks=masks, image_shape=(32, 32)))
    short = dict(packed, bits=packed["bits"][:-1], offsets=packed["offsets"] - np.array([0, 0, 1]))
    with pytest.raises(SegmentFailed, match="shorter than its crop"):
        unpack_detections(short)
