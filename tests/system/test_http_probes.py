"""Issue 39's probes against the HTTP port, on real loopback sockets: each failed on the hand-written server
(two responses, 200, 200, 366 MB) and passes on Starlette + uvicorn with ``wirewatch.web.guard``.

Plus the browser-facing protections around them: session cookie attributes, no exception text to clients,
request ids, allowed hosts and origins from the config.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from wirewatch.daemon.service import Daemon
from wirewatch.segment import load_segmenter
from wirewatch.web import HttpServer, WebApp

from .helpers import daemon_config
from .web_support import png_bytes, rods_image

MB = 1024 * 1024


@pytest.fixture
def web_server() -> Iterator[HttpServer]:
    server = HttpServer(CollectorRegistry(), port=0, app=WebApp(segmenter=load_segmenter("watershed")))
    try:
        yield server
    finally:
        server.close()


def _read_for(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sends within ``seconds`` (or until it closes)."""
    sock.settimeout(0.1)
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    return data


def _form(fields: list[tuple[str, str, bytes]], boundary: str = "wwprobe") -> tuple[bytes, str]:
    body = b""
    for name, filename, data in fields:
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# -- probe 1: a body that looks like a second request is a body ----------------------------------------------

def test_probe_1_a_get_whose_body_is_a_second_request_gets_exactly_one_response(web_server: HttpServer) -> None:
    smuggled = b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection((web_server.host, web_server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled))
        answer = _read_for(sock, 1.5)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    print(f"probe 1: {len(statuses)} response(s): {statuses}")
    assert statuses == [b"200"], answer[:300]
    assert b"/static/live.js" in answer and b'"frames_observed"' not in answer  # the page, not /api/status
    # the CL.TE variant: h11 would let Transfer-Encoding win and read the rest as a second request; refused
    with socket.create_connection((web_server.host, web_server.port), timeout=5) as sock:
        sock.sendall(b"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled)
        answer = _read_for(sock, 1.5)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answer) == [b"400"], answer[:300]


# -- probe 2: cross-site state changes ----------------------------------------------------------------------

