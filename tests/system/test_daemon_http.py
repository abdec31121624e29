"""The HTTP server on a real loopback port: routes, bearer token, failing handlers, request timeout,
log redaction."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from wirewatch.daemon.service import Daemon
from wirewatch.web import WebApp, WebConfig
from wirewatch.web.config import HttpConfig
from wirewatch.web.hub import encode_event
from wirewatch.web.server import BODY_MIN_RATE, HttpServer, Response

from .helpers import daemon_config, wait_for


def get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    Counter("wirewatch_test_total", "a test counter", registry=reg).inc(3)
    return reg


def test_routes_health_and_mounting_more_pages(registry: CollectorRegistry) -> None:
    state = {"healthy": True, "ready": False}
    server = HttpServer(registry, port=0, healthy=lambda: state["healthy"], ready=lambda: state["ready"])
    try:
        assert server.host == "127.0.0.1"
        status, body = get(server.url + "/metrics")
        assert status == 200 and "wirewatch_test_total 3.0" in body
        assert get(server.url + "/healthz")[0] == 200
        assert get(server.url + "/readyz")[0] == 503
        state["ready"], state["healthy"] = True, False
        assert get(server.url + "/readyz")[0] == 200 and get(server.url + "/healthz")[0] == 503
        server.add_route("/view", lambda: Response(200, b"<h1>view</h1>", "text/html"))
        assert get(server.url + "/view") == (200, "<h1>view</h1>")
        server.add_route("/boom", lambda: 1 / 0)  # type: ignore[arg-type, return-value]
        assert get(server.url + "/boom")[0] == 500
        assert get(server.url + "/metrics")[0] == 200  # still serving
        status, body = get(server.url + "/missing")
        assert status == 404 and "/metrics" in body
    finally:
        server.close()


def test_bearer_token_protects_every_route(registry: CollectorRegistry) -> None:
    server = HttpServer(registry, port=0, bearer_token="s3cret")
    try:
        assert get(server.url + "/metrics")[0] == 401
        assert get(server.url + "/healthz", token="wrong")[0] == 401
        status, body = get(server.url + "/metrics", token="s3cret")
        assert status == 200 and "wirewatch_test_total" in body
    finally:
        server.close()


def _closed_by_server_within(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes ``sock`` (recv returns b""); fails past ``limit``."""
    sock.settimeout(limit)
    t0 = time.monotonic()
    try:
        while sock.recv(4096):  # a timed-out request may get a short answer before the close
            pass
    except TimeoutError:
        raise AssertionError(f"the server kept an idle connection open for more than {limit} s") from None
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


def test_idle_and_half_sent_connections_are_closed_after_the_request_timeout(registry: CollectorRegistry) -> None:
    """A client that connects and sends nothing, one that stops mid-request and a keep-alive connection left
    idle after a request are each closed after ``request_timeout_s``, freeing their slots; ``/metrics``
    keeps answering meanwhile."""
    server = HttpServer(registry, port=0, request_timeout_s=1.0)
    try:
        opened = time.monotonic()
        silent = socket.create_connection((server.host, server.port))
        partial = socket.create_connection((server.host, server.port))
        partial.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
        kept = socket.create_connection((server.host, server.port))
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept.recv(4096).startswith(b"HTTP/1.1 200")  # answered; the connection stays open (keep-alive)
        assert server.open_connections == 3
        for _ in range(3):  # the server answers others while the three connections hang
            status, body = get(server.url + "/metrics")
            assert status == 200 and "wirewatch_test_total 3.0" in body
        for sock in (silent, partial, kept):
            _closed_by_server_within(sock, 5.0)
            assert time.monotonic() - opened >= 0.95  # not before the timeout
            sock.close()
        wait_for(lambda: server.open_connections == 0, 5.0)  # (the server's own count, not threads: asyncio)
        assert get(server.url + "/healthz")[0] == 200
    finally:
        server.close()


def test_trickled_headers_are_cut_at_the_request_timeout_in_total(registry: CollectorRegistry) -> None:
    """Slowloris: a header byte every 0.2 s passes a 1 s per-read timeout forever; the request line and
    headers must be complete within 1 s in total, so the server closes the connection after ~1 s, and the
    next client on a fresh connection is answered as usual."""
    server = HttpServer(registry, port=0, request_timeout_s=1.0)
    try:
        sock = socket.create_connection((server.host, server.port))
        opened = time.monotonic()
        closed_at = None
        for byte in b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 40:  # 8 s of trickle at most
            if select.select([sock], [], [], 0.2)[0]:  # readable: the server closed (no answer is sent)
                closed_at = time.monotonic() - opened
                assert sock.recv(4096) == b""
                break
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic() - opened
                break
        assert closed_at is not None and 0.9 <= closed_at < 3.0, closed_at
        sock.close()
        status, body = get(server.url + "/metrics")
        assert status == 200 and "wirewatch_test_total" in body
    finally:
        server.close()


