"""The web view's API on a real daemon fed by the simulator over ZeroMQ (watershed, loopback, port 0)."""

from __future__ import annotations

import base64
import http.client
import io
import itertools
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.system.web_support import (
    LiveDaemon,
    get,
    get_json,
    multipart,
    png_bytes,
    post,
    rods_image,
    start_live,
    stop_live,
    wait_for,
)
from wirewatch.stats import PARTICLE_COLUMNS
from wirewatch.web import WebConfig

LIMIT = 2_000_000


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    tmp = tmp_path_factory.mktemp("web")
    rules = [{"kind": "threshold", "name": "ManyWires", "statistic": "particle_count", "min": 0, "max": 1,
              "for_frames": 1}]
    web = WebConfig(max_upload_bytes=LIMIT, max_image_pixels=1_000_000, overlay_interval_s=0.2)
    live = start_live(tmp, rate=10.0, web=web, rules=rules)
    try:
        wait_for(lambda: live.processed >= 12, 90, "12 processed frames")
        yield live
    finally:
        stop_live(live)


def sse_events(url: str, n: int, timeout: float = 30.0) -> list[tuple[str, Any]]:
    """The first ``n`` events of /api/events (name, parsed data), read off a raw socket."""
    parts = url.split("//", 1)[1]
    host, port = parts.split(":")[0], int(parts.split(":")[1].split("/")[0])
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"GET /api/events?last=50 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        buf = b""
        events: list[tuple[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(events) < n and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            if not events and b"\r\n\r\n" in buf:
                head, buf = buf.split(b"\r\n\r\n", 1)
                assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
                events.append(("headers", head))
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
                if b"event" in fields:
                    events.append((fields[b"event"].decode(), json.loads(fields[b"data"])))
        return events[1:]


def test_latest_and_series_match_the_record_file(live: LiveDaemon) -> None:
    status, latest = get_json(live.url + "/api/latest")
    assert status == 200 and set(latest) >= {"frame", "time", "stats"}
    wait_for(lambda: any(r["frame"] == latest["frame"] for r in live.records()), 10, "the record line")
    line = next(r for r in live.records() if r["frame"] == latest["frame"])
    assert latest["stats"] == line["stats"] and latest["time"] == pytest.approx(line["time"])
    status, series = get_json(live.url + "/api/series?stat=particle_count&last=5")
    assert status == 200 and len(series["frames"]) == 5 and series["frames"] == sorted(series["frames"])
    by_frame = {r["frame"]: r for r in live.records()}
    for frame, value in zip(series["frames"], series["values"], strict=True):
        if frame in by_frame:
            assert by_frame[frame]["stats"]["particle_count"] == value
    assert get_json(live.url + "/api/series?stat=bogus")[0] == 400
    assert get_json(live.url + "/api/series?stat=particle_count&last=-3")[0] == 400


def test_changepoints_alerts_status_overlay_and_the_daemon_endpoints(live: LiveDaemon) -> None:
    status, cps = get_json(live.url + "/api/changepoints")
    assert status == 200 and isinstance(cps, list)
    for cp in cps:
        assert set(cp) == {"frame", "detected_at", "delay", "statistics", "before", "after", "effect_size",
                           "detector", "severity"}
    status, alerts = get_json(live.url + "/api/alerts")
    assert status == 200 and [a["name"] for a in alerts["firing"]] == ["ManyWires"]  # > 1 wire per frame
    assert alerts["firing"][0]["state"] == "firing" and alerts["firing"][0]["labels"]["statistic"] == "particle_count"
    status, names = get_json(live.url + "/api/stats")
    assert status == 200 and {"particle_count", "width_px_mean", "orientation_order"} <= set(names)
    status, st = get_json(live.url + "/api/status")
    assert status == 200 and st["processed"] >= 12 and st["backend"] == "watershed" and st["fps"] > 0
    assert st["received"] >= st["processed"] and "dropped" in st
    status, body, headers = get(live.url + "/api/overlay.jpg")
    assert status == 200 and body.startswith(b"\xff\xd8") and headers["Content-Type"] == "image/jpeg" and int(headers["X-Wirewatch-Frame"]) > 0
    assert Image.open(io.BytesIO(body)).size == (256, 256)
    status, body, _ = get(live.url + "/metrics")
    assert status == 200 and b"wirewatch_frames_processed_total" in body
    assert get(live.url + "/healthz")[0] == 200 and get(live.url + "/readyz")[0] == 200
    status, body, _ = get(live.url + "/nope")
    assert status == 404 and b"/metrics" in body
    for page, marker in (("/", b"live.js"), ("/segment", b"segment.js"), ("/static/app.css", b"--bg")):
        status, body, _ = get(live.url + page)
        assert status == 200 and marker in body


def test_event_stream_pushes_frames_and_overlays_and_overlays_are_encoded_only_while_watched(
        live: LiveDaemon) -> None:
    def encoded() -> int:
        return int(get_json(live.url + "/api/status")[1]["overlays_encoded"])

    before = encoded()
    time.sleep(1.0)
    assert encoded() == before  # nobody watching: no overlay work
    events = sse_events(live.url, 12)
    names = [name for name, _ in events]
    assert names[0] == "hello" and "frame" in names and "overlay" in names, names
    hello = events[0][1]
    assert hello["records"] and set(hello) >= {"records", "changepoints", "alerts", "status"}
    frames = [data["frame"] for name, data in events if name == "frame"]
    assert frames == sorted(frames) and frames[0] > hello["records"][-1]["frame"] - 1
    overlay = next(data for name, data in events if name == "overlay")
    assert base64.b64decode(overlay["jpeg"]).startswith(b"\xff\xd8")
    watched = encoded()
    assert watched > before
    time.sleep(1.0)  # the page is gone
    settled = encoded()
    time.sleep(1.0)
    assert encoded() == settled


def test_upload_segments_an_image_while_the_stream_keeps_flowing(live: LiveDaemon) -> None:
    start = live.processed
    body, ctype = multipart({"image": ("rods.png", png_bytes(rods_image()), "image/png")})
    status, out = post(live.url + "/api/segment", body, ctype)
    assert status == 200, out
    assert out["frame"]["particle_count"] == 3 and len(out["particles"]) == 3
    assert set(PARTICLE_COLUMNS) - {"mask_index"} <= set(out["particles"][0])
    assert sorted(p["length_px"] for p in out["particles"]) == pytest.approx([40, 70, 80], abs=1.5)
    assert sorted(p["width_px"] for p in out["particles"]) == pytest.approx([6, 6, 6], abs=0.5)
    assert Image.open(io.BytesIO(base64.b64decode(out["overlay_png"]))).size == (128, 128)
    assert base64.b64decode(out["histograms_png"]).startswith(b"\x89PNG")
    import tifffile

    tif = io.BytesIO()
    tifffile.imwrite(tif, rods_image().astype(np.float32) / 255.0)
    body, ctype = multipart({"image": ("rods.tif", tif.getvalue(), "image/tiff")})
    status, out = post(live.url + "/api/segment?histograms=0", body, ctype)
    assert status == 200 and out["frame"]["particle_count"] == 3
    wait_for(lambda: live.processed > start + 5, 30, "frames processed after the uploads")


def test_bad_uploads_get_413_and_400_and_the_daemon_keeps_processing(live: LiveDaemon) -> None:
    host, port = live.server.host, live.server.port
    # 413 before the body is read: the answer arrives though not one byte of the body was sent.
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.putrequest("POST", "/api/segment")
    conn.putheader("Content-Type", "multipart/form-data; boundary=b")
    conn.putheader("Content-Length", str(LIMIT + 1))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and "exceeds the limit" in json.loads(resp.read())["error"]
    conn.close()
    # 413 while counting a chunked upload that has no length
    conn = http.client.HTTPConnection(host, port, timeout=10)
    part = b'--b\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n\r\n'
    chunks = itertools.chain([part], (b"x" * 65536 for _ in range(LIMIT // 65536 + 10)))
    try:
        conn.request("POST", "/api/segment", body=chunks, encode_chunked=True,
                     headers={"Content-Type": "multipart/form-data; boundary=b", "Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        assert resp.status == 413
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may close before the client finished sending: also a refusal
    conn.close()
    start = live.processed
    bomb = io.BytesIO()
    Image.new("L", (3000, 3000)).save(bomb, format="PNG")  # 9 Mpx, a few kB on the wire
    good = png_bytes(rods_image())
    cases: list[tuple[dict[str, tuple[str, bytes, str]], str]] = [
        ({"image": ("notes.txt", b"hello, not an image", "text/plain")}, "not a PNG, TIFF or JPEG"),
        ({"image": ("cut.png", good[: len(good) // 2], "image/png")}, "cannot decode"),
        ({"image": ("bomb.png", bomb.getvalue(), "image/png")}, "decompression bomb"),
        ({"picture": ("rods.png", good, "image/png")}, "unexpected form field 'picture'"),
    ]
    for fields, words in cases:
        body, ctype = multipart(fields)
        status, out = post(live.url + "/api/segment", body, ctype)
        assert status == 400 and words in out["error"], out
    status, out = post(live.url + "/api/segment", b"{}", "application/json")
    assert status == 400 and "multipart/form-data" in out["error"]
    wait_for(lambda: live.processed > start + 5, 30, "frames processed after the bad uploads")
    assert get(live.url + "/healthz")[0] == 200


def test_a_stuck_browser_does_not_stop_the_stream_or_other_pages(live: LiveDaemon) -> None:
    stuck = socket.create_connection((live.server.host, live.server.port), timeout=10)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # and never read
    try:
        start = live.processed
        events = sse_events(live.url, 6)
        assert [n for n, _ in events].count("frame") >= 2
        wait_for(lambda: live.processed > start + 10, 30, "frames processed with a stuck page open")
    finally:
        stuck.close()


def test_a_page_that_stops_reading_is_dropped_and_the_stream_goes_on(tmp_path: Path) -> None:
    web = WebConfig(client_queue=4, push_interval_s=0.0, overlay_interval_s=0.1, write_timeout_s=1.0)
    live = start_live(tmp_path, rate=10.0, web=web)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        wait_for(lambda: live.processed >= 2, 60, "2 frames")
        stuck.connect((live.server.host, live.server.port))
        stuck.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # and never read again
        wait_for(lambda: get_json(live.url + "/api/status")[1]["slow_clients_dropped"] >= 1, 60,
                 "the stuck page to be dropped")
        start = live.processed
        wait_for(lambda: live.processed > start + 5, 30, "frames processed after the drop")
        wait_for(lambda: get_json(live.url + "/api/status")[1]["clients"] == 0, 10, "its connection to close")
    finally:
        stuck.close()
        stop_live(live)


def test_bearer_token_covers_api_and_pages_and_a_login_session_lets_a_browser_in(tmp_path: Path) -> None:
    """Every route needs the token; a browser logs in once with a POST form (the token never in a URL) and
    gets a random session value, not the token, in an ``HttpOnly; SameSite=Strict`` cookie. ``/?token=``
    (the hand-written server's login, which put the token in URLs, proxy logs and browser history) is
    refused now."""
    live = start_live(tmp_path, rate=5.0, token="s3cret")
    try:
        wait_for(lambda: live.processed >= 2, 60, "2 frames")
        for path in ("/metrics", "/api/latest", "/", "/api/events", "/?token=s3cret"):
            assert get(live.url + path)[0] == 401
        assert get(live.url + "/api/latest", token="s3cret")[0] == 200
        assert get(live.url + "/metrics", token="s3cret")[0] == 200
        conn = http.client.HTTPConnection(live.server.host, live.server.port, timeout=10)
        conn.request("GET", "/login")
        resp = conn.getresponse()
        assert resp.status == 200 and b'method="post"' in resp.read()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        conn.request("POST", "/login", body="token=wrong", headers=form)
        resp = conn.getresponse()
        assert resp.status == 401 and resp.getheader("Set-Cookie") is None
        resp.read()
        conn.request("POST", "/login", body="token=s3cret", headers=form)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 303 and resp.getheader("Location") == "/"
        cookie = resp.getheader("Set-Cookie") or ""
        attributes = [a.strip() for a in cookie.split(";")]
        name, value = attributes[0].split("=", 1)
        assert name == "wirewatch_session" and len(value) >= 40 and "s3cret" not in cookie
        assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(attributes) and "Secure" not in attributes
        conn.request("GET", "/api/latest", headers={"Cookie": attributes[0]})
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["frame"] >= 1
        conn.request("GET", "/api/latest", headers={"Cookie": "wirewatch_session=s3cret"})  # not the token
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 401
        # a cross-site login form (login CSRF) is refused like every other state-changing request
        conn.request("POST", "/login", body="token=s3cret", headers={**form, "Origin": "http://evil.example"})
        resp = conn.getresponse()
        assert resp.status == 403 and resp.getheader("Set-Cookie") is None
        conn.close()
    finally:
        stop_live(live)


def test_wirewatch_serve_stand_alone_segments_uploads(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "wirewatch", "serve", "--port", "0", "--backend", "watershed"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "web view on http://127.0.0.1:" in line, line
        url = line.split(" on ", 1)[1].split("/segment", 1)[0]
        assert get(url + "/healthz")[0] == 200
        assert get(url + "/api/latest")[0] == 404  # no stream
        body, ctype = multipart({"image": ("rods.png", png_bytes(rods_image()), "image/png")})
        status, out = post(url + "/api/segment?histograms=0", body, ctype)
        assert status == 200 and out["frame"]["particle_count"] == 3 and out["backend"] == "watershed"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    from typer.testing import CliRunner

    from wirewatch.cli.app import app
    from wirewatch.errors import InputError

    for args, words in ((["--backend", "magic"], "--backend 'magic'"), (["--max-upload-mb", "0"], "positive")):
        result = CliRunner().invoke(app, ["serve", *args])
        assert isinstance(result.exception, InputError) and words in str(result.exception)


def test_the_daemon_serves_the_web_view_on_its_metrics_port(tmp_path: Path) -> None:
    from tests.system.web_support import daemon_config
    from wirewatch.daemon.service import Daemon
    from wirewatch.simulate.producer import Simulator
    from wirewatch.simulate.scenario import resolve_scenario

    sim = Simulator(resolve_scenario("demo"), endpoint="tcp://127.0.0.1:*", format="array-1.0", rate=10.0,
                    frames=100_000)
    endpoint = sim.open()
    daemon = Daemon(daemon_config(endpoint, tmp_path / "record.jsonl", http={"port": 0})).start()
    import threading

    thread = threading.Thread(target=sim.run, daemon=True)
    thread.start()
    try:
        url = daemon.http.url
        wait_for(lambda: daemon.pipeline.processed >= 3, 60, "3 frames")
        assert get(url + "/metrics")[0] == 200 and get(url + "/healthz")[0] == 200
        status, page, _ = get(url + "/")
        assert status == 200 and b"live.js" in page
        wait_for(lambda: get_json(url + "/api/latest")[0] == 200, 10, "/api/latest")
        assert get_json(url + "/api/status")[1]["backend"] == "watershed"
    finally:
        sim.stop()
        thread.join(timeout=10)
        daemon.stop()
        daemon.close()
        sim.close()
