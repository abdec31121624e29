"""``OrderedWindow``: up to ``size`` jobs in flight at once, results handed on in submission order.

The daemon uses it when the segmenter can work on several frames at once (the ``ray`` backend:
replicas in other processes or on other machines). Frames finish out of order there, but
measurement and change-point detection must see the series in frame order; this window runs each
job on a worker thread, and one collector thread hands the results to ``deliver`` strictly in the
order the jobs were submitted. Items that need no work (series start/end events) keep their
place in that order with ``put_ready``.

Back-pressure: ``submit`` and ``wait_for_slot`` block while every slot is busy (a slot is freed
only once its result was delivered, so a slow consumer holds the window too). With
``block=False``, ``submit`` refuses the job instead and counts it in ``dropped`` (policy
``latest``). The daemon waits for a slot *before* taking the next message from its raw buffer,
so under overload the ingest policy decides what is lost (``latest``: older frames are dropped
and counted there; ``queue``: the sender is pushed back).

Why by hand: ``concurrent.futures`` has no bounded, order-keeping executor (``Executor.map``
orders results but needs every input up front and has no bound on what is queued); this is that
executor's ordering plus a slot count, on top of ``ThreadPoolExecutor``.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class OrderedWindow(Generic[T]):
    """``submit(job)`` runs ``job()`` on one of ``size`` worker threads; ``deliver(result)`` is called
    from the collector thread in submission order. ``finish()`` waits for (or abandons) what is left."""

    def __init__(self, size: int, deliver: Callable[[T], object], *, name: str = "wirewatch-inflight",
                 poll_s: float = 0.1) -> None:
        if size < 1:
            raise ValueError(f"an in-flight window needs at least 1 slot, got {size}")
        self.size = size
        self._deliver = deliver
        self._poll = poll_s
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)
        self._cond = threading.Condition()
        self._pending: deque[tuple[Future[T], bool]] = deque()  # (result, takes a slot), submission order
        self._busy = 0  # jobs submitted and not yet delivered
        self._closing = False
        self._abort = False
        self.dropped = 0  # jobs refused with block=False while every slot was busy
        self.delivered = 0
        self.peak_in_flight = 0  # most jobs in flight at once so far
        self.abandoned = 0  # jobs given up by finish(abort=True)
        self._collector = threading.Thread(target=self._collect, name=f"{name}-collect", daemon=True)
        self._collector.start()

    # -- producer side ---------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._busy

    def wait_for_slot(self, timeout: float | None = None) -> bool:
        """True as soon as a slot is free; False after ``timeout`` seconds with every slot busy."""
        with self._cond:
            return self._cond.wait_for(lambda: self._busy < self.size or self._abort, timeout)

    def submit(self, job: Callable[[], T], *, block: bool = True, timeout: float | None = None) -> bool:
        """Queue ``job``; False (and ``dropped`` += 1) when no slot frees in time (``block=False``: at once)."""
        with self._cond:
            if self._closing:
                raise RuntimeError("the in-flight window is finished")
            if not self._cond.wait_for(lambda: self._busy < self.size or self._abort,
                                       timeout if block else 0):
                self.dropped += 1
                return False
            if self._abort:
                return False
            self._busy += 1
            self.peak_in_flight = max(self.peak_in_flight, self._busy)
            future = self._pool.submit(job)
            self._pending.append((future, True))
            self._cond.notify_all()
        return True

    def put_ready(self, item: T) -> None:
        """An item that needs no work: delivered after everything submitted before it (takes no slot)."""
        future: Future[T] = Future()
        future.set_result(item)
        with self._cond:
            if self._closing:
                raise RuntimeError("the in-flight window is finished")
            self._pending.append((future, False))
            self._cond.notify_all()

    def finish(self, timeout: float | None = None, *, abort: Callable[[], bool] | None = None) -> int:
        """Stop taking jobs; deliver what is in flight, waiting at most ``timeout`` seconds (or until
        ``abort()`` turns true). Returns the number of jobs abandoned (not delivered)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        waited = 0.0
        while self._collector.is_alive():
            self._collector.join(self._poll)
            waited += self._poll
            if (abort is not None and abort()) or (timeout is not None and waited >= timeout):
                break
        if self._collector.is_alive():
            with self._cond:
                self._abort = True
                self.abandoned = self._busy
                self._cond.notify_all()
            log.warning("in-flight window: %d job(s) abandoned at shutdown", self.abandoned)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._collector.join(1.0)
        return self.abandoned

    # -- collector -------------------------------------------------------------------------------
    def _collect(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._closing or self._abort)
                if self._abort or (not self._pending and self._closing):
                    return
                future, slot = self._pending[0]
            result = self._wait(future)
            with self._cond:
                if self._abort:
                    return
                self._pending.popleft()
            try:
                if result is not _FAILED:
                    self._deliver(result)  # type: ignore[arg-type]
            except Exception:  # a consumer bug must not stop the window
                log.exception("in-flight window: delivering a result failed")
            with self._cond:
                self.delivered += 1
                if slot:
                    self._busy -= 1
                self._cond.notify_all()

    def _wait(self, future: Future[T]) -> T | object:
        while True:
            try:
                return future.result(timeout=self._poll)
            except FutureTimeout:
                if self._abort:
                    return _FAILED
            except CancelledError:
                return _FAILED
            except Exception:  # jobs should handle their own errors; one that raises is logged, skipped
                log.exception("in-flight window: a job failed")
                return _FAILED


_FAILED = object()