def test_request_timeout_comes_from_the_http_config_and_must_be_positive() -> None:
    assert HttpConfig().request_timeout_s == 10.0
    assert HttpConfig.model_validate({"request_timeout_s": 2.5}).request_timeout_s == 2.5
    with pytest.raises(ValidationError):
        HttpConfig.model_validate({"request_timeout_s": 0})
    with pytest.raises(ValueError, match="request_timeout_s"):
        HttpServer(CollectorRegistry(), request_timeout_s=0)
    cfg = daemon_config("tcp://127.0.0.1:1", http={"request_timeout_s": 0.5, "web": {"enabled": False}},
                        alerts={"enabled": False})
    daemon = Daemon(cfg).start()
    try:
        assert daemon.http is not None and daemon.http.request_timeout_s == 0.5 and daemon.http.app is None
        with socket.create_connection((daemon.http.host, daemon.http.port)) as silent:
            assert _closed_by_server_within(silent, 5.0) < 5.0
    finally:
        daemon.close()


def test_connections_beyond_the_cap_get_503_and_a_freed_slot_serves_again(registry: CollectorRegistry) -> None:
    """With ``max_connections`` held by silent clients, one more connection is answered 503 (not left
    hanging, no thread started); once a held connection closes, requests are served again."""
    server = HttpServer(registry, port=0, request_timeout_s=30.0, max_connections=2)
    held = [socket.create_connection((server.host, server.port)) for _ in range(2)]
    try:
        wait_for(lambda: server.open_connections == 2, 5.0)  # both accepted, each holding its thread
        threads = threading.active_count()
        started = time.monotonic()
        status, body = get(server.url + "/metrics")
        assert (status, body) == (503, "too many connections\n")
        assert time.monotonic() - started < 2.0 and threading.active_count() == threads
        assert server.refused_connections == 1
        held.pop().close()  # the server reads EOF, its thread ends and frees that slot
        wait_for(lambda: server.open_connections == 1, 5.0)
        status, body = get(server.url + "/metrics")
        assert status == 200 and "wirewatch_test_total 3.0" in body
    finally:
        for sock in held:
            sock.close()
        server.close()


def test_max_connections_comes_from_the_http_config_and_must_be_positive() -> None:
    assert HttpConfig().max_connections == 256
    with pytest.raises(ValidationError):
        HttpConfig.model_validate({"max_connections": 0})
    with pytest.raises(ValueError, match="max_connections must be at least 1, got 0"):
        HttpServer(CollectorRegistry(), max_connections=0)
    cfg = daemon_config("tcp://127.0.0.1:1", http={"max_connections": 1, "web": {"enabled": False}},
                        alerts={"enabled": False})
    daemon = Daemon(cfg).start()
    try:
        assert daemon.http is not None
        with socket.create_connection((daemon.http.host, daemon.http.port)):
            wait_for(lambda: get(daemon.http.url + "/healthz")[0] == 503, 5.0)  # type: ignore[union-attr]
    finally:
        daemon.close()


def test_an_event_stream_outlives_the_request_timeout() -> None:
    """Live pages' event streams are long-lived by design: still open and delivering after several
    request timeouts."""
    app = WebApp(config=WebConfig(push_interval_s=0.0))
    server = HttpServer(CollectorRegistry(), port=0, app=app, request_timeout_s=0.3)
    try:
        with socket.create_connection((server.host, server.port), timeout=5) as sse:
            sse.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            seen = b""
            while b"event: hello" not in seen:
                seen += sse.recv(65536)
            assert seen.startswith(b"HTTP/1.1 200") and b"text/event-stream" in seen
            time.sleep(1.2)  # four request timeouts
            assert app.hub.client_count == 1
            app.hub.publish(encode_event("status", {"probe": 42}))
            seen = b""
            while b'{"probe":42}' not in seen:
                chunk = sse.recv(65536)
                assert chunk, "the server closed the event stream"
                seen += chunk
            assert b"event: status" in seen
    finally:
        server.close()


