"""``WebApp``: the live page, the upload page and the JSON API, independent of the HTTP server.

``handle(request)`` returns a ``Response``, an ``EventStream`` (server-sent events) or None (not
mine). ``wirewatch.web.server.HttpServer`` serves it next to ``/metrics``, ``/healthz``, ``/readyz``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from wirewatch.segment.base import Segmenter

from .config import WebConfig
from .hub import Client, PushHub, encode_event
from .live import LiveState, live_record
from .overlay import OverlayCache, OverlayPusher, overlay_event
from .upload import HttpError, UploadedFile, decode_image, parse_multipart, read_body, segment_upload

log = logging.getLogger(__name__)

STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
PAGES = {"/": "live.html", "/segment": "segment.html"}


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: Any  # Mapping-like: .get(name) (http.client.HTTPMessage)
    body: Any  # binary file-like: read(n), readline(n)


@dataclass(frozen=True)
class EventStream:
    """An open SSE subscription: the server writes ``hello`` then the client's events until it closes."""

    client: Client
    hello: bytes


def json_response(payload: Any, status: int = 200) -> Response:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return Response(status, body, "application/json", {"Cache-Control": "no-store"})


def error_response(status: int, message: str) -> Response:
    return json_response({"error": message, "status": status}, status)


def static_file(name: str) -> bytes:
    return resources.files("wirewatch.web").joinpath("static", name).read_bytes()


