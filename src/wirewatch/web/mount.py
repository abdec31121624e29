"""Put the web view on a running pipeline: what the daemon does when ``http.web.enabled``.

Duck-typed on purpose (no ``wirewatch.daemon`` import: the daemon uses the web view, not the reverse):
``pipeline`` needs ``listeners`` (callables given each processed frame's result), ``processed``,
``metrics.frames_dropped`` / ``metrics.frame_errors`` and ``source.stats()`` (counters), ``segmenter``
(used for uploads too; onnxruntime sessions and the watershed baseline are safe to call from a second
thread), ``healthy`` and ``ready``.
"""

from __future__ import annotations

from typing import Any

from .app import WebApp
from .config import WebConfig
from .live import LiveState, pipeline_counters


def attach_web_view(pipeline: Any, *, config: WebConfig | None = None, backend: str | None = None,
                    title: str = "wirewatch") -> WebApp:
    """A ``WebApp`` fed by ``pipeline``'s results (its listener is registered here), to mount on an
    ``HttpServer`` with ``app=``."""
    config = config or WebConfig()
    state = LiveState(history=config.history, counters=pipeline_counters(pipeline))
    app = WebApp(state, config=config, segmenter=pipeline.segmenter, backend=backend, title=title)
    pipeline.listeners.append(state.observe)
    return app

