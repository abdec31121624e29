"""ZeroMQ input: a drain thread that moves raw messages from the socket into a bounded buffer.

The drain thread never decodes (decoding every message of a fast detector just
to throw most away would need many cores): it checks the total size, strips a
SUB topic frame, classifies start/end messages cheaply, stamps the receive
time and hands the parts to ``MessageBuffer``, which applies the overload
policy and counts drops. The consumer calls ``get()`` and decodes only what it
takes.

Bounded memory: ZeroMQ holds at most ``hwm`` messages, each part at most
``max_message_bytes`` (``zmq.MAXMSGSIZE``); the buffer holds at most
``buffer`` data messages plus up to 1024 start/end messages.

A part above ``MAXMSGSIZE`` makes libzmq drop the connection as a protocol
error, and a connecting socket then does NOT reconnect by itself (seen with
pyzmq 27 / libzmq 4.3): the stream would stop for good. The drain thread
therefore watches the socket's monitor events and, when a disconnect is not
followed by ZeroMQ's own reconnect attempt within ``RECOVER_AFTER_S``,
disconnects and connects the endpoint again (counted in ``stats().reconnects``).

Counting and ``stats()`` are ``BufferedSource``'s (shared with the PV Access source); which messages
are series start/end is the format's call (``wirewatch.ingest.formats.is_control``).
"""

from __future__ import annotations

import logging
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

from wirewatch.errors import ConfigError
from wirewatch.ingest.base import RawMessage
from wirewatch.ingest.buffered import BufferedSource
from wirewatch.ingest.config import IngestConfig, IngestCurveConfig
from wirewatch.ingest.formats import get_format, is_control

log = logging.getLogger(__name__)
POLL_MS = 50
# zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | _PROTOCOL | _AUTH (libzmq 4.3 values, stable API)
_HANDSHAKE_FAILED = 0x0800 | 0x2000 | 0x4000
RECOVER_AFTER_S = 0.5


def _certificate(path: Any, *, secret: bool) -> tuple[bytes, bytes | None]:
    """(public, secret) Z85 keys from a ``zmq.auth`` certificate file; errors name the file, never a key."""
    import zmq.auth

    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read CURVE certificate {path}: {exc}") from None
    if secret:
        if not secret_key:
            raise ConfigError(f"CURVE certificate {path} holds no secret key (give a .key_secret file)")
        mode = path.stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning("ingest.curve.secret_file %s is readable by group or others (mode %o); chmod 600 it",
                        path, stat.S_IMODE(mode))
    return public, secret_key


__all__ = ["RECOVER_AFTER_S", "ZmqSource", "is_control"]


