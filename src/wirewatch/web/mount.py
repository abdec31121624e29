"""``WebView``: the web view as an extension of the daemon (``wirewatch.extension``).

The daemon adds one when ``http.web.enabled`` and serves ``view.app`` on its HTTP port beside ``/metrics``.
Everything comes through the extension hooks (no ``wirewatch.daemon`` import: the daemon uses the web
view, not the reverse): each frame's result (a listener feeding ``LiveState``), the frame counters of the
status API, and the pipeline's segmenter, which serves uploads too (onnxruntime sessions and the
watershed baseline are safe to call from a second thread).
"""

from __future__ import annotations

from wirewatch.extension import BaseExtension, Hooks

from .app import WebApp
from .config import WebConfig
from .live import LiveState


class WebView(BaseExtension):
    """Live page, statistics, uploads and JSON API of one daemon; mount ``app`` on an ``HttpServer``."""

    name = "web"

    def __init__(self, config: WebConfig | None = None, *, title: str = "wirewatch") -> None:
        self.config = config or WebConfig()
        self.title = title
        self._app: WebApp | None = None

    @property
    def app(self) -> WebApp:
        if self._app is None:
            raise RuntimeError("WebView.app exists once the view is attached to a daemon")
        return self._app

    def attach(self, hooks: Hooks) -> None:
        state = LiveState(history=self.config.history, counters=lambda: hooks.counters().as_dict())
        self._app = WebApp(state, config=self.config, segmenter=hooks.segmenter, backend=hooks.backend,
                           title=self.title)
        hooks.on_result(state.observe)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()  # idempotent: the HTTP server serving it closes it too
