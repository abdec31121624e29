"""Put the web view on a running pipeline: what the daemon does when ``http.web.enabled``.

Duck-typed on purpose (no ``wirewatch.daemon`` import: the daemon uses the web view, not the reverse):
``pipeline`` needs ``listeners`` (callables given each processed frame's result), ``processed``,
``metrics.frames_dropped`` / ``metrics.frame_errors`` and ``source.stats()`` (counters), ``segmenter``
(used for uploads too; onnxruntime sessions and the watershed baseline are safe to call from a second
thread), ``healthy`` and ``ready``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry

from .app import WebApp
from .config import WebConfig
from .live import LiveState, pipeline_counters
from .server import DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_TIMEOUT_S, HttpServer


def attach_web_view(pipeline: Any, *, config: WebConfig | None = None, backend: str | None = None,
                    title: str = "wirewatch") -> WebApp:
    """A ``WebApp`` fed by ``pipeline``'s results (its listener is registered here), to mount on an
    ``HttpServer`` with ``app=``."""
    config = config or WebConfig()
    state = LiveState(history=config.history, counters=pipeline_counters(pipeline))
    app = WebApp(state, config=config, segmenter=pipeline.segmenter, backend=backend, title=title)
    pipeline.listeners.append(state.observe)
    return app


def serve_pipeline(pipeline: Any, registry: CollectorRegistry, *, host: str = "127.0.0.1", port: int = 0,
                   bearer_token: str | None = None, config: WebConfig | None = None,
                   backend: str | None = None, title: str = "wirewatch",
                   request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
                   max_connections: int = DEFAULT_MAX_CONNECTIONS, allowed_hosts: Iterable[str] = (),
                   allowed_origins: Iterable[str] = ()) -> HttpServer:
    """An ``HttpServer`` (``/metrics``, ``/healthz``, ``/readyz``, pages, API) with the web view of ``pipeline``."""
    app = attach_web_view(pipeline, config=config, backend=backend, title=title)
    return HttpServer(registry, host=host, port=port, healthy=lambda: bool(pipeline.healthy),
                      ready=lambda: bool(pipeline.ready), bearer_token=bearer_token, app=app,
                      request_timeout_s=request_timeout_s, max_connections=max_connections,
                      allowed_hosts=allowed_hosts, allowed_origins=allowed_origins)
