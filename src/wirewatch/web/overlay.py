"""Overlays: for the live page (JPEG, rendered from the latest frame only while someone watches, at most
once per ``min_interval_s``, downscaled to ``max_side``; ``OverlayPusher`` thread, and on demand for
``GET /api/overlay.jpg`` through the same rate-limited cache) and for uploads (PNG, ``overlay_png``)."""

from __future__ import annotations

import base64
import logging
import threading
import time

import numpy as np

from .hub import Event, PushHub, encode_event
from .live import LiveState, ResultLike

log = logging.getLogger(__name__)


def encode_png(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes (OpenCV, low compression: fast, these images are transient)."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("PNG encoding failed")
    return bytes(buf)


def overlay_png(image: np.ndarray, masks: np.ndarray, max_side: int | None = None) -> bytes:
    """The frame in grey with each mask tinted and outlined (``wirewatch.plots.overlay_rgb``), as PNG.
    Frames longer than ``max_side`` are subsampled first (the browser shows them small anyway)."""
    from wirewatch.plots import overlay_rgb

    img = np.asarray(image)
    step = 1
    if max_side and max(img.shape[:2]) > max_side:
        step = int(np.ceil(max(img.shape[:2]) / max_side))
    if step > 1:
        img = img[::step, ::step]
        masks = masks[:, ::step, ::step]
    return encode_png(overlay_rgb(img, masks))


TRACK_PALETTE = 64  # with tracking on, a mask's colour is its track id modulo this many stable colours


def mask_track_ids(result: ResultLike) -> np.ndarray | None:
    """Per mask, the track id of its particle (-1 where none), or None when tracking is off."""
    particles = result.stats.particles
    if "track_id" not in particles:
        return None
    ids = np.full(len(result.detections.masks), -1, np.int64)
    track = np.asarray(particles["track_id"], np.int64)
    index = np.asarray(particles.get("mask_index", np.arange(track.size)), np.int64)
    ok = index < ids.size
    ids[index[ok]] = track[ok]
    return ids


def live_overlay_jpeg(image: np.ndarray, masks: np.ndarray, max_side: int | None = None,
                      track_ids: np.ndarray | None = None) -> bytes:
    """A cheap overlay for the live page (about a millisecond for 256 x 256 on an idle core): grey from the
    segmenter input (already 0..1, no percentile pass), built directly in OpenCV's BGR order, one label
    image instead of per-mask blends, outlines where the label changes between neighbours, JPEG.
    Same colours as ``wirewatch.plots.instance_colours``; with ``track_ids`` (tracking on) each mask takes
    its track's colour, so a wire keeps its colour from frame to frame."""
    import cv2

    from wirewatch.plots import instance_colours

    img = np.asarray(image)
    if max_side and max(img.shape[:2]) > max_side:
        step = int(np.ceil(max(img.shape[:2]) / max_side))
        img, masks = img[::step, ::step], masks[:, ::step, ::step]
    grey = cv2.convertScaleAbs(np.nan_to_num(img.astype(np.float32, copy=False), nan=0.0), alpha=255.0)
    bgr = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    n = len(masks)
    if n:
        label = np.zeros(grey.shape, np.uint16)
        for i, mask in enumerate(masks):
            label[mask] = i + 1  # where masks overlap the later one shows; fine for a glance
        lut = np.zeros((n + 1, 3), np.uint16)
        if track_ids is not None and len(track_ids) == n:
            palette = instance_colours(TRACK_PALETTE)[:, ::-1]
            lut[1:] = np.where((track_ids >= 0)[:, None], palette[np.maximum(track_ids, 0) % TRACK_PALETTE], 160)
        else:
            lut[1:] = instance_colours(n)[:, ::-1]
        inside = label > 0
        ids = label[inside]
        # (1 - alpha) * grey + alpha * colour in integer arithmetic (alpha = 115 / 256 ~ 0.45)
        bgr[inside] = ((141 * bgr[inside].astype(np.uint16) + 115 * lut[ids]) >> 8).astype(np.uint8)
        edge = np.zeros(grey.shape, bool)
        edge[1:, :] |= label[1:, :] != label[:-1, :]
        edge[:-1, :] |= label[:-1, :] != label[1:, :]
        edge[:, 1:] |= label[:, 1:] != label[:, :-1]
        edge[:, :-1] |= label[:, :-1] != label[:, 1:]
        edge &= inside
        bgr[edge] = lut[label[edge]].astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf)


def overlay_event(frame: int | None, jpeg: bytes) -> Event:
    return encode_event("overlay", {"frame": frame, "jpeg": base64.b64encode(jpeg).decode("ascii")})


class OverlayCache:
    """The latest overlay, re-encoded at most every ``min_interval_s`` and only when a newer frame exists."""

    def __init__(self, state: LiveState, *, min_interval_s: float = 0.5, max_side: int = 512) -> None:
        self.state = state
        self.min_interval_s = min_interval_s
        self.max_side = max_side
        self._lock = threading.Lock()
        self._version = -1
        self._frame: int | None = None
        self._jpeg: bytes | None = None
        self._encoded_at = 0.0
        self.encoded = 0  # how many overlays were rendered (tests and the benchmark read it)

    def get(self) -> tuple[int | None, bytes | None]:
        """(frame id, JPEG) of the freshest overlay allowed by the rate limit; (None, None) before any frame."""
        with self._lock:
            version, result = self.state.latest_result()
            due = time.monotonic() - self._encoded_at >= self.min_interval_s
            if result is not None and version != self._version and (due or self._jpeg is None):
                self._jpeg = self._render(result)
                self._frame = int(result.frame.frame_id)
                self._version = version
                self._encoded_at = time.monotonic()
                self.encoded += 1
            return self._frame, self._jpeg

    def wait_time(self) -> float:
        return max(0.0, self.min_interval_s - (time.monotonic() - self._encoded_at))

    def _render(self, result: ResultLike) -> bytes:
        return live_overlay_jpeg(result.image, result.detections.masks, self.max_side, mask_track_ids(result))


class OverlayPusher:
    """Background thread: while a client watches, pushes ``overlay`` (on a new frame, rate-limited) and
    ``status`` (every ``status_interval_s``) events. Idle (blocked on an event) while nobody watches."""

    def __init__(self, state: LiveState, hub: PushHub, cache: OverlayCache, *, status_interval_s: float = 1.0) -> None:
        self.state = state
        self.hub = hub
        self.cache = cache
        self.status_interval_s = status_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wirewatch-web-push", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last_status = 0.0
        pushed_version = -1
        while not self._stop.is_set():
            if not self.hub.watching.wait(1.0):
                continue
            self.state.changed.wait(min(self.status_interval_s, 0.5))
            if self._stop.is_set():
                break
            try:
                if time.monotonic() - last_status >= self.status_interval_s:
                    self.hub.publish(encode_event("status", self.state.status()))
                    last_status = time.monotonic()
                if self.state.version != pushed_version:
                    delay = self.cache.wait_time()
                    if delay > 0:
                        self._stop.wait(delay)
                    self.state.changed.clear()
                    frame, jpeg = self.cache.get()
                    if jpeg is not None:
                        pushed_version = self.state.version
                        self.hub.publish(overlay_event(frame, jpeg))  # one encoding for every page
                else:
                    self.state.changed.clear()
            except Exception:  # never let a rendering bug end the thread
                log.exception("web view: pushing the overlay failed")
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        self.state.changed.set()
        self._thread.join(timeout=2)
