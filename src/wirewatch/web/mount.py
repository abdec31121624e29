"""Put the web view on a running pipeline: one call the daemon makes when ``http.web.enabled``.

Duck-typed on purpose (no ``wirewatch.daemon`` import: the daemon uses the web view, not the reverse):
``pipeline`` needs ``listeners`` (callables given each processed frame's result), ``processed``,
``metrics.frames_dropped`` / ``metrics.frame_errors`` and ``source.stats()`` (counters), ``segmenter``
(used for uploads too; onnxruntime sessions and the watershed baseline are safe to call from a second
thread), ``healthy`` and ``ready``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from .app import WebApp
from .config import WebConfig
from .live import LiveState, pipeline_counters
from .server import WebServer


def serve_pipeline(pipeline: Any, registry: CollectorRegistry, *, host: str = "127.0.0.1", port: int = 0,
                   bearer_token: str | None = None, config: WebConfig | None = None,
                   backend: str | None = None, title: str = "wirewatch") -> WebServer:
    """A ``WebServer`` (``/metrics``, ``/healthz``, ``/readyz``, pages, API) fed by ``pipeline``'s results."""
    config = config or WebConfig()
    state = LiveState(history=config.history, counters=pipeline_counters(pipeline))
    app = WebApp(state, config=config, segmenter=pipeline.segmenter, backend=backend, title=title)
    server = WebServer(registry, host=host, port=port, healthy=lambda: bool(pipeline.healthy),
                       ready=lambda: bool(pipeline.ready), bearer_token=bearer_token, app=app)
    pipeline.listeners.append(state.observe)
    return server