class WebApp:
    """Pages and API over a ``LiveState`` (empty when serving without a stream) and an upload segmenter."""

    def __init__(self, state: LiveState | None = None, *, config: WebConfig | None = None,
                 segmenter: Segmenter | Callable[[], Segmenter] | None = None, title: str = "wirewatch",
                 backend: str | None = None) -> None:
        self.config = config or WebConfig()
        c = self.config
        self.hub = PushHub(queue_size=c.client_queue, max_clients=c.max_clients)
        if state is None:
            state = LiveState(history=c.history)
        state.hub = self.hub
        self.state = state
        self.overlays = OverlayCache(state, min_interval_s=c.overlay_interval_s, max_side=c.overlay_max_side)
        self.pusher = OverlayPusher(state, self.hub, self.overlays)
        self.title = title
        self.backend = backend
        self._segmenter_source = segmenter
        self._segmenter: Segmenter | None = None
        self._segmenter_lock = threading.Lock()
        self._pending = threading.BoundedSemaphore(c.max_pending_uploads)
        self._segmenting = threading.BoundedSemaphore(c.max_concurrent_segmentations)
        self.uploads_done = 0
        self._warmed = False
        self._static = {name: static_file(name) for name in
                        ("live.html", "segment.html", "app.css", "live.js", "segment.js", "common.js")}

    # -- dispatch ---------------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response | EventStream | None:
        try:
            if request.method == "POST":
                return self._upload(request) if request.path == "/api/segment" else None
            if request.method not in ("GET", "HEAD"):
                return None
            if request.method == "HEAD" and request.path == "/api/events":  # no stream for a HEAD
                return Response(200, b"", "text/event-stream")
            return self._get(request.path, parse_qs(request.query))
        except HttpError as exc:
            return error_response(exc.status, str(exc))

    def _get(self, path: str, query: dict[str, list[str]]) -> Response | EventStream | None:
        if path == "/segment":
            self._warm_up_plots()
        if path in PAGES:
            page = self._static[PAGES[path]].replace(b"{{title}}", self.title.encode())
            return Response(200, page, STATIC_TYPES[".html"], {"Cache-Control": "no-store"})
        if path.startswith("/static/"):
            name = path[len("/static/"):]
            if name not in self._static:
                return None
            ext = name[name.rfind("."):]
            return Response(200, self._static[name], STATIC_TYPES.get(ext, "application/octet-stream"),
                            {"Cache-Control": "no-cache"})
        api: dict[str, Callable[[dict[str, list[str]]], Response | EventStream]] = {
            "/api/latest": self._latest, "/api/series": self._series, "/api/changepoints": self._changepoints,
            "/api/alerts": self._alerts, "/api/status": self._status, "/api/stats": self._stat_names,
            "/api/overlay.jpg": self._overlay, "/api/events": self._events,
        }
        route = api.get(path)
        return route(query) if route is not None else None

    # -- JSON API ---------------------------------------------------------------------------------------------
    def _latest(self, query: dict[str, list[str]]) -> Response:
        latest = self.state.latest()
        if latest is None:
            return error_response(404, "no frame processed yet")
        return json_response(latest)

    def _series(self, query: dict[str, list[str]]) -> Response:
        stat = _one(query, "stat")
        if not stat:
            raise HttpError(400, "give the statistic: /api/series?stat=NAME&last=N")
        names = self.state.stat_names()
        if names and stat not in names:
            raise HttpError(400, f"unknown statistic {stat!r}; known: {', '.join(names)}")
        last = _int(query, "last", default=None, low=1)
        return json_response(self.state.series(stat, last))

    def _changepoints(self, query: dict[str, list[str]]) -> Response:
        return json_response(self.state.changepoints())

    def _alerts(self, query: dict[str, list[str]]) -> Response:
        return json_response(self.state.alerts())

    def _status(self, query: dict[str, list[str]]) -> Response:
        return json_response({**self.state.status(), "backend": self.backend,
                              "overlays_encoded": self.overlays.encoded, "uploads": self.uploads_done})

    def _stat_names(self, query: dict[str, list[str]]) -> Response:
        return json_response(self.state.stat_names())

    def _overlay(self, query: dict[str, list[str]]) -> Response:
        frame, png = self.overlays.get()
        if png is None:
            return error_response(404, "no frame processed yet")
        return Response(200, png, "image/jpeg", {"Cache-Control": "no-store", "X-Wirewatch-Frame": str(frame)})

    def _events(self, query: dict[str, list[str]]) -> EventStream:
        client = self.hub.subscribe()
        if client is None:
            raise HttpError(503, f"too many live pages open (limit {self.config.max_clients})")
        last = _int(query, "last", default=500, low=1) or 500
        hello = encode_event("hello", {
            "records": [live_record(r) for r in self.state.records(min(last, self.config.history))],
            "changepoints": self.state.changepoints(), "alerts": self.state.alerts(),
            "status": self.state.status(), "backend": self.backend,
        }).wire()
        frame, jpeg = self.overlays.get()  # the newcomer sees the current overlay at once (cached, rate-limited)
        if jpeg is not None:
            client.offer(overlay_event(frame, jpeg))  # to this page only, right after the hello
        return EventStream(client, hello)

    # -- uploads ----------------------------------------------------------------------------------------------
    def segmenter(self) -> Segmenter:
        with self._segmenter_lock:
            if self._segmenter is None:
                source = self._segmenter_source
                if source is None:
                    raise HttpError(503, "no segmenter configured for uploads")
                made: Segmenter = source if isinstance(source, Segmenter) else source()
                self._segmenter = made
            return self._segmenter

    def _warm_up_plots(self) -> None:
        """Import matplotlib once in the background when the upload page is opened (the first import takes
        seconds), so the first upload's histograms do not wait for it."""
        if self._warmed:
            return
        self._warmed = True

        def warm() -> None:
            try:
                import matplotlib.backends.backend_agg
                import matplotlib.figure  # noqa: F401
                import scipy.stats  # noqa: F401
            except Exception:
                log.debug("matplotlib warm-up failed", exc_info=True)

        threading.Thread(target=warm, name="wirewatch-web-warmup", daemon=True).start()

    def _upload(self, request: Request) -> Response:
        """The whole upload from a file-like body (``HttpServer`` streams it instead: ``begin_upload``,
        ``MultipartReader``, ``segment_fields``)."""
        c = self.config
        self.begin_upload()
        try:
            body = read_body(request.body, request.headers, c.max_upload_bytes)
            fields = parse_multipart(body, request.headers.get("Content-Type"), max_part_bytes=c.max_upload_bytes)
            return self.segment_fields(fields, request.query)
        finally:
            self.end_upload()

    def begin_upload(self) -> None:
        """Take one of ``max_pending_uploads`` slots (503 when none is free); ``end_upload`` gives it back."""
        if not self._pending.acquire(blocking=False):
            raise HttpError(503, f"{self.config.max_pending_uploads} uploads already in progress; try again shortly")

    def end_upload(self) -> None:
        self._pending.release()

    def segment_fields(self, fields: Mapping[str, UploadedFile], query: str) -> Response:
        """Decode the ``image`` field and segment it (at most ``max_concurrent_segmentations`` at once, on the
        caller's thread, never the pipeline's). A failing segmenter raises: the server answers 500 with a
        request id and logs the error, so no exception text reaches the client."""
        c = self.config
        histograms = _one(parse_qs(query), "histograms") not in ("0", "false", "no")
        upload = fields.get("image")
        if upload is None:
            raise HttpError(400, f"no form field 'image' in the upload (fields: {', '.join(fields) or 'none'})")
        if not upload.data:
            raise HttpError(400, "the uploaded image is empty")
        name = upload.filename or "upload"
        image = decode_image(upload.data, max_pixels=c.max_image_pixels, name=name)
        segmenter = self.segmenter()
        with self._segmenting:
            result = segment_upload(segmenter, image, score_threshold=c.score_threshold,
                                    histograms=histograms, overlay_max_side=1024)
        self.uploads_done += 1
        return json_response({"file_name": name, "backend": self.backend, **result})

    def close(self) -> None:
        self.pusher.close()
        self.hub.close()


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[-1] if values else None


def _int(query: dict[str, list[str]], key: str, *, default: int | None, low: int) -> int | None:
    raw = _one(query, key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(400, f"{key}={raw!r} is not an integer") from None
    if value < low:
        raise HttpError(400, f"{key} must be at least {low}, got {value}")
    return value
