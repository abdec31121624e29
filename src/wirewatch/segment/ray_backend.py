"""The ``ray`` segmenter backend: segmentation served by a Ray Serve deployment.

Each replica of the deployment (``WirewatchSegmenter`` in the application ``wirewatch-segment``)
holds one of the in-process segmenters (``inner``: onnxruntime by default, tensorrt, watershed)
and segments one frame at a time. The daemon sends frames as numpy arrays through Ray (actor
calls: large arguments travel through the object store, not as JSON) and gets masks back
compact (each mask cut to its bounding rectangle and bit-packed with ``np.packbits``: ~30 kB for
the ~34 wires of a 512 x 512 frame instead of 9 MB of full-frame bool masks), unpacked here. The
daemon keeps up to ``max_in_flight`` frames in flight (``wirewatch.daemon.inflight.OrderedWindow``)
and hands results on in frame order.

``address``: unset starts a local Ray inside the daemon (the embedded default; shut down with
the daemon); ``auto`` joins the Ray cluster this machine is a node of (``ray start --address``),
``ray://host:10001`` joins through Ray Client. On a cluster whose ``wirewatch-segment``
application already runs (a KubeRay RayService shared by several daemons) the daemon uses it
as it is and leaves it running when it stops.

Faults: a request whose replica died (``ActorDiedError``/``ActorUnavailableError``, e.g. the
replica's process was killed) is sent once more (Serve routes it to a live or restarted
replica); a second failure raises, and the daemon counts the frame as ``segment_failed``.
``ready()`` is false while the deployment has no running replica (polled from Serve's
controller in a background thread, so ``/readyz`` costs nothing). The controller notices a killed
replica only at its next health check, and may start the new one first, so its count alone can
stay above zero through a kill: a replica death seen by a request also turns ``ready()`` false,
until a request sent after it (a frame, or the poller's ``pid`` probe) is answered. The retry is a two-attempt
loop rather than tenacity: one retry, on two exception types, with nothing to wait between.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wirewatch.errors import BackendUnavailable, InputError, WirewatchError
from wirewatch.segment import ENGINES
from wirewatch.types import Detections

log = logging.getLogger(__name__)

APP_NAME = "wirewatch-segment"
DEPLOYMENT_NAME = "WirewatchSegmenter"
# the segmenters a replica may hold: every model engine (segment.ENGINES), the watershed baseline, and an alias
INNER_BACKENDS = {"onnx": "onnxruntime", **{name: name for name in ENGINES}, "watershed": "watershed"}
# Extra environment of each replica process (Serve's settings are read from the environment), e.g.
# {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}: Serve runs a replica's methods on a second event loop
# in its own thread by default, one thread switch per request. Empty: Serve's defaults.
REPLICA_ENV: dict[str, str] = {}


class SegmentFailed(WirewatchError):
    """Segmentation failed on the Ray deployment (after the retry)."""


# -- compact detections on the wire ----------------------------------------------------------------
# A mask's rectangle is first looked for in its box widened by this much: the model pastes each mask over its
# box plus one cell of its 28 x 28 (or 56 x 56) grid (``segment.paste``), up to ~9 px beyond the box on real
# frames. A mask that reaches further is still packed whole (found by the check in ``pack_detections``).
_WINDOW_MARGIN_PX = 16
_WINDOW_MARGIN_OF_BOX = 1 / 14  # two 28-grid cells of the box's extent, for large boxes


def _box_windows(boxes: np.ndarray, h: int, w: int) -> list[list[int]]:
    """y0, y1, x0, x1 per x0, y0, x1, y1 box: the box widened by the margin and clamped to the frame (the
    whole frame for a box that is not finite; an empty window for a box outside the frame)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    b = np.where(np.all(np.isfinite(b), axis=1, keepdims=True), b, (0.0, 0.0, float(w), float(h)))
    mx = _WINDOW_MARGIN_PX + _WINDOW_MARGIN_OF_BOX * np.abs(b[:, 2] - b[:, 0])
    my = _WINDOW_MARGIN_PX + _WINDOW_MARGIN_OF_BOX * np.abs(b[:, 3] - b[:, 1])
    out = np.stack([np.floor(np.minimum(b[:, 1], b[:, 3]) - my), np.ceil(np.maximum(b[:, 1], b[:, 3]) + my),
                    np.floor(np.minimum(b[:, 0], b[:, 2]) - mx), np.ceil(np.maximum(b[:, 0], b[:, 2]) + mx)], axis=1)
    return np.clip(out, 0, (h, h, w, w)).astype(np.int64).tolist()  # type: ignore[no-any-return]


