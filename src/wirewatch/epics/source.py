"""``PvaSource``: a p4p monitor on an areaDetector NTNDArray PV feeding the daemon's pipeline.

The p4p callback thread plays the ZeroMQ drain thread's part: it copies each update into a raw
two-part message (``ntndarray.pack_update``; no decoding, no decompression) and hands it to the same
bounded ``MessageBuffer`` as the ZeroMQ sources, so the overload policies are the same:

- ``latest``: at most ``buffer`` updates wait; a new one evicts the oldest (``dropped{overflow}``);
- ``queue``: the callback waits for room, so updates wait in the PV Access monitor queue
  (``monitor_queue`` deep); when that is full too, PV Access itself squashes updates (it keeps the
  newest), which shows up as a gap in ``uniqueId``. PV Access has no lossless back-pressure to an IOC:
  ``queue`` means lossless only while bursts fit the queues.

Updates that never arrived (``uniqueId`` jumped forward) are counted in ``missed``. A lost connection
(IOC restart) is counted in ``disconnects``; p4p searches for the PV again and the monitor resumes by
itself when the IOC is back. A monitor the server finished (PV closed) is re-created every
``resubscribe_s``. The format is ``pva`` (``pva_format.PvaFormat``, decoder ``ntndarray.NTNDArrayDecoder``).

Counting and ``stats()`` are ``wirewatch.ingest.buffered.BufferedSource``'s, shared with ``ZmqSource``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from wirewatch.epics.config import EpicsInputConfig
from wirewatch.epics.ntndarray import FORMAT, pack_update
from wirewatch.epics.pva_format import register_pva_format
from wirewatch.errors import ConfigError
from wirewatch.ingest.base import RawMessage
from wirewatch.ingest.buffered import BufferedSource
from wirewatch.ingest.limits import DEFAULT_LIMITS, DecodeLimits

log = logging.getLogger(__name__)


def register_decoder() -> None:
    """Make ``wirewatch.ingest.make_decoder('pva')`` build our decoder (idempotent; no p4p import)."""
    register_pva_format()


class PvaSource(BufferedSource):
    """Implements ``wirewatch.ingest.base.Source`` for one NTNDArray PV."""

    format_name = FORMAT

    def __init__(self, config: EpicsInputConfig, *, policy: str = "latest", buffer: int = 2,
                 limits: DecodeLimits = DEFAULT_LIMITS, pva_conf: Mapping[str, str] | None = None,
                 on_drop: Callable[[str, RawMessage], None] | None = None,
                 on_reject: Callable[[str, str], None] | None = None) -> None:
        if config.pv is None:
            raise ConfigError("PV Access input needs a PV name (--input PV or epics.input.pv)")
        register_decoder()
        super().__init__(buffer=buffer, policy="queue" if policy == "queue" else "latest", on_drop=on_drop,
                         on_reject=on_reject)
        self.config = config
        self.pv: str = config.pv
        self.policy = policy
        self.limits = limits
        self.pva_conf = dict(pva_conf or {})
        self._stop = threading.Event()
        self._last_unique_id: int | None = None
        self.empty_updates = 0
        self.missed = 0  # updates the server never delivered (uniqueId gaps)
        self.disconnects = 0
        self.connects = 0
        self.connected = False
        self.error: BaseException | None = None
        self._ctx: Any = None
        self._sub: Any = None
        self._resubscriber: threading.Thread | None = None
        self.endpoint = f"pva://{self.pv}"

    # -- Source protocol -------------------------------------------------------------------------
    def start(self) -> None:
        from p4p.client.thread import Context

        conf = self.pva_conf or None
        self._ctx = Context("pva", conf=conf, useenv=conf is None, nt=False)
        self._subscribe()

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def describe_input(self) -> str:
        return f"PV Access monitor of {self.pv}, format {self.format_name}"

    def close(self) -> None:
        """Stop intake; messages already buffered stay readable with ``get``."""
        self._stop.set()
        sub, ctx = self._sub, self._ctx
        self._sub = None
        if sub is not None:
            sub.close()
        if ctx is not None:
            ctx.close()
            self._ctx = None
        self._buffer.close()

    # -- monitor -----------------------------------------------------------------------------------
    def _subscribe(self) -> None:
        # No pipeline=true: with it, pvxs held the last updates of a burst back until more came (p4p 4.3).
        request = f"record[queueSize={self.config.monitor_queue}]"
        self._sub = self._ctx.monitor(self.pv, self._on_update, request=request, notify_disconnect=True)

    def _on_update(self, value: Any) -> None:
        from p4p.client.thread import Cancelled, Disconnected, Finished, RemoteError

        if self._stop.is_set():
            return
        if isinstance(value, Disconnected):
            if self.connected:
                self.disconnects += 1
                log.warning("PV %s disconnected (IOC gone?); waiting for it to come back", self.pv)
            self.connected = False
            return
        if isinstance(value, Finished):
            self.connected = False
            log.warning("PV %s finished the monitor; subscribing again every %.1f s", self.pv,
                        self.config.resubscribe_s)
            self._start_resubscribe()
            return
        if isinstance(value, RemoteError | Cancelled | Exception):
            self._reject("remote_error", f"PV {self.pv}: {value!r}", counted=False)
            return
        if not self.connected:
            self.connected = True
            self.connects += 1
            if self.connects > 1:
                log.info("PV %s connected again", self.pv)
        if _is_empty(value):
            self.empty_updates += 1  # an IOC's placeholder before its first frame: nothing to decode
            return
        try:
            parts = pack_update(value, pixel_size_attribute=self.config.pixel_size_attribute,
                                pixel_size_scale=self.config.pixel_size_scale, pv=self.pv)
        except Exception as exc:  # not an NTNDArray at all: count it, keep the stream
            self._reject("bad_header", f"PV {self.pv}: update is not an NTNDArray ({exc!r})", counted=False)
            return
        self._track_gaps(value)
        self._received_message(len(parts[0]) + len(parts[1]))
        msg = RawMessage(parts=parts, received_at=time.time(), seq=self._next_seq())
        if msg.nbytes > self.limits.max_message_bytes:
            self._reject("oversized", f"update of {msg.nbytes} bytes is above max_message_bytes")
            return
        self._offer(msg, self._stop)

    def _track_gaps(self, value: Any) -> None:
        uid = value.get("uniqueId")
        if isinstance(uid, int):
            last = self._last_unique_id
            if last is not None and uid > last + 1:
                self.missed += uid - last - 1
            self._last_unique_id = uid

    def _start_resubscribe(self) -> None:
        if self._resubscriber is not None and self._resubscriber.is_alive():
            return

        def run() -> None:
            while not self._stop.wait(self.config.resubscribe_s):
                if self.connected or self._ctx is None:
                    return
                try:
                    old = self._sub
                    self._subscribe()
                    if old is not None:
                        old.close()
                    return
                except Exception as exc:
                    log.warning("PV %s: subscribing again failed: %r", self.pv, exc)

        self._resubscriber = threading.Thread(target=run, name="pva-resubscribe", daemon=True)
        self._resubscriber.start()


def _is_empty(value: Any) -> bool:
    try:
        return value.get("value") is None
    except Exception:
        return False
