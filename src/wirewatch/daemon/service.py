"""``Daemon``: the pipeline plus its HTTP endpoints, extensions and lifecycle (start, signals, drain, close)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import zmq
from prometheus_client import CollectorRegistry

from wirewatch.config.daemon import DaemonConfig
from wirewatch.errors import ConfigError
from wirewatch.extension import Extension
from wirewatch.ingest.base import Source, describe_input
from wirewatch.segment.base import Segmenter
from wirewatch.web.mount import WebView
from wirewatch.web.server import HttpServer

from .build import Built, build_pipeline
from .pipeline import Pipeline

log = logging.getLogger(__name__)


class Daemon:
    """Build from config; ``start()``; ``stop()`` (or a signal); ``wait()``; everything is closed at the end.

    ``extensions`` (``wirewatch.extension``, e.g. EPICS PV Access) are attached in order; the web view is
    one too, added after them when ``http.web.enabled``, and served on the daemon's HTTP port."""

    def __init__(self, config: DaemonConfig, *, registry: CollectorRegistry | None = None,
                 segmenter: Segmenter | None = None, source: Source | None = None,
                 zmq_context: zmq.Context[zmq.Socket[bytes]] | None = None,
                 extensions: Sequence[Extension] = ()) -> None:
        self.config = config
        http = config.http
        self.web: WebView | None = WebView(http.web) if http.enabled and http.web.enabled else None
        self.built: Built = build_pipeline(config, registry=registry, segmenter=segmenter, source=source,
                                           zmq_context=zmq_context,
                                           extensions=[*extensions, *([self.web] if self.web else [])])
        self.pipeline: Pipeline = self.built.pipeline
        self.http: HttpServer | None = None  # /metrics, /healthz, /readyz and the web view, one port
        self.stop_event = threading.Event()
        self._closed = False

    @property
    def registry(self) -> CollectorRegistry:
        return self.built.registry

    def start(self) -> Daemon:
        http = self.config.http
        try:
            if http.enabled:
                token = _read_token(http.bearer_token_file)
                app = self.web.app if self.web is not None else None  # the web view, on the port of /metrics
                self.http = HttpServer(self.registry, host=http.host, port=http.port,
                                       healthy=self.healthy, ready=lambda: self.pipeline.ready,
                                       bearer_token=token, app=app, request_timeout_s=http.request_timeout_s,
                                       max_connections=http.max_connections, allowed_hosts=http.allowed_hosts,
                                       allowed_origins=http.allowed_origins, secure_cookie=http.secure_cookie)
                if app is not None:
                    log.info("web view on %s/", self.http.url)
                log.info("metrics on %s/metrics", self.http.url)
            if self.built.publisher is not None:
                self.built.publisher.start()
            for extension in self.built.extensions:
                extension.start()
            self.pipeline.start()
        except BaseException:
            self.close()
            raise
        # the source says what it reads (ZeroMQ endpoint, PV, folder, replay) and in which format
        log.info("daemon running: segmenter %s%s, input %s, policy %s", self.built.backend,
                 f" ({self.built.model})" if self.built.model else "", describe_input(self.pipeline.source),
                 self.config.ingest.policy)
        return self

    def healthy(self) -> bool:
        """``/healthz``: every pipeline stage and every alert sink's worker (webhook, Alertmanager, ZeroMQ PUB,
        PV Access heartbeat; ``wirewatch_alert_sink_up``) is running. A dead sink thread would otherwise
        leave alerts spooled and undelivered behind a green health check."""
        from wirewatch.publish.metrics import AlertMetrics

        return bool(self.pipeline.healthy) and all(AlertMetrics.on(self.registry).sinks_up().values())

    def stop(self) -> None:
        """Stop intake (safe from a signal handler); ``wait`` drains and closes."""
        self.stop_event.set()
        self.pipeline.request_stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stopped (``stop()``/signal) or a finite source ended, then drain within the
        configured shutdown timeout and close. True when everything in flight was processed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.stop_event.is_set() and self.pipeline.running:
            if deadline is not None and time.monotonic() >= deadline:
                break
            self.stop_event.wait(0.2)
        return self.close()

    def close(self) -> bool:
        if self._closed:
            return True
        self._closed = True
        self.pipeline.request_stop()
        drained = True
        if self.pipeline.started:
            drained = self.pipeline.join(self.config.pipeline.shutdown_timeout_s)
        else:
            self.pipeline.close_sinks()
        if self.http is not None:
            self.http.close()
        self.built.close_extensions()  # after the last frame: e.g. the PV server posts "stopped" last
        log.info("daemon stopped: %d frame(s) processed%s", self.pipeline.processed,
                 "" if drained else " (shutdown timeout: some frames abandoned)")
        return drained

    def install_signal_handlers(self) -> None:
        """SIGTERM / SIGINT stop intake and drain; a second one abandons what is in flight."""
        def handler(signum: int, frame: FrameType | None) -> None:
            if self.stop_event.is_set():
                log.warning("second %s: abandoning frames in flight", signal.Signals(signum).name)
                self.pipeline.abort()
            else:
                log.info("%s: stopping intake and draining", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def _read_token(path: str | None) -> str | None:
    if path is None:
        return None
    p = Path(path)
    try:
        mode = p.stat().st_mode
        token = p.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError) as exc:
        raise ConfigError(f"http.bearer_token_file {p}: cannot read a token ({exc})") from None
    if mode & 0o077:
        log.warning("http.bearer_token_file %s is readable by group/others; chmod 600 it", p)
    if not token:
        raise ConfigError(f"http.bearer_token_file {p} is empty")
    from wirewatch.security import register_secret

    register_secret(token)  # masked by the CLI's log redaction should it ever reach a log line
    return token