def _rect_in(masks: np.ndarray, i: int, y0: int, y1: int, x0: int, x1: int) -> tuple[int, int, int, int] | None:
    """y0, y1, x0, x1 of the set pixels of ``masks[i]`` inside the window (None when it has none there);
    ``masks`` is uint8 (OpenCV's bounding rectangle of non-zero pixels, no copy of the window)."""
    if y0 >= y1 or x0 >= x1:
        return None
    x, y, rw, rh = cv2.boundingRect(masks[i, y0:y1, x0:x1])
    return None if rw == 0 else (y0 + y, y0 + y + rh, x0 + x, x0 + x + rw)


def _pixels_in(bits: np.ndarray) -> int:
    """Set bits of packed pieces (each piece's padding bits are zero)."""
    return int(np.count_nonzero(np.unpackbits(bits)))


def pack_detections(det: Detections) -> dict[str, Any]:
    """Detections as plain arrays, each mask reduced to its bounding rectangle and bit-packed (what a replica
    returns): a wire of 40 x 6 pixels costs 30 bytes instead of a full frame of 1 bit per pixel.

    Each rectangle is looked for inside the mask's box plus a margin, not in the whole (N, H, W) stack. Lossless
    whatever the boxes: the pixels packed must add up to the stack's non-zero count (one pass over it, the only
    one), and a mask with pixels outside its window is packed from its whole frame instead."""
    n = len(det)
    h, w = det.image_shape
    masks = np.ascontiguousarray(det.masks).view(np.uint8)  # OpenCV takes uint8, not bool (a view: no copy)
    crops = np.zeros((n, 4), np.int32)  # y0, y1, x0, x1 per mask (empty mask: 0, 0, 0, 0)
    pieces: list[np.ndarray] = []
    for i, window in enumerate(_box_windows(det.boxes, h, w)):
        rect = _rect_in(masks, i, *window)
        if rect is None:
            pieces.append(np.zeros(0, np.uint8))
            continue
        crops[i] = rect
        y0, y1, x0, x1 = rect
        pieces.append(np.packbits(masks[i, y0:y1, x0:x1]))
    bits = np.concatenate(pieces) if pieces else np.zeros(0, np.uint8)
    if masks.size and _pixels_in(bits) != cv2.countNonZero(masks.reshape(-1, w)):  # a mask left its window
        for i in range(n):
            if _pixels_in(pieces[i]) != cv2.countNonZero(masks[i]):
                rect = _rect_in(masks, i, 0, h, 0, w)
                assert rect is not None  # it has more pixels than its (possibly empty) piece
                crops[i] = rect
                y0, y1, x0, x1 = rect
                pieces[i] = np.packbits(masks[i, y0:y1, x0:x1])
        bits = np.concatenate(pieces)
    offsets = np.zeros(n + 1, np.int64)
    offsets[1:] = np.cumsum([len(p) for p in pieces])
    return {"shape": (int(h), int(w)), "boxes": np.ascontiguousarray(det.boxes, np.float32),
            "scores": np.ascontiguousarray(det.scores, np.float32),
            "mask_scores": None if det.mask_scores is None else np.ascontiguousarray(det.mask_scores, np.float32),
            "crops": crops, "offsets": offsets, "bits": bits}