def _post(server: HttpServer, path: str, body: bytes, ctype: str, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(server.url + path, data=body, method="POST",
                                 headers={"Content-Type": ctype, **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_probe_2_a_cross_site_post_is_refused_403_and_same_origin_works(web_server: HttpServer) -> None:
    body, ctype = _form([("image", "rods.png", png_bytes(rods_image()))])
    status, out = _post(web_server, "/api/segment?histograms=0", body, ctype, {"Origin": "http://evil.example"})
    print(f"probe 2: cross-site POST /api/segment -> {status} {out[:60]!r}")
    assert status == 403 and b"http://evil.example" in out and web_server.app is not None
    assert web_server.app.uploads_done == 0
    for origin in ("null", f"http://evil.example:{web_server.port}", f"https://127.0.0.1:{web_server.port}x"):
        assert _post(web_server, "/api/segment", body, ctype, {"Origin": origin})[0] == 403
    # the page's own origin, and a client that sends no Origin (curl, scripts), are served
    status, out = _post(web_server, "/api/segment?histograms=0", body, ctype, {"Origin": web_server.url})
    assert status == 200 and len(json.loads(out)["particles"]) >= 2
    assert _post(web_server, "/api/segment?histograms=0", body, ctype, {})[0] == 200
    assert web_server.app.uploads_done == 2


def test_allowed_origins_admit_a_reverse_proxys_public_name() -> None:
    server = HttpServer(CollectorRegistry(), port=0, app=WebApp(segmenter=load_segmenter("watershed")),
                        allowed_origins=["https://wirewatch.example.org"])
    try:
        body, ctype = _form([("image", "rods.png", png_bytes(rods_image()))])
        ok = {"Origin": "https://wirewatch.example.org"}
        assert _post(server, "/api/segment?histograms=0", body, ctype, ok)[0] == 200
        assert _post(server, "/api/segment", body, ctype, {"Origin": "https://other.example.org"})[0] == 403
    finally:
        server.close()


# -- probe 3: DNS rebinding -----------------------------------------------------------------------------------

def _get_with_host(server: HttpServer, path: str, host: str) -> int:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        return conn.getresponse().status  # the body is not read: /api/events would stream on
    finally:
        conn.close()


def test_probe_3_a_foreign_host_header_is_refused_421(web_server: HttpServer) -> None:
    statuses = {path: _get_with_host(web_server, path, "evil.example") for path in
                ("/api/status", "/api/latest", "/metrics", "/", "/api/events")}
    print(f"probe 3: Host: evil.example -> {statuses}")
    assert set(statuses.values()) == {421}
    for host in (f"127.0.0.1:{web_server.port}", f"localhost:{web_server.port}", "localhost", "LOCALHOST."):
        assert _get_with_host(web_server, "/api/status", host) == 200, host
    assert _get_with_host(web_server, "/api/status", f"evil.example:{web_server.port}") == 421


def test_allowed_hosts_add_names_and_domains() -> None:
    server = HttpServer(CollectorRegistry(), port=0, allowed_hosts=["wirewatch.example.org", ".beamline.lan"])
    try:
        for host, status in (("wirewatch.example.org", 200), ("wirewatch.example.org:443", 200),
                             ("ptycho.beamline.lan", 200), ("beamline.lan", 200), ("evilbeamline.lan", 421),
                             ("example.org", 421)):
            assert _get_with_host(server, "/healthz", host) == status, host
    finally:
        server.close()


def test_the_daemon_takes_allowed_hosts_and_origins_from_its_config() -> None:
    cfg = daemon_config("tcp://127.0.0.1:1", alerts={"enabled": False},
                        http={"allowed_hosts": ["wirewatch.example.org"], "secure_cookie": True,
                              "allowed_origins": ["https://wirewatch.example.org"]})
    daemon = Daemon(cfg).start()
    try:
        assert daemon.http is not None
        assert _get_with_host(daemon.http, "/healthz", "wirewatch.example.org") == 200
        assert _get_with_host(daemon.http, "/healthz", "evil.example") == 421
        assert daemon.http.guard.allowed_origins == ("https://wirewatch.example.org",) and daemon.http.secure_cookie
    finally:
        daemon.close()


# -- probe 4: a huge second form field ------------------------------------------------------------------------

def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


def _upload_raw(host: str, port: int, body: bytes, ctype: str) -> bytes:
    """Send ``body`` from a thread (the server may answer and stop reading long before it is all sent) and
    return the answer's head and first bytes."""
    with socket.create_connection((host, port), timeout=20) as sock:
        head = (f"POST /api/segment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()

        def send() -> None:
            with contextlib.suppress(OSError):  # refused and closed while sending: expected
                sock.sendall(head + body)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answer = b""
        sock.settimeout(20)
        try:
            while b"\r\n\r\n" not in answer or b"}" not in answer:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        sock.close()
        sender.join(10)
        return answer


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for the peak RSS")
def test_probe_4_a_30_mb_upload_with_a_huge_second_field_is_refused_while_it_streams(tmp_path: Path) -> None:
    """``wirewatch serve`` as its own process: a 30 MB form whose image part is small and whose second
    field is 30 MB is answered 400 naming the field, once alone and then four at once (the pending-upload
    limit), and the process's peak RSS grows by at most 64 MB (the hand-written server: 366 MB for one)."""
    proc = subprocess.Popen([sys.executable, "-m", "wirewatch", "serve", "--port", "0", "--backend", "watershed"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://([\d.]+):(\d+)", line)
        assert match, line
        host, port = match.group(1), int(match.group(2))
        small = png_bytes(rods_image())
        warm, ctype = _form([("image", "rods.png", small), ("extra", "x.bin", b"x" * 1000)])
        _upload_raw(host, port, warm, ctype)  # code paths loaded before the baseline
        before = _peak_rss_mb(proc.pid)
        body, ctype = _form([("image", "rods.png", small), ("notes", "huge.bin", b"n" * (30 * 1000 * 1000))])
        assert 30 * 1000 * 1000 < len(body) < 32 * MB  # under max_upload_bytes: only the part rule refuses it
        t0 = time.monotonic()
        answer = _upload_raw(host, port, body, ctype)
        refused_s = time.monotonic() - t0
        one = _peak_rss_mb(proc.pid) - before
        answers: list[bytes] = []
        threads = [threading.Thread(target=lambda: answers.append(_upload_raw(host, port, body, ctype)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        growth = _peak_rss_mb(proc.pid) - before
        print(f"probe 4: answered {answer[:12]!r} in {refused_s:.2f} s; peak RSS {before:.0f} MB, +{one:.1f} MB "
              f"after one 30 MB upload, +{growth:.1f} MB after four more at once")
        assert answer.startswith(b"HTTP/1.1 400") and b"unexpected form field 'notes'" in answer, answer[:300]
        assert len(answers) == 4 and all(a.startswith(b"HTTP/1.1 400") for a in answers), [a[:40] for a in answers]
        assert growth <= 64, growth
        # and the server still segments a good upload afterwards
        good, ctype = _form([("image", "rods.png", small)])
        assert _upload_raw(host, port, good, ctype).startswith(b"HTTP/1.1 200")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_an_event_stream_on_a_descriptor_above_1024_keeps_delivering() -> None:
    """The hand-written server checked for a closed page with ``select.select``, which cannot take a file
    descriptor >= 1024: such a page read as gone and its stream ended at once. The event loop has no limit."""
    import resource

    from wirewatch.web import WebConfig
    from wirewatch.web.hub import encode_event

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard limit of open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200) if soft != resource.RLIM_INFINITY else soft, hard))
    fillers: list[int] = []
    app = WebApp(config=WebConfig(push_interval_s=0.0))
    server = HttpServer(CollectorRegistry(), port=0, app=app)
    try:
        while len(fillers) < 1030:  # the next descriptors the server accepts are above 1024
            fillers.extend(os.pipe())
        with socket.create_connection((server.host, server.port), timeout=5) as sse:
            sse.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            seen = b""
            while b"event: hello" not in seen:
                chunk = sse.recv(65536)
                assert chunk, "the server ended the event stream"
                seen += chunk
            time.sleep(0.5)
            assert app.hub.client_count == 1
            app.hub.publish(encode_event("status", {"probe": 1024}))
            seen = b""
            while b'{"probe":1024}' not in seen:
                chunk = sse.recv(65536)
                assert chunk, "the server ended the event stream"
                seen += chunk
    finally:
        server.close()
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- cookies, exception text, request ids ---------------------------------------------------------------------

def test_the_session_cookie_is_secure_when_configured() -> None:
    server = HttpServer(CollectorRegistry(), port=0, app=WebApp(), bearer_token="tok-123", secure_cookie=True)
    try:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
        conn.request("POST", "/login", body="token=tok-123", headers={"Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        resp.read()
        attributes = [a.strip() for a in (resp.getheader("Set-Cookie") or "").split(";")]
        assert resp.status == 303 and {"HttpOnly", "SameSite=Strict", "Secure"} <= set(attributes)
        assert "tok-123" not in attributes[0]
        conn.close()
    finally:
        server.close()


def test_no_exception_text_reaches_a_client_only_a_request_id_logged_server_side(
        caplog: pytest.LogCaptureFixture) -> None:
    server = HttpServer(CollectorRegistry(), port=0)

    def boom() -> None:
        raise ValueError("internal detail /etc/secret-path 0xdeadbeef")

    server.add_route("/boom", boom)  # type: ignore[arg-type]
    try:
        with caplog.at_level(logging.ERROR, logger="wirewatch.web.server"), \
                pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + "/boom", timeout=5)
        body = err.value.read().decode()
        request_id = err.value.headers["X-Request-Id"]
        assert err.value.code == 500 and request_id and request_id in body
        assert "detail" not in body and "ValueError" not in body and "secret" not in body
        logged = [r for r in caplog.records if request_id in r.getMessage()]
        assert logged and logged[0].exc_info is not None and "0xdeadbeef" in caplog.text
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as ok:  # every answer carries an id
            assert re.fullmatch(r"[0-9a-f]{16}", ok.headers["X-Request-Id"]) and ok.headers["X-Request-Id"] != request_id
    finally:
        server.close()
