"""A bounded, ordered buffer of raw messages with the two overload policies.

``latest``: when full, the oldest data message is evicted (counted as dropped,
reason ``overflow``); ``put`` never blocks, so the socket keeps draining and a
PUSH sender never stalls. ``queue``: ``put`` blocks until there is room
(back-pressure through ZeroMQ to the sender; lossless with PUSH/PULL).
Control messages (series start/end) are never evicted; they have their own,
larger bound (``control_capacity``) so a flood of them cannot grow memory
either (reason ``control_overflow``, which a real detector never triggers).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Literal

from wirewatch.ingest.base import RawMessage

Policy = Literal["latest", "queue"]
POLICIES: tuple[str, ...] = ("latest", "queue")


class MessageBuffer:
    def __init__(self, capacity: int, policy: Policy = "latest", *, control_capacity: int = 1024,
                 on_drop: Callable[[str, RawMessage], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; allowed: {', '.join(POLICIES)}")
        self.capacity = capacity
        self.control_capacity = control_capacity
        self.policy = policy
        self._items: deque[RawMessage] = deque()
        self._data_count = 0
        self._control_count = 0
        self._cond = threading.Condition()
        self._on_drop = on_drop
        self.dropped: Counter[str] = Counter()
        self.put_count = 0
        self.get_count = 0
        self.max_len = 0
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def put(self, msg: RawMessage, stop: threading.Event | None = None) -> bool:
        """Add a message; under ``queue`` wait for room (False if ``stop`` was set meanwhile)."""
        evicted: RawMessage | None = None
        reason = ""
        with self._cond:
            if msg.control:
                if self._control_count >= self.control_capacity:
                    reason, evicted = "control_overflow", self._evict(control=True)
                self._control_count += 1
            else:
                if self._data_count >= self.capacity:
                    if self.policy == "queue":
                        while self._data_count >= self.capacity and not self._closed:
                            if stop is not None and stop.is_set():
                                return False
                            self._cond.wait(0.05)
                    else:  # capacity >= 1 and one message arrives at a time: one eviction makes room
                        reason, evicted = "overflow", self._evict(control=False)
                self._data_count += 1
            self._items.append(msg)
            self.put_count += 1
            if evicted is not None:
                self.dropped[reason] += 1
            if len(self._items) > self.max_len:
                self.max_len = len(self._items)
            self._cond.notify()
        if evicted is not None and self._on_drop is not None:
            self._on_drop(reason, evicted)
        return True

    def _evict(self, *, control: bool) -> RawMessage:
        if self._items[0].control == control:  # the usual case: the oldest is of the kind to evict
            item = self._items.popleft()
            if control:
                self._control_count -= 1
            else:
                self._data_count -= 1
            return item
        for i, item in enumerate(self._items):
            if item.control == control:
                del self._items[i]
                if control:
                    self._control_count -= 1
                else:
                    self._data_count -= 1
                return item
        raise RuntimeError("nothing to evict")  # unreachable: counts say there is one

    def get(self, timeout: float | None = None) -> RawMessage | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining if remaining is not None else 0.1)
            msg = self._items.popleft()
            if msg.control:
                self._control_count -= 1
            else:
                self._data_count -= 1
            self.get_count += 1
            self._cond.notify_all()
            return msg

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