def unpack_detections(packed: dict[str, Any]) -> Detections:
    """The inverse of ``pack_detections``; a reply of the wrong form is an error, not a crash."""
    try:
        h, w = (int(v) for v in packed["shape"])
        bits = np.asarray(packed["bits"], np.uint8)
        crops = np.asarray(packed["crops"], np.int64).reshape(-1, 4)
        offsets = np.asarray(packed["offsets"], np.int64)
        n = len(packed["scores"])
        if len(crops) != n or len(offsets) != n + 1:
            raise ValueError(f"{n} detections but {len(crops)} mask crops / {len(offsets)} offsets")
        y0, y1, x0, x1 = crops.T
        used = (y1 > y0) & (x1 > x0)  # an empty mask's crop is 0, 0, 0, 0
        outside = used & ((y0 < 0) | (y1 > h) | (x0 < 0) | (x1 > w))
        if outside.any():
            raise ValueError(f"mask crop {tuple(crops[np.argmax(outside)])} outside the {h} x {w} frame")
        sizes = (y1 - y0) * (x1 - x0)
        if (np.diff(offsets) < np.where(used, (sizes + 7) // 8, 0)).any():
            raise ValueError("a mask's packed bits are shorter than its crop")
        pixels = np.unpackbits(bits).view(bool)  # every piece at once; 0/1 bytes viewed as bool, no conversion
        starts = (offsets * 8).tolist()
        masks = np.zeros((n, h, w), bool)
        for i in np.flatnonzero(used).tolist():
            a, b, c, d = crops[i].tolist()
            masks[i, a:b, c:d] = pixels[starts[i]:starts[i] + (b - a) * (d - c)].reshape(b - a, d - c)
        return Detections(boxes=np.asarray(packed["boxes"], np.float32), scores=np.asarray(packed["scores"], np.float32),
                          masks=masks, image_shape=(h, w),
                          mask_scores=None if packed.get("mask_scores") is None
                          else np.asarray(packed["mask_scores"], np.float32))
    except (KeyError, TypeError, ValueError) as exc:
        raise SegmentFailed(f"a replica's reply is not packed detections: {exc}") from None


# -- the replica -----------------------------------------------------------------------------------
class SegmentReplica:
    """One Serve replica: one in-process segmenter, one frame at a time (requests that arrive while a
    frame is segmented wait here with their frame already fetched: the next one starts at once)."""

    def __init__(self, inner: str, options: dict[str, Any]) -> None:
        from wirewatch.segment import load_segmenter

        self.segmenter = load_segmenter(inner, **options)
        self._lock = threading.Lock()

    def segment(self, image: np.ndarray) -> dict[str, Any]:
        entered = time.time()  # wall clock: the daemon compares it with its own (same machine only)
        t0 = time.perf_counter()
        with self._lock:
            t1, c1 = time.perf_counter(), time.thread_time()
            det = self.segmenter.segment(image)
            t2, c2 = time.perf_counter(), time.thread_time()
        packed = pack_detections(det)
        packed["pid"] = os.getpid()  # lets the daemon count (and tests find) the replicas serving it
        packed["wait_s"], packed["infer_s"] = t1 - t0, t2 - t1  # so the daemon can tell Ray's own share
        packed["infer_cpu_s"] = c2 - c1  # this thread's CPU (all of it with threads=1: bench.ray_overhead)
        packed["pack_s"] = time.perf_counter() - t2
        packed["entered_at"], packed["left_at"] = entered, time.time()
        return packed

    def pid(self) -> int:
        return os.getpid()


def inner_options(inner: str, model: str | None, threads: int | None, options: dict[str, Any]) -> dict[str, Any]:
    """Keyword options for the segmenter inside each replica."""
    opts = dict(options)
    if inner != "watershed":
        if model is not None:
            opts["model"] = model
        if inner == "onnxruntime" and threads is not None:
            opts["threads"] = threads
    return opts


def deployment_options(*, replicas: int | None, min_replicas: int | None, max_replicas: int | None,
                       threads: int, num_gpus: float, replica_env: dict[str, str] | None = None) -> dict[str, Any]:
    """``Deployment.options`` for the replica count (fixed or autoscaled) and each replica's resources
    (``replica_env``: the replica processes' environment, ``REPLICA_ENV`` when None)."""
    env = REPLICA_ENV if replica_env is None else replica_env
    actor: dict[str, Any] = {"num_cpus": float(threads), "num_gpus": float(num_gpus)}
    if env:
        actor["runtime_env"] = {"env_vars": {str(k): str(v) for k, v in env.items()}}
    opts: dict[str, Any] = {
        "ray_actor_options": actor,
        "max_ongoing_requests": 2,  # one segmenting, one waiting with its frame fetched
        "health_check_period_s": 2.0, "health_check_timeout_s": 30.0, "graceful_shutdown_timeout_s": 5.0,
    }
    if min_replicas is not None or max_replicas is not None:
        lo = 1 if min_replicas is None else min_replicas
        hi = max(lo, 1) if max_replicas is None else max_replicas
        opts["autoscaling_config"] = {"min_replicas": lo, "max_replicas": hi, "target_ongoing_requests": 1.5,
                                      "upscale_delay_s": 5.0, "downscale_delay_s": 60.0}
    else:
        opts["num_replicas"] = 1 if replicas is None else replicas
    return opts


def build_app(args: dict[str, Any]) -> Any:
    """The Serve application (``import_path: wirewatch.segment.ray_backend:build_app`` in a Serve config /
    KubeRay RayService, with ``args``: inner, model, threads, replicas or min/max_replicas, num_gpus,
    options)."""
    from ray import serve

    inner = _inner_name(str(args.get("inner", "onnxruntime")))
    threads = int(args.get("threads", 1))
    opts = deployment_options(replicas=args.get("replicas"), min_replicas=args.get("min_replicas"),
                              max_replicas=args.get("max_replicas"), threads=threads,
                              num_gpus=float(args.get("num_gpus", 0.0)), replica_env=args.get("replica_env"))
    deployment: Any = serve.deployment(SegmentReplica, name=DEPLOYMENT_NAME)
    deployment = deployment.options(**opts)
    return deployment.bind(inner, inner_options(inner, args.get("model", "default"), threads,
                                                dict(args.get("options") or {})))


def _inner_name(inner: str) -> str:
    if inner in ENGINES:  # an engine registered after this module was imported counts too
        return inner
    try:
        return INNER_BACKENDS[inner]
    except KeyError:
        raise InputError(f"ray backend: unknown inner segmenter {inner!r}; allowed: "
                         f"{', '.join(sorted(INNER_BACKENDS))}") from None


def _positive(name: str, value: Any, *, integer: bool = True, zero: bool = False) -> Any:
    if value is None:
        return None
    try:
        v = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise InputError(f"ray backend: {name} must be a number, got {value!r}") from None
    if v < 0 or (v == 0 and not zero) or (integer and v != float(value)):
        raise InputError(f"ray backend: {name} must be a {'non-negative' if zero else 'positive'} "
                         f"{'integer' if integer else 'number'}, got {value!r}")
    return v


# -- the daemon side -------------------------------------------------------------------------------
class RaySegmenter:
    """A ``Segmenter`` whose ``segment`` runs on a Ray Serve replica; thread-safe (the daemon calls it
    from up to ``max_in_flight`` threads at once)."""

    name = "ray"

    def __init__(self, model: str | None = "default", *, address: str | None = None, replicas: int | None = None,
                 min_replicas: int | None = None, max_replicas: int | None = None, threads: int = 1,
                 num_gpus: float = 0.0, inner: str = "onnxruntime", max_in_flight: int | None = None,
                 num_cpus: int | None = None, app_name: str = APP_NAME, request_timeout_s: float = 60.0,
                 start_timeout_s: float = 120.0, ready_poll_s: float = 0.5,
                 replica_env: dict[str, str] | None = None, **options: Any) -> None:
        try:
            import ray
            from ray import serve
        except ImportError:
            raise BackendUnavailable("the ray backend needs Ray Serve: pip install 'wirewatch[ray]'") from None
        self.inner = _inner_name(str(inner))
        if model is not None and Path(model).is_file():  # a replica's working directory is not the daemon's
            model = str(Path(model).resolve())
        self.threads = _positive("threads", threads)
        self.num_gpus = _positive("num_gpus", num_gpus, integer=False, zero=True)
        replicas = _positive("replicas", replicas)
        min_replicas = _positive("min_replicas", min_replicas, zero=True)
        max_replicas = _positive("max_replicas", max_replicas)
        if replicas is not None and (min_replicas is not None or max_replicas is not None):
            raise InputError("ray backend: give either replicas or min_replicas/max_replicas, not both")
        if min_replicas is not None and max_replicas is not None and min_replicas > max_replicas:
            raise InputError(f"ray backend: min_replicas {min_replicas} > max_replicas {max_replicas}")
        most = max_replicas or replicas or max(1, min_replicas or 1)
        # default: one frame per replica plus one, so a replica finds its next frame waiting when it is done
        # (more only adds latency: frames queue at the replicas)
        self.max_in_flight = _positive("max_in_flight", max_in_flight) or most + 1
        self.configured_replicas = replicas
        self.app_name = app_name
        self.request_timeout_s = float(request_timeout_s)
        self.address = address
        self.retried = 0  # requests sent again after their replica died
        self.replica_frames: Counter[int] = Counter()  # frames segmented per replica process (pid)
        # per frame: round trip minus the replica's wait and inference = Ray's own cost (transfer,
        # scheduling, packing); the newest 1000 kept
        self.overheads_s: deque[float] = deque(maxlen=1000)
        # the same cost in parts, per frame (seconds): the request's way to the replica, packing the masks,
        # the reply's way back, unpacking (bench.ray_overhead; the two ways compare two processes' wall
        # clocks, so they mean something only when the replica runs on this machine)
        self.phases_s: deque[tuple[float, float, float, float]] = deque(maxlen=1000)
        self.last_infer_cpu_s = float("nan")  # the replica's inference CPU for the last frame (benchmarks)
        self.busy_s = 0.0  # the replicas' inference seconds, summed over frames (benchmarks: replicas kept busy)
        self._lock = threading.Lock()
        self._ready = False
        self._death_seen: float | None = None  # monotonic time of the last replica death a request saw
        self._closed = threading.Event()
        self._owns_ray = False  # an embedded Ray this segmenter started (and shuts down)
        self._owns_ray_connection = False  # a cluster connection this segmenter opened (and closes)
        self._ray = ray
        self._serve = serve
        logging.getLogger("ray.serve").setLevel(logging.WARNING)  # Serve's INFO lines would flood the daemon's log
        t0 = time.monotonic()
        try:
            self._connect(address, num_cpus=num_cpus, needed_cpus=most * (self.threads or 1))
        except Exception as exc:  # e.g. no cluster at that address, a wrong token, no room for a local Ray
            where = f"join the Ray cluster at {address}" if address else "start a local Ray"
            raise BackendUnavailable(f"ray backend: cannot {where}: {exc}") from None
        try:
            self._handle = self._deploy({"inner": self.inner, "model": model, "threads": self.threads,
                                         "replicas": replicas, "min_replicas": min_replicas,
                                         "max_replicas": max_replicas, "num_gpus": self.num_gpus,
                                         "replica_env": replica_env, "options": options}, start_timeout_s)
            self.handle_segment = self._handle.segment
            self.startup_s = time.monotonic() - t0
            self._ready = self._running_replicas() > 0
        except BaseException:
            self.close()
            raise
        log.info("ray backend: %s replica(s) of %s (%d thread(s) each) ready in %.1f s (%s Ray)",
                 self._running_replicas(), self.inner, self.threads, self.startup_s,
                 "embedded" if self._owns_ray else f"cluster {address}")
        self._poller = threading.Thread(target=self._poll_ready, args=(ready_poll_s,), name="wirewatch-ray-ready",
                                        daemon=True)
        self._poller.start()

    # -- setup -----------------------------------------------------------------------------------
    def _connect(self, address: str | None, *, num_cpus: int | None, needed_cpus: int) -> None:
        ray = self._ray
        if ray.is_initialized():  # e.g. tests sharing one local Ray; not ours to shut down
            return
        if address is None:
            cpus = num_cpus if num_cpus is not None else max(os.cpu_count() or 1, needed_cpus)
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, namespace="wirewatch",
                     object_store_memory=256 * 1024 * 1024, logging_level=logging.WARNING)
            self._owns_ray = True
        else:
            ray.init(address=address, log_to_driver=False, namespace="wirewatch", logging_level=logging.WARNING)
            self._owns_ray_connection = True

    def _deploy(self, args: dict[str, Any], timeout_s: float) -> Any:
        serve = self._serve
        if self._app_running():
            log.info("ray backend: using the running Serve application %r as it is", self.app_name)
            return serve.get_deployment_handle(DEPLOYMENT_NAME, self.app_name)
        serve.start(proxy_location="Disabled")  # handles only: no HTTP proxy, no port taken
        app = build_app(args)
        done: dict[str, Any] = {}

        def run() -> None:
            try:
                done["handle"] = serve.run(app, name=self.app_name, route_prefix=None, blocking=False)
            except BaseException as exc:
                done["error"] = exc

        t = threading.Thread(target=run, daemon=True)  # serve.run has no timeout of its own
        t.start()
        t.join(timeout_s)
        if "error" in done:
            raise BackendUnavailable(f"ray backend: deploying {self.app_name!r} failed: {done['error']}")
        if "handle" not in done:
            raise BackendUnavailable(f"ray backend: no replica of {self.app_name!r} became ready within "
                                     f"{timeout_s:g} s (not enough CPUs/GPUs in the Ray cluster?)")
        return done["handle"].options(method_name="segment")

    def _app_running(self) -> bool:
        try:
            return self.app_name in self._serve.status().applications
        except Exception:  # no Serve instance yet
            return False

    def _running_replicas(self) -> int:
        try:
            app = self._serve.status().applications.get(self.app_name)
            if app is None:
                return 0
            dep = app.deployments.get(DEPLOYMENT_NAME)
            states: dict[Any, int] = dict(dep.replica_states) if dep is not None else {}
            return int(states.get("RUNNING", 0))
        except Exception:
            return 0

    def _poll_ready(self, interval_s: float) -> None:
        while not self._closed.wait(interval_s):
            running = self._running_replicas()
            if running > 0 and self._death_seen is not None:
                self._probe(timeout_s=max(interval_s, 1.0))
            self._ready = running > 0

    def _saw_death(self) -> None:
        with self._lock:
            self._death_seen = time.monotonic()

    def _saw_answer(self, sent_at: float) -> None:
        """A reply to a request sent after the last death seen: some replica is alive."""
        with self._lock:
            if self._death_seen is not None and sent_at > self._death_seen:
                self._death_seen = None

    def _probe(self, timeout_s: float) -> None:
        """After a death: ask any replica for its pid (queues behind frames; Serve routes around dead ones)."""
        sent_at = time.monotonic()
        try:
            self._handle.pid.remote().result(timeout_s=timeout_s)
        except Exception as exc:  # a dead replica, no answer in time, Serve shutting down: ask again next poll
            log.debug("ray backend: readiness probe failed: %s", exc)
            return
        self._saw_answer(sent_at)

    @property
    def replica_pids(self) -> set[int]:
        """Replica processes that answered (a restarted replica is a new one)."""
        with self._lock:
            return set(self.replica_frames)

    # -- the Segmenter interface -----------------------------------------------------------------
    def ready(self) -> bool:
        """At least one replica running (as Serve's controller last said), and none seen dying since the
        last answer."""
        return self._ready and self._death_seen is None and not self._closed.is_set()

    @property
    def replicas(self) -> int:
        """Replicas running now."""
        return self._running_replicas()

    def segment(self, image: np.ndarray) -> Detections:
        if self._closed.is_set():
            raise SegmentFailed("the ray backend is closed")
        from ray.exceptions import ActorDiedError, ActorUnavailableError

        image = np.ascontiguousarray(image, np.float32)
        for attempt in (1, 2):
            try:
                sent_at = time.monotonic()
                t0, sent_wall = time.perf_counter(), time.time()
                packed = self.handle_segment.remote(image).result(timeout_s=self.request_timeout_s)
                got_wall, t1 = time.time(), time.perf_counter()
                det = unpack_detections(packed)
                t2 = time.perf_counter()
                rtt = t2 - t0
                break
            except (ActorDiedError, ActorUnavailableError) as exc:
                if attempt == 2:
                    raise SegmentFailed(f"the replica died again on the retry: {exc}") from None
                with self._lock:
                    self.retried += 1
                self._saw_death()
                log.warning("ray backend: a replica died with a frame in flight; sending it again")
            except TimeoutError:
                raise SegmentFailed(f"no reply from a replica within {self.request_timeout_s:g} s") from None
        self._saw_answer(sent_at)
        pid = packed.get("pid")
        with self._lock:
            if isinstance(pid, int):
                self.replica_frames[pid] += 1
            with contextlib.suppress(TypeError, ValueError, KeyError):
                self.overheads_s.append(rtt - float(packed["wait_s"]) - float(packed["infer_s"]))
                self.last_infer_cpu_s = float(packed["infer_cpu_s"])
                self.busy_s += float(packed["infer_s"])
                # last: a replica of an older wirewatch (a shared cluster's) sends no timestamps
                self.phases_s.append((float(packed["entered_at"]) - sent_wall, float(packed["pack_s"]),
                                      got_wall - float(packed["left_at"]), t2 - t1))
        return det

    def close(self) -> None:
        """Stop the readiness poller; an embedded Ray (and its Serve application) is shut down, a cluster's
        application is left running for the other daemons. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._owns_ray:
            # The whole local cluster goes, Serve's controller and replicas with it. No serve.shutdown()
            # first: it kills the controller under the handle's pending calls, and Ray prints those
            # failures on the daemon's stdout.
            self._ray.shutdown()
            log.info("ray backend: local Ray shut down")
        elif self._owns_ray_connection:
            self._ray.shutdown()  # disconnect only: the cluster and its replicas keep running
