"""``wirewatch simulate --format pva --pv NAME``: the synthesised scenario as an areaDetector-like PV.

Serves one ``NTNDArray`` PV the way NDPluginPva publishes a detector's frames: ``uniqueId`` counting
from ``first_id`` (areaDetector's ArrayCounter), ``timeStamp`` = acquisition time, attributes
``ColorMode`` and (with a pixel size) ``PixelSizeNm``, optionally ``lz4``/``bslz4`` compressed as
ADCore's NDPluginCodec does. Frames come from ``wirewatch.simulate.producer.FrameMaker`` (uint8 optical
density, or uint16 counts for a transmission scenario), drawn ahead in a background thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from wirewatch.epics.config import check_pv_name
from wirewatch.epics.ntndarray import make_ntndarray
from wirewatch.errors import ConfigError

log = logging.getLogger(__name__)
PIXEL_SIZE_ATTRIBUTE = "PixelSizeNm"
CODECS = ("none", "lz4", "bslz4")


@dataclass(frozen=True)
class PvaSimulatorResult:
    frames_sent: int
    seconds: float


class PvaSimulator:
    """Serve ``frames`` frames of ``scenario`` on PV ``pv`` at ``rate`` frames/s (0 = as fast as possible).

    ``open()`` starts the PV Access server (settings ``pva_conf``; empty = the process environment),
    ``run()`` posts the frames, ``close()`` stops the server (an IOC going away). ``images`` replaces the
    scenario's frames (tests, benchmarks).
    """

    def __init__(self, scenario: Any, *, pv: str, rate: float = 2.0, frames: int | None = None,
                 codec: str = "none", first_id: int = 1, pva_conf: Mapping[str, str] | None = None,
                 images: Callable[[int], np.ndarray] | None = None, prefetch: int = 8,
                 wait_for_client_s: float = 0.0) -> None:
        if rate < 0:
            raise ConfigError(f"rate must be >= 0 frames/s, got {rate}")
        if codec not in CODECS:
            raise ConfigError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
        try:
            self.pv = check_pv_name(pv, "--pv")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.scenario = scenario
        self.frames = scenario.frames if frames is None and scenario is not None else int(frames or 0)
        if self.frames < 1:
            raise ConfigError(f"frames must be >= 1, got {self.frames}")
        self.rate = rate
        self.codec = codec
        self.first_id = first_id
        self.pva_conf = dict(pva_conf or {})
        self.wait_for_client_s = wait_for_client_s
        if images is None:
            from wirewatch.simulate.producer import FrameMaker

            images = FrameMaker(scenario).image
        self._images = images
        self._prefetch = prefetch
        self.pixel_size_nm = getattr(scenario, "pixel_size_nm", None)
        self.stop_event = threading.Event()
        self._server: Any = None
        self._pv: Any = None
        self._clients = threading.Event()
        self.sent_frames = 0

    def open(self) -> dict[str, str]:
        """Start serving the PV (an empty frame until ``run``); returns the server's effective settings."""
        from p4p.nt import NTNDArray
        from p4p.server import Server
        from p4p.server.thread import SharedPV
        from p4p.wrapper import Value

        clients = self._clients

        class Handler:
            def onFirstConnect(self, pv: Any) -> None:
                clients.set()

            def onLastDisconnect(self, pv: Any) -> None:
                clients.clear()

        # As NDPluginPva before the first frame: an NTNDArray with no value selected (skipped by readers).
        self._pv = SharedPV(handler=Handler(), initial=Value(NTNDArray.buildType(), {}))
        conf = self.pva_conf or None
        self._server = Server(providers=[{self.pv: self._pv}], conf=conf, useenv=conf is None)
        return dict(self._server.conf())

    def post(self, frame_index: int, image: np.ndarray, unique_id: int | None = None) -> None:
        attrs: dict[str, Any] = {}
        if self.pixel_size_nm is not None:
            attrs[PIXEL_SIZE_ATTRIBUTE] = float(self.pixel_size_nm)
        uid = self.first_id + frame_index if unique_id is None else unique_id
        self._pv.post(make_ntndarray(image, unique_id=uid, timestamp=time.time(), codec=self.codec,
                                     attributes=attrs))

    def run(self, on_frame: Callable[[int], None] | None = None) -> PvaSimulatorResult:
        if self._server is None:
            self.open()
        if self.wait_for_client_s > 0:
            self._clients.wait(self.wait_for_client_s)
        images: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue(maxsize=self._prefetch)
        drawer = threading.Thread(target=self._draw, args=(images,), name="wirewatch-pva-sim-draw", daemon=True)
        drawer.start()
        period = 1.0 / self.rate if self.rate > 0 else 0.0
        t0 = time.monotonic()
        next_at = t0
        sent = 0
        while not self.stop_event.is_set():
            item = images.get()
            if item is None:
                break
            i, image = item
            if period:
                delay = next_at - time.monotonic()
                if delay > 0 and self.stop_event.wait(delay):
                    break
                next_at += period
            self.post(i, image)
            sent += 1
            self.sent_frames = sent
            if on_frame is not None:
                on_frame(i)
        self.stop_event.set()
        return PvaSimulatorResult(frames_sent=sent, seconds=time.monotonic() - t0)

    def _draw(self, out: queue.Queue[tuple[int, np.ndarray] | None]) -> None:
        try:
            for i in range(self.frames):
                if self.stop_event.is_set():
                    break
                out.put((i, self._images(i)))
        finally:
            out.put(None)

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        self.stop_event.set()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._pv is not None:
            self._pv.close()
            self._pv = None
