"""ZeroMQ PUB publisher for clients on the control network.

Every message is two frames: the topic (``stats``, ``changepoint`` or
``alert``, ASCII) and a UTF-8 JSON body (see ``publish.encode``). Subscribers
filter on the first frame, e.g. ``sub.setsockopt(zmq.SUBSCRIBE, b"alert")``.
PUB never blocks the pipeline: a slow subscriber loses messages at the
high-water mark (ZeroMQ's rule for PUB), and sends use NOBLOCK so nothing
here can stall; both are counted in ``wirewatch_zmq_published_total``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from wirewatch.errors import ConfigError
from wirewatch.publish.config import ZmqCurveConfig
from wirewatch.publish.encode import alert_to_dict, changepoint_to_dict, dumps, stats_to_dict
from wirewatch.publish.metrics import AlertMetrics
from wirewatch.publish.sinks.credentials import warn_if_readable_by_others
from wirewatch.types import Alert, ChangePoint, FrameStats

log = logging.getLogger(__name__)

TOPICS = ("stats", "changepoint", "alert")


def load_server_certificate(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a ``.key_secret`` certificate; errors name the file."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read CURVE certificate {path}: {exc}") from None
    if not secret:
        raise ConfigError(f"CURVE certificate {path} holds no secret key (give the server's .key_secret file)")
    warn_if_readable_by_others(path, "zmq.curve.server_secret_file")
    return public, secret


class ZmqPublisher:
    def __init__(self, bind: str, *, topics: Iterable[str] = TOPICS, sndhwm: int = 1000,
                 metrics: AlertMetrics | None = None, context: zmq.Context | None = None,
                 curve: ZmqCurveConfig | None = None) -> None:
        unknown = sorted(set(topics) - set(TOPICS))
        if unknown:
            raise ConfigError(f"unknown ZeroMQ topic(s) {', '.join(unknown)}; known: {', '.join(TOPICS)}")
        self.topics = frozenset(topics)
        self._metrics = metrics
        self._lock = threading.Lock()  # ZeroMQ sockets are not thread-safe; the ticker thread sends alerts too
        self._closed = False
        self._errors = 0
        self._broken: str | None = None  # why the socket stopped working by itself (context gone, ...)
        self._own_context: zmq.Context | None = None
        self._auth: ThreadAuthenticator | None = None
        keys = load_server_certificate(curve.server_secret_file) if curve is not None else None
        if curve is not None and curve.authorized_clients_dir is not None:
            if not curve.authorized_clients_dir.is_dir():
                raise ConfigError(f"zmq.curve.authorized_clients_dir {curve.authorized_clients_dir} is not a directory")
            # A ZAP authenticator is one per context: give this socket its own so it cannot clash
            # with (or loosen) authentication other parts configure on the shared context.
            self._own_context = zmq.Context()
            self._auth = ThreadAuthenticator(self._own_context, log=logging.getLogger(__name__ + ".zap"))
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(curve.authorized_clients_dir))
        self._context = self._own_context or context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, sndhwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        if keys is not None:
            self._socket.curve_publickey, self._socket.curve_secretkey = keys
            self._socket.curve_server = True
        try:
            self._socket.bind(bind)
        except zmq.ZMQError as exc:
            self.close()
            raise ConfigError(f"cannot bind ZeroMQ PUB socket to {bind!r}: {exc}") from None
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info("publishing %s on %s", ", ".join(sorted(self.topics)), self.endpoint)
        if metrics is not None:
            metrics.watch("zmq", self.alive)

    def alive(self) -> bool:
        """True while the socket can send (and its CURVE authenticator thread runs), or after ``close()``."""
        if self._closed and self._broken is None:
            return True
        return self._broken is None and (self._auth is None or self._auth.is_alive())

    def publish(self, topic: str, payload: Mapping[str, Any]) -> bool:
        """Send one message; False when it was dropped (topic disabled, HWM reached, closed)."""
        if topic not in self.topics:
            return False
        try:
            with self._lock:
                if self._closed:
                    return False
                body = dumps(payload)
                try:
                    self._socket.send_multipart([topic.encode("ascii"), body], flags=zmq.NOBLOCK)
                except zmq.Again:
                    self._count(topic, "dropped")
                    return False
        except Exception as exc:  # catch-all: publishing must never raise into the pipeline
            self._count(topic, "error")
            if self._metrics is not None:
                self._metrics.error("zmq")
            if isinstance(exc, zmq.ZMQError) and exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                self._broken = f"{type(exc).__name__}: {exc}"  # the socket is gone for good: down
            self._errors += 1
            if self._errors == 1 or self._errors % 1000 == 0:  # once per frame would flood the log
                log.exception("ZeroMQ PUB: sending a %s message failed (%d failure(s) so far)", topic, self._errors)
            return False
        self._count(topic, "sent")
        return True

    def publish_stats(self, stats: FrameStats) -> bool:
        return self.publish("stats", stats_to_dict(stats))

    def publish_changepoint(self, changepoint: ChangePoint) -> bool:
        return self.publish("changepoint", changepoint_to_dict(changepoint))

    def publish_alert(self, alert: Alert) -> bool:
        return self.publish("alert", alert_to_dict(alert))

    def close(self, timeout: float = 0.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._socket.close(linger=int(timeout * 1000))
            if self._auth is not None:
                self._auth.stop()
            if self._own_context is not None:
                self._own_context.term()

    def _count(self, topic: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.published.labels(topic=topic, result=result).inc()


class ZmqAlertSink:
    """The ``alert`` topic as an ``AlertSink``, so alerts reach every sink the same way."""

    def __init__(self, publisher: ZmqPublisher, name: str = "zmq", metrics: AlertMetrics | None = None) -> None:
        self.name = name
        self._publisher = publisher
        self._metrics = metrics

    def send(self, alert: Alert) -> None:
        ok = self._publisher.publish_alert(alert)
        if self._metrics is not None:
            self._metrics.sent(self.name, "success" if ok else "dropped")

    def close(self, timeout: float = 5.0) -> None:
        """The publisher belongs to whoever built it (it also carries stats); it closes it."""