def test_the_debug_request_log_masks_a_token_in_the_url() -> None:
    """The server's own request log line never carries a ``token=`` value, whatever logging the embedding
    program set up (here: a bare handler on the server's logger, no CLI redaction filter)."""
    token = "url-token-4d3c2b1a0f"
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("wirewatch.web.server")
    handler, level = Collect(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    # URL tokens are refused everywhere (401; browsers log in with a POST form), but still never logged.
    servers = [HttpServer(CollectorRegistry(), port=0, bearer_token=token),
               HttpServer(CollectorRegistry(), port=0, bearer_token=token, app=WebApp())]
    try:
        for server in servers:
            for path in (f"/metrics?token={token}", f"/?x=1&token={token}", "/healthz?token=wrong-guess-77"):
                req = urllib.request.Request(server.url + path)
                with contextlib.suppress(urllib.error.HTTPError):
                    urllib.request.urlopen(req, timeout=5).read()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        for server in servers:
            server.close()
    requests = [line for line in lines if "GET /" in line]
    assert len(requests) >= 6, lines
    assert all("token=***" in line for line in requests if "token" in line)
    assert not any(token in line or "wrong-guess-77" in line for line in lines), lines


def test_an_upload_that_stalls_is_abandoned_after_the_request_timeout_and_frees_its_slot() -> None:
    """A POST that declares 100 kB and sends 10 bytes is dropped after the timeout; with one upload slot,
    the next upload is served (answered 400 for its bad body, not 503 for a slot still held)."""
    app = WebApp(config=WebConfig(max_pending_uploads=1))
    server = HttpServer(CollectorRegistry(), port=0, app=app, request_timeout_s=0.5)
    try:
        with socket.create_connection((server.host, server.port)) as stalled:
            stalled.sendall(b"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                            b"boundary=b\r\nContent-Length: 100000\r\n\r\n0123456789")
            _closed_by_server_within(stalled, 5.0)
        req = urllib.request.Request(server.url + "/api/segment", data=b"not a form", method="POST",
                                     headers={"Content-Type": "multipart/form-data; boundary=b"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code == 400
    finally:
        server.close()


def _read_to_close(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _post_head(length: int) -> bytes:
    return (b"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: %d\r\n\r\n" % length)


def test_a_trickled_upload_body_is_cut_off_below_the_minimum_rate() -> None:
    """A body sent a byte every 0.05 s (20 bytes/s) passes every per-read timeout but falls below
    ``BODY_MIN_RATE``: about one request timeout after the headers (its deadline grows by only 20 / 500 s a
    second) the server answers 408 and closes the connection, and the upload slot is free again. (The
    hand-written server closed without an answer; uvicorn's connection is closed after a 408 instead.)"""
    app = WebApp(config=WebConfig(max_pending_uploads=1))
    server = HttpServer(CollectorRegistry(), port=0, app=app, request_timeout_s=0.5)
    try:
        with socket.create_connection((server.host, server.port)) as sock:
            sock.sendall(_post_head(2000) + b'--b\r\nContent-Disposition: form-data; name="image"\r\n\r\n')
            opened = time.monotonic()
            closed_at = None
            for _ in range(200):  # 10 s of trickle at most
                if select.select([sock], [], [], 0.05)[0]:
                    closed_at = time.monotonic() - opened
                    answer = _read_to_close(sock)
                    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
                    break
                try:
                    sock.sendall(b"x")
                except (BrokenPipeError, ConnectionResetError):
                    closed_at = time.monotonic() - opened
                    break
            assert closed_at is not None and 0.45 <= closed_at < 2.0, closed_at
        req = urllib.request.Request(server.url + "/api/segment", data=b"not a form", method="POST",
                                     headers={"Content-Type": "multipart/form-data; boundary=b"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code == 400  # the slot was given back: not 503
    finally:
        server.close()


def test_an_upload_that_keeps_moving_may_outlast_the_request_timeout() -> None:
    """A 3000-byte form in 100-byte pieces every 0.04 s (~2.5 kB/s, above ``BODY_MIN_RATE``) takes 1.2 s,
    more than twice the 0.5 s request timeout: the whole body is read and answered (400 for its
    content, not a closed connection, a 408 or a short body)."""
    assert BODY_MIN_RATE <= 2000
    app = WebApp()
    server = HttpServer(CollectorRegistry(), port=0, app=app, request_timeout_s=0.5)
    head = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n'
    tail = b"\r\n--b--\r\n"
    body = head + b"x" * (3000 - len(head) - len(tail)) + tail
    try:
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(_post_head(3000))
            t0 = time.monotonic()
            for i in range(30):
                time.sleep(0.04)
                sock.sendall(body[100 * i:100 * (i + 1)])
            assert time.monotonic() - t0 >= 1.0
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = sock.recv(4096)
                assert chunk, f"the server closed a body that kept moving: {answer!r}"
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b"not a PNG, TIFF or JPEG" in answer and b"ended after" not in answer, answer
    finally:
        server.close()