class ZmqSource(BufferedSource):
    """SUB or PULL socket, connect or bind, drained by a background thread.

    ``on_drop(reason, message)`` is called (from the drain thread) for each
    message dropped by the overload policy; ``on_reject(kind, detail)`` for each
    message refused before buffering (``oversized``). Use ``stats()`` for totals.
    """

    def __init__(self, config: IngestConfig, *, context: Any = None,
                 on_drop: Callable[[str, RawMessage], None] | None = None,
                 on_reject: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(buffer=config.buffer, policy=config.policy, on_drop=on_drop, on_reject=on_reject)
        self.config = config
        self.format_name: str = config.format
        self._is_control = get_format(config.format).is_control  # looked up once, called per message
        self._context = context
        self._own_context = context is None
        self._clock = clock
        self._topic = config.topic.encode()
        self._max_parts = config.limits().max_parts + (1 if config.socket == "sub" and config.topic else 0)
        self._socket: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._reconnects = 0
        self._monitor: Any = None
        self._auth: Any = None
        self._last_handshake_warning = -1e9
        self.endpoint: str | None = None  # the resolved endpoint (port filled in after bind to port 0 / '*')
        self.error: BaseException | None = None

    # -- lifecycle
    def start(self) -> None:
        """Create, configure and bind/connect the socket here (errors surface now), then start draining."""
        import zmq

        if self._thread is not None:
            raise RuntimeError("ZmqSource already started")
        curve = self.config.curve
        if curve is not None and curve.authorized_clients_dir is not None:
            # One ZAP authenticator per context: a private context keeps ours from clashing with
            # (or loosening) authentication configured by other sockets on a shared one.
            self._context, self._own_context = zmq.Context(), True
        if self._context is None:
            self._context = zmq.Context()
        sock = self._context.socket(zmq.SUB if self.config.socket == "sub" else zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, self.config.hwm)
        sock.setsockopt(zmq.MAXMSGSIZE, self.config.max_message_bytes)
        sock.setsockopt(zmq.LINGER, 0)
        if self.config.socket == "sub":
            sock.setsockopt(zmq.SUBSCRIBE, self._topic)
        self._socket = sock
        try:
            if curve is not None:
                self._setup_curve(sock, curve)
            if self.config.bind:
                sock.bind(self.config.endpoint)
            else:
                sock.connect(self.config.endpoint)
        except zmq.ZMQError as exc:
            self.close()
            verb = "bind to" if self.config.bind else "connect to"
            raise ConfigError(f"cannot {verb} {self.config.endpoint!r}: {exc}") from None
        except BaseException:
            self.close()
            raise
        self.endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode() or self.config.endpoint
        if not self.config.bind:
            self._monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECTED
                                                    | zmq.EVENT_CONNECT_DELAYED | zmq.EVENT_CONNECT_RETRIED
                                                    | _HANDSHAKE_FAILED)
        self._socket = sock
        self._thread = threading.Thread(target=self._drain, name="wirewatch-zmq-drain", daemon=True)
        self._thread.start()
        log.info("ingest: %s %s %s (format %s, policy %s)", self.config.socket.upper(),
                 "bound to" if self.config.bind else "connected to", self.endpoint, self.format_name,
                 self.config.policy)

    def _setup_curve(self, sock: Any, curve: IngestCurveConfig) -> None:
        import zmq

        if not zmq.has("curve"):
            raise ConfigError("this libzmq has no CURVE support; ingest.curve cannot be used")
        public, secret = _certificate(curve.secret_file, secret=True)
        sock.curve_publickey, sock.curve_secretkey = public, secret
        if self.config.bind:
            sock.curve_server = True
            if curve.authorized_clients_dir is not None:
                from zmq.auth.thread import ThreadAuthenticator

                if not curve.authorized_clients_dir.is_dir():
                    raise ConfigError(f"ingest.curve.authorized_clients_dir {curve.authorized_clients_dir} "
                                      "is not a directory")
                self._auth = ThreadAuthenticator(self._context, log=logging.getLogger(__name__ + ".zap"))
                self._auth.start()
                self._auth.configure_curve(domain="*", location=str(curve.authorized_clients_dir))
        else:
            assert curve.server_public_file is not None  # IngestConfig requires it when connecting
            sock.curve_serverkey = _certificate(curve.server_public_file, secret=False)[0]

    def close(self) -> None:
        """Stop draining, close the socket; messages still buffered stay readable with ``get``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None and not self._socket.closed:
            self._socket.close(0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._own_context and self._context is not None:
            self._context.term()
            self._context = None

    def __enter__(self) -> ZmqSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what BufferedSource asks
    @property
    def reconnects(self) -> int:
        return self._reconnects

    def describe_input(self) -> str:
        where = "bound to" if self.config.bind else "connected to"
        return f"ZeroMQ {self.config.socket.upper()} {where} {self.endpoint or self.config.endpoint}, " \
               f"format {self.format_name}"

    # -- drain thread
    def _drain(self) -> None:
        import zmq

        sock, monitor = self._socket, self._monitor
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        if monitor is not None:
            poller.register(monitor, zmq.POLLIN)
        limit = self.config.max_message_bytes
        disconnected_at: float | None = None
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(POLL_MS))
                if monitor is not None:
                    disconnected_at = self._watch_connection(monitor, ready, disconnected_at)
                if sock not in ready:
                    continue
                while not self._stop.is_set():
                    try:
                        parts, size, complete = self._recv_bounded(sock, limit, zmq.NOBLOCK, zmq.RCVMORE)
                    except zmq.Again:
                        break
                    now = self._clock()
                    self._received_message(size)
                    if not complete:
                        self._reject("oversized", f"message of {size} bytes / more than {self._max_parts} parts, "
                                                  f"above max_message_bytes={limit}")
                        continue
                    if self._topic and len(parts) > 1 and parts[0] == self._topic:
                        parts = parts[1:]
                    msg = RawMessage(parts=tuple(parts), received_at=now, seq=self._next_seq(),
                                     control=self._is_control(parts))
                    self._offer(msg, self._stop)  # under policy queue: waits for room, or counts 'shutdown'
        except zmq.ZMQError as exc:
            if not self._stop.is_set():
                self.error = exc
                log.error("ingest: drain thread stopped: %s", exc)
        except Exception as exc:  # e.g. a failing on_drop callback: report it, do not die silently
            self.error = exc
            log.exception("ingest: drain thread failed")
        finally:
            if monitor is not None:
                sock.disable_monitor()
                monitor.close(0)
            self._buffer.close()

    def _recv_bounded(self, sock: Any, limit: int, noblock: int, rcvmore: int) -> tuple[list[bytes], int, bool]:
        """One multipart message, part by part: parts beyond ``max_parts`` or the byte limit are read and
        discarded at once instead of being collected (``recv_multipart`` would keep them all)."""
        first = sock.recv(noblock)
        parts, size, complete = [first], len(first), True
        while sock.get(rcvmore):
            part = sock.recv()  # the rest of a multipart message is already here: never blocks
            size += len(part)
            if complete and (len(parts) >= self._max_parts or size > limit):
                complete = False
                parts = []
            if complete:
                parts.append(part)
        return parts, size, complete and size <= limit

    def _watch_connection(self, monitor: Any, ready: dict, disconnected_at: float | None) -> float | None:
        """Reconnect a connecting socket that ZeroMQ gave up on (see the module docstring)."""
        import zmq
        from zmq.utils.monitor import recv_monitor_message

        if monitor in ready:
            while monitor.poll(0):
                event = recv_monitor_message(monitor)["event"]
                if event & _HANDSHAKE_FAILED:
                    self._handshake_failed()
                    continue
                disconnected_at = time.monotonic() if event == zmq.EVENT_DISCONNECTED else None
        if disconnected_at is not None and time.monotonic() - disconnected_at > RECOVER_AFTER_S:
            log.warning("ingest: %s dropped the connection to %s and is not retrying (a message part above "
                        "max_message_bytes=%d?); reconnecting", self.config.socket.upper(), self.config.endpoint,
                        self.config.max_message_bytes)
            self._socket.disconnect(self.config.endpoint)
            self._socket.connect(self.config.endpoint)
            self._reconnects += 1
            return None
        return disconnected_at

    def _handshake_failed(self) -> None:
        # A wrong CURVE key (or a plain sender) fails silently otherwise: say so, at most once a minute.
        now = time.monotonic()
        if now - self._last_handshake_warning > 60.0:
            self._last_handshake_warning = now
            log.warning("ingest: ZeroMQ handshake with %s failed (CURVE keys or security settings do not match "
                        "the sender's?)", self.config.endpoint)
