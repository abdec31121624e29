"""The microscope simulator: scenario -> synthetic frames -> messages on a ZeroMQ socket.

``FrameMaker`` draws frame ``i`` of a scenario with ``wirewatch.synth``; ``SeriesEncoder`` turns
frames into the messages of one registered wire format (``array-1.0``, DECTRIS ``stream2`` /
``stream1``, ...: the format's own ``SeriesWriter`` from ``wirewatch.ingest.formats``, so the daemon
decodes exactly what a real sender would send);
``Simulator`` binds (or connects) a PUSH or PUB socket and sends at a steady rate. Tests bind
``tcp://127.0.0.1:*`` and read the chosen port from ``Simulator.endpoint``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from wirewatch.errors import ConfigError
from wirewatch.ingest.formats import format_names, get_format
from wirewatch.simulate.scenario import Scenario

log = logging.getLogger(__name__)

# DECTRIS streams mark NODATA pixels (module gaps, masked pixels) with the dtype's maximum, as the real
# EIGER2 captures in the test data do; a real detector reports a saturated pixel at its announced
# saturation_value (the maximum - 1), never at the maximum. Formats say so with StreamFormat.reserves_nodata.
OD_FULL_SCALE = 2.0  # optical density that grey 255 stands for when sending transmission counts


class FrameMaker:
    """Frame ``i`` of a scenario: uint8 optical-density image (grey 0..255, the synthesiser's PNG) or,
    with ``signal: transmission``, uint16 counts ``i0 * exp(-OD)``."""

    def __init__(self, scenario: Scenario) -> None:
        from wirewatch.synth import generate  # lazy: heavy, and not needed just to load scenarios

        self.scenario = scenario
        self._generate = generate

    def sample(self, frame: int) -> Any:
        return self._generate(self.scenario.config_at(frame), seed=self.scenario.seed_for(frame))

    def image(self, frame: int) -> np.ndarray:
        return self._pixels(self.sample(frame).image, frame)

    def draw(self, frame: int) -> tuple[np.ndarray, dict[str, float]]:
        """Frame ``frame``'s image and its truth (``wirewatch.simulate.truth.frame_truth``)."""
        from wirewatch.simulate.truth import frame_truth

        sample = self.sample(frame)
        return self._pixels(sample.image, frame), frame_truth(sample)

    def _pixels(self, img: np.ndarray, frame: int = 0) -> np.ndarray:
        sc = self.scenario
        vx, vy = sc.drift_at(frame)
        if (vx or vy) and sc.exposure > 0:  # the stage moves while the detector integrates: a smear
            img = smear(img, vx * sc.exposure, vy * sc.exposure)
        intensity = sc.intensity_at(frame)
        if sc.signal == "transmission":
            od = img.astype(np.float32) / 255.0 * OD_FULL_SCALE
            counts = sc.i0 * intensity * np.exp(-od)
            if sc.shot_noise:
                counts = np.random.default_rng(sc.seed_for(frame) ^ 0x5EED).poisson(counts)
            return np.clip(np.rint(counts), 0, 65534).astype(np.uint16)
        if intensity != 1.0:
            return np.clip(np.rint(img.astype(np.float32) * intensity), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(img, dtype=np.uint8)


def smear(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` averaged along a straight path of ``(dx, dy)`` px (motion blur of a moving stage),
    same dtype. A line kernel sampled at quarter pixels and splatted bilinearly, applied by OpenCV."""
    import cv2

    length = float(np.hypot(dx, dy))
    if length < 0.5:
        return image
    half = int(np.ceil(length / 2)) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    for t in np.linspace(-0.5, 0.5, max(2, int(np.ceil(length * 4)) + 1)):
        x, y = half + t * dx, half + t * dy
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        kernel[y0, x0] += (1 - fx) * (1 - fy)
        kernel[y0, x0 + 1] += fx * (1 - fy)
        kernel[y0 + 1, x0] += (1 - fx) * fy
        kernel[y0 + 1, x0 + 1] += fx * fy
    kernel /= kernel.sum()
    out = cv2.filter2D(image.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(image.dtype)
    return out.astype(image.dtype)


class SeriesEncoder:
    """Messages of one series in one format: ``start()``, ``image(i, img)``, ``end()`` (each a list of
    multipart messages; array-1.0 has no start/end messages). ``compression`` goes to formats that
    have a choice (``StreamFormat.compressions``, e.g. Stream V2); ``signal`` / ``i0`` to formats that
    carry them (array-1.0); each image is stamped with the time it is encoded."""

    def __init__(self, format: str, *, series_id: int = 1, pixel_size_nm: float | None = None,
                 signal: str | None = None, i0: float | None = None, compression: str | None = "bslz4") -> None:
        if format not in format_names():
            raise ConfigError(f"unknown format {format!r}; allowed: {', '.join(format_names())}")
        self.format = format
        self.series_id = series_id
        self.uid = f"wirewatch-sim-{series_id}-{int(time.time() * 1000)}"
        self.pixel_size_nm = pixel_size_nm
        self.signal = signal
        self.i0 = i0
        self.compression = compression
        fmt = get_format(format)
        self._reserve_nodata = fmt.reserves_nodata
        options = {"compression": compression} if fmt.compressions else {}
        self._writer = fmt.writer(series_id=series_id, series_unique_id=self.uid, pixel_size_nm=pixel_size_nm,
                                  signal=signal, i0=i0 if signal == "transmission" and i0 else None,
                                  modality="simulated", **options)

    def start(self, shape: tuple[int, int], dtype: str, count: int) -> list[list[bytes]]:
        return self._writer.start(shape, dtype, count)

    def image(self, frame: int, image: np.ndarray) -> list[bytes]:
        if self._reserve_nodata:
            image = reserve_nodata(image)
        return self._writer.image(frame, image, time=time.time())

    def end(self) -> list[list[bytes]]:
        return self._writer.end()


def reserve_nodata(image: np.ndarray) -> np.ndarray:
    """``image`` with unsigned-integer pixels at the dtype's maximum (a DECTRIS stream's NODATA)
    lowered to the maximum - 1, the saturation value a detector announces: a bright pixel the
    scene drew (e.g. where wires cross and the 8-bit grey saturates) stays a bright pixel."""
    if image.dtype.kind != "u":
        return image
    top = np.iinfo(image.dtype).max
    return np.minimum(image, image.dtype.type(top - 1)) if image.max(initial=0) >= top else image


@dataclass(frozen=True)
class SimulatorResult:
    frames_sent: int
    messages_sent: int
    seconds: float
    stopped_early: bool


class Simulator:
    """Publishes ``frames`` frames of ``scenario`` at ``rate`` frames/s (0 = as fast as possible).

    ``socket``: ``push`` (default; blocks when the receiver is not keeping up, like a detector's
    PUSH) or ``pub`` (drops at the high-water mark). ``bind`` (default) or connect ``endpoint``.
    Frames are drawn ahead in a background thread (at most ``prefetch`` waiting) so drawing time
    does not disturb the rate. ``images`` replaces the scenario's frames (tests). ``truth`` maps
    each frame drawn from the scenario to what it holds (``wirewatch.simulate.truth``).
    """

    def __init__(self, scenario: Scenario, *, endpoint: str = "tcp://127.0.0.1:*", format: str = "array-1.0",
                 rate: float = 2.0, frames: int | None = None, socket: Literal["push", "pub"] = "push",
                 bind: bool = True, sndhwm: int = 100, compression: str | None = "bslz4", series_id: int = 1,
                 first_frame: int = 0, prefetch: int = 8, context: Any = None,
                 images: Callable[[int], np.ndarray] | None = None) -> None:
        if rate < 0:
            raise ConfigError(f"rate must be >= 0 frames/s, got {rate}")
        self.scenario = scenario
        self.frames = scenario.frames if frames is None else frames
        if self.frames < 1:
            raise ConfigError(f"frames must be >= 1, got {self.frames}")
        self.rate = rate
        self.first_frame = first_frame
        self.encoder = SeriesEncoder(format, series_id=series_id, pixel_size_nm=scenario.pixel_size_nm,
                                     signal=scenario.signal, i0=scenario.i0, compression=compression)
        self.truth: dict[int, dict[str, float]] = {}
        self._maker = FrameMaker(scenario) if images is None else None  # no synthesiser import for given images
        self._images = images or self._draw_with_truth
        self._prefetch = prefetch
        self._socket_kind = socket
        self._bind = bind
        self._endpoint = endpoint
        self._sndhwm = sndhwm
        self._context = context
        self._own_context = context is None
        self._socket: Any = None
        self.endpoint: str | None = None
        self.stop_event = threading.Event()
        self.sent_frames = 0
        self.error: BaseException | None = None

    def open(self) -> str:
        """Create and bind/connect the socket; returns the resolved endpoint."""
        import zmq

        if self._context is None:
            self._context = zmq.Context()
        sock = self._context.socket(zmq.PUSH if self._socket_kind == "push" else zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, self._sndhwm)
        sock.setsockopt(zmq.LINGER, 5000)  # deliver what was queued when closing
        try:
            sock.bind(self._endpoint) if self._bind else sock.connect(self._endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            raise ConfigError(f"simulator cannot {'bind' if self._bind else 'connect'} {self._endpoint!r}: "
                              f"{exc}") from None
        self._socket = sock
        self.endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode() or self._endpoint
        return self.endpoint

    def sent_truth(self) -> dict[int, dict[str, float]]:
        """``truth`` of the frames sent so far (frames drawn ahead but never sent left out)."""
        sent = range(self.first_frame, self.first_frame + self.sent_frames)
        return {i: self.truth[i] for i in sorted(self.truth) if i in sent}

    def _draw_with_truth(self, frame: int) -> np.ndarray:
        assert self._maker is not None  # only installed as the drawer when no images were given
        image, truth = self._maker.draw(frame)
        self.truth[frame] = truth
        return image

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._own_context and self._context is not None:
            self._context.term()
            self._context = None

    def stop(self) -> None:
        self.stop_event.set()

    def _send(self, parts: list[bytes]) -> bool:
        """Send, waiting for a receiver (PUSH) but giving up when stopped."""
        import zmq

        while not self.stop_event.is_set():
            try:
                self._socket.send_multipart(parts, flags=zmq.NOBLOCK)
                return True
            except zmq.Again:
                if self._socket_kind == "pub":
                    return True  # PUB drops at its HWM; so does the real thing
                self.stop_event.wait(0.005)
        return False

    def run(self, on_frame: Callable[[int], None] | None = None) -> SimulatorResult:
        """Send the series (start, frames, end); returns when done or ``stop()`` was called."""
        if self._socket is None:
            self.open()
        images: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue(maxsize=self._prefetch)
        ids = range(self.first_frame, self.first_frame + self.frames)
        drawer = threading.Thread(target=self._draw, args=(ids, images), name="wirewatch-sim-draw", daemon=True)
        drawer.start()
        t0 = time.monotonic()
        messages = 0
        stopped = False
        try:
            first = self._take(images)
            if first is None:
                return SimulatorResult(0, 0, 0.0, True)
            img0 = first[1]
            for parts in self.encoder.start((int(img0.shape[0]), int(img0.shape[1])), img0.dtype.name, self.frames):
                messages += self._send(parts)
            t0 = time.monotonic()
            item: tuple[int, np.ndarray] | None = first
            n = 0
            while item is not None:
                frame_id, img = item
                if self.rate > 0:
                    delay = t0 + n / self.rate - time.monotonic()
                    if delay > 0 and self.stop_event.wait(delay):
                        break
                if not self._send(self.encoder.image(frame_id, img)):
                    break
                messages += 1
                n += 1
                self.sent_frames = n
                if on_frame is not None:
                    on_frame(frame_id)
                if n >= self.frames:
                    break
                item = self._take(images)
            stopped = n < self.frames
            for parts in self.encoder.end():
                if self._send(parts):
                    messages += 1
        finally:
            self.stop_event.set()  # also stops the drawing thread
            drawer.join(timeout=5)
        return SimulatorResult(self.sent_frames, messages, time.monotonic() - t0, stopped)

    def _take(self, images: queue.Queue[tuple[int, np.ndarray] | None]) -> tuple[int, np.ndarray] | None:
        while not self.stop_event.is_set():
            try:
                return images.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def _draw(self, ids: range, out: queue.Queue[tuple[int, np.ndarray] | None]) -> None:
        for i in ids:
            try:
                img = self._images(i)
            except Exception as exc:  # a drawing failure ends the series cleanly, with the reason logged
                log.error("simulator: cannot draw frame %d: %s", i, exc)
                self.error = exc
                out.put(None)
                return
            while not self.stop_event.is_set():
                try:
                    out.put((i, img), timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self.stop_event.is_set():
                return
