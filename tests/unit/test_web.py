"""Web view parts without sockets: push hub, live state, upload parsing and decoding, overlay cache, app routes."""

from __future__ import annotations

import base64
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from PIL import Image

from wirewatch.segment import load_segmenter
from wirewatch.stats import PARTICLE_COLUMNS
from wirewatch.types import Alert, ChangePoint, Detections, Frame, FrameStats
from wirewatch.web import LiveState, PushHub, WebApp, WebConfig
from wirewatch.web.app import EventStream, Request, Response
from wirewatch.web.hub import encode_event
from wirewatch.web.overlay import OverlayCache
from wirewatch.web.upload import HttpError, decode_image, parse_multipart, read_body, sniff_format


@dataclass(frozen=True)
class FakeResult:
    frame: Frame
    stats: FrameStats
    image: np.ndarray
    detections: Detections
    changepoints: tuple[ChangePoint, ...] = ()
    alerts: tuple[Alert, ...] = ()
    latency_s: float = 0.01
    extra: dict[str, Any] = field(default_factory=dict)


def result(i: int, *, count: float | None = None, cps: tuple[ChangePoint, ...] = (),
           alerts: tuple[Alert, ...] = ()) -> FakeResult:
    image = np.zeros((32, 32), np.float32)
    masks = np.zeros((1, 32, 32), bool)
    masks[0, 4:8, 2:30] = True
    image[masks[0]] = 0.9
    det = Detections(boxes=np.array([[2, 4, 30, 8]], np.float32), scores=np.ones(1, np.float32), masks=masks,
                     image_shape=(32, 32))
    stats = FrameStats(frame_id=i, time=1000.0 + i,
                       aggregates={"particle_count": float(i if count is None else count), "width_px_mean": np.nan})
    return FakeResult(frame=Frame(frame_id=i, image=image, time=1000.0 + i), stats=stats, image=image,
                      detections=det, changepoints=cps, alerts=alerts)


def alert(state: str, frame: int) -> Alert:
    return Alert(name="TooFew", state=state, labels={"statistic": "particle_count"},  # type: ignore[arg-type]
                 annotations={"summary": "few"}, starts_at=1000.0, ends_at=None if state == "firing" else 1001.0,
                 frame=frame)


# -- push hub ------------------------------------------------------------------------------------------------

def test_hub_drops_a_client_whose_queue_is_full_without_blocking_and_keeps_the_others() -> None:
    hub = PushHub(queue_size=3, max_clients=2)
    stuck, reader = hub.subscribe(), hub.subscribe()
    assert stuck is not None and reader is not None
    assert hub.subscribe() is None  # max_clients
    assert hub.watching.is_set()
    for i in range(10):
        hub.publish(encode_event("frame", {"i": i}))
        assert reader.next(timeout=0) is not None  # the reader keeps up
    assert stuck.closed.is_set() and hub.dropped_clients == 1 and hub.client_count == 1
    assert stuck.queue.qsize() == 3  # it got what fit, nothing more
    hub.unsubscribe(reader)
    assert not hub.watching.is_set()


def test_event_wire_format_is_sse() -> None:
    ev = encode_event("frame", {"frame": 3, "x": None})
    assert ev.wire() == b'event: frame\ndata: {"frame":3,"x":null}\n\n'
    with pytest.raises(ValueError):
        encode_event("frame", {"x": float("nan")})  # NaN must have become null before


# -- live state ----------------------------------------------------------------------------------------------

def test_live_state_records_series_changepoints_alerts_and_pushes_only_while_watched() -> None:
    hub = PushHub(queue_size=100)
    state = LiveState(history=5, hub=hub, counters=lambda: {"dropped": 2})
    state.observe(result(1))
    assert state.latest() == {"frame": 1, "time": 1001.0, "series": None, "latency_s": 0.01,
                              "stats": {"particle_count": 1.0, "width_px_mean": None}}
    client = hub.subscribe()
    assert client is not None
    cp = ChangePoint(frame=4, detected_at=6, statistics=("particle_count",), before={"particle_count": 1.0},
                     after={"particle_count": 9.0}, effect_size=3.0, detector="cusum")
    for i in range(2, 9):
        state.observe(result(i, cps=(cp,) if i == 6 else (), alerts=(alert("firing", 7),) if i == 7 else ()))
    assert [r["frame"] for r in state.records()] == [4, 5, 6, 7, 8]  # bounded history
    assert state.series("particle_count", 3) == {"stat": "particle_count", "frames": [6, 7, 8],
                                                  "times": [1006.0, 1007.0, 1008.0], "values": [6.0, 7.0, 8.0]}
    assert state.changepoints()[0]["frame"] == 4 and state.changepoints()[0]["delay"] == 2
    assert [a["name"] for a in state.alerts()["firing"]] == ["TooFew"]
    names = []
    while (ev := client.next(timeout=0)) is not None:
        names.append(ev.name)
    assert names.count("frame") == 7 and names.count("changepoint") == 1 and names.count("alert") == 1
    state.observe(result(9, alerts=(alert("resolved", 9),)))
    assert state.alerts()["firing"] == [] and len(state.alerts()["recent"]) == 2
    status = state.status()
    assert status["dropped"] == 2.0 and status["frames_observed"] == 9 and status["last_frame"] == 9


# -- uploads -------------------------------------------------------------------------------------------------

def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


class CountingReader(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, n: int | None = -1) -> bytes:
        out = super().read(n)
        self.bytes_read += len(out)
        return out


def test_read_body_refuses_a_declared_oversize_before_reading_and_counts_chunked_bytes() -> None:
    body = CountingReader(b"x" * 1000)
    with pytest.raises(HttpError) as err:
        read_body(body, {"Content-Length": "1000"}, limit=100)
    assert err.value.status == 413 and body.bytes_read == 0
    chunked = CountingReader(b"".join(b"%x\r\n%s\r\n" % (40, b"y" * 40) for _ in range(10)) + b"0\r\n\r\n")
    with pytest.raises(HttpError) as err:
        read_body(chunked, {"Transfer-Encoding": "chunked"}, limit=100)
    assert err.value.status == 413 and chunked.bytes_read <= 120
    ok = CountingReader(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert read_body(ok, {"Transfer-Encoding": "chunked"}, limit=100) == b"hello world"
    assert read_body(io.BytesIO(b"abc"), {"Content-Length": "3"}, limit=3) == b"abc"
    for headers, status in (({}, 411), ({"Content-Length": "x"}, 400), ({"Content-Length": "10"}, 400)):
        with pytest.raises(HttpError) as err:
            read_body(io.BytesIO(b"abc"), headers, limit=100)
        assert err.value.status == status


def test_parse_multipart_finds_the_image_field_and_names_bad_bodies() -> None:
    data = png(np.zeros((4, 4), np.uint8))
    boundary = "XyZ"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    # an unknown field is refused as soon as its headers are parsed (issue 39: per-part limits while streaming)
    with pytest.raises(HttpError, match="unexpected form field 'note'") as err:
        parse_multipart(body, f"multipart/form-data; boundary={boundary}")
    assert err.value.status == 400
    body = body[body.index(f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"".encode()):]
    fields = parse_multipart(body, f"multipart/form-data; boundary={boundary}")
    assert list(fields) == ["image"] and fields["image"].data == data and fields["image"].filename == "a.png"
    with pytest.raises(HttpError, match="'image' exceeds the limit of 10 bytes") as err:
        parse_multipart(body, f"multipart/form-data; boundary={boundary}", max_part_bytes=10)
    assert err.value.status == 413
    for ctype in (None, "application/json", "multipart/form-data"):
        with pytest.raises(HttpError) as err:
            parse_multipart(body, ctype)
        assert err.value.status == 400


def test_decode_image_formats_and_refusals() -> None:
    grey = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    assert np.allclose(decode_image(png(grey), max_pixels=100), grey / 255.0)
    buf = io.BytesIO()
    Image.fromarray(np.dstack([grey] * 3)).save(buf, format="JPEG", quality=95)
    assert decode_image(buf.getvalue(), max_pixels=100).shape == (8, 8)
    import tifffile

    tif = io.BytesIO()
    tifffile.imwrite(tif, np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8))
    assert sniff_format(tif.getvalue()) == "tiff"
    assert decode_image(tif.getvalue(), max_pixels=100).max() == pytest.approx(1.0)
    cases = {b"GIF89a...": "not a PNG, TIFF or JPEG", b"%PDF-1.4": "not a PNG, TIFF or JPEG",
             png(grey)[:40]: "cannot decode", png(np.zeros((20, 20), np.uint8)): "decompression bomb",
             tif.getvalue()[:60]: "cannot decode"}
    for data, words in cases.items():
        with pytest.raises(HttpError) as err:
            decode_image(data, max_pixels=100, name="x")
        assert err.value.status == 400 and words in str(err.value), str(err.value)


def test_pillow_bomb_limit_is_enforced_from_the_header() -> None:
    big = io.BytesIO()
    Image.new("L", (6000, 6000)).save(big, format="PNG")  # compresses to a few kB, 36 Mpx when decoded
    assert len(big.getvalue()) < 100_000
    with pytest.raises(HttpError) as err:
        decode_image(big.getvalue(), max_pixels=1_000_000)
    assert err.value.status == 400 and "6000 x 6000" in str(err.value)


# -- overlay cache -------------------------------------------------------------------------------------------

def test_overlay_cache_renders_only_new_frames_and_at_most_once_per_interval() -> None:
    state = LiveState()
    cache = OverlayCache(state, min_interval_s=0.3, max_side=16)
    assert cache.get() == (None, None) and cache.encoded == 0
    state.observe(result(1))
    frame, data = cache.get()
    assert frame == 1 and data is not None and cache.encoded == 1
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG" and img.size == (16, 16)  # 32 px subsampled to max_side
    assert cache.get()[0] == 1 and cache.encoded == 1  # same frame: cached
    state.observe(result(2))
    assert cache.get()[0] == 1 and cache.encoded == 1  # too soon: the cached one
    time.sleep(0.35)
    assert cache.get()[0] == 2 and cache.encoded == 2


def test_push_work_is_done_once_per_frame_for_any_number_of_pages_and_not_at_all_without() -> None:
    """Nobody watching: no event is encoded and no overlay rendered. Three pages watching: each frame's event
    is encoded once and the very same bytes go to every page; overlays are rendered at most once per
    ``overlay_interval_s`` (latest frame wins), also shared; a page joining gets the current overlay at once."""
    app = WebApp(config=WebConfig(overlay_interval_s=0.25, push_interval_s=0.0, client_queue=200))
    state = app.state
    try:
        for i in range(10):
            state.observe(result(i))
        time.sleep(0.6)  # the pusher would have run by now
        assert app.hub.published == 0 and app.overlays.encoded == 0
        pages = [app.hub.subscribe() for _ in range(3)]
        assert all(p is not None for p in pages)
        t0 = time.monotonic()
        for i in range(10, 40):  # 30 frames at ~20 frames/s
            state.observe(result(i))
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        time.sleep(0.4)  # the last overlay
        got = [[ev for ev in p.drain()] for p in pages if p is not None]
        frames = [[ev for ev in g if ev.name == "frame"] for g in got]
        assert [len(f) for f in frames] == [30, 30, 30]
        assert all(a is b is c for a, b, c in zip(*frames, strict=True))  # one encoding, shared
        overlays = [[ev for ev in g if ev.name == "overlay"] for g in got]
        assert all(a is b is c for a, b, c in zip(*overlays, strict=True))
        rendered = app.overlays.encoded
        assert 2 <= rendered <= elapsed / 0.25 + 2, (rendered, elapsed)  # rate-limited, not 30
        assert len(overlays[0]) == rendered
        assert json.loads(overlays[0][-1].data)["frame"] == 39  # the latest frame won
        events = app.handle(Request("GET", "/api/events", "", {}, io.BytesIO()))
        assert isinstance(events, EventStream)
        first = events.client.drain()  # queued for the newcomer alone, after its hello
        assert [ev.name for ev in first] == ["overlay"] and json.loads(first[0].data)["frame"] == 39
        assert app.overlays.encoded == rendered  # the cached overlay, not rendered again
        assert all(p is not None and p.drain() == [] for p in pages)
    finally:
        app.close()


# -- app routes (no sockets) ---------------------------------------------------------------------------------

def call(app: WebApp, path: str, query: str = "", method: str = "GET", headers: dict[str, str] | None = None,
         body: bytes = b"") -> Any:
    return app.handle(Request(method, path, query, headers or {}, io.BytesIO(body)))


def test_app_routes_answer_json_and_name_bad_parameters() -> None:
    state = LiveState()
    app = WebApp(state, segmenter=load_segmenter("watershed"), backend="watershed")
    try:
        r = call(app, "/api/latest")
        assert isinstance(r, Response) and r.status == 404
        for i in range(1, 4):
            state.observe(result(i))
        r = call(app, "/api/latest")
        assert r.status == 200 and json.loads(r.body)["frame"] == 3
        assert json.loads(call(app, "/api/series", "stat=particle_count&last=2").body)["values"] == [2.0, 3.0]
        for query, words in (("", "give the statistic"), ("stat=nope", "unknown statistic 'nope'"),
                             ("stat=particle_count&last=0", "at least 1"), ("stat=particle_count&last=x", "integer")):
            r = call(app, "/api/series", query)
            assert r.status == 400 and words in json.loads(r.body)["error"]
        assert json.loads(call(app, "/api/changepoints").body) == []
        assert json.loads(call(app, "/api/alerts").body) == {"firing": [], "recent": []}
        assert call(app, "/api/nothing") is None and call(app, "/static/../app.py") is None
        page = call(app, "/")
        assert page.status == 200 and b"/static/live.js" in page.body and b"{{title}}" not in page.body
        assert call(app, "/static/live.js").content_type.startswith("text/javascript")
        stream = call(app, "/api/events")
        assert isinstance(stream, EventStream) and stream.hello.startswith(b"event: hello\n")
        assert json.loads(stream.hello.split(b"data: ", 1)[1])["records"][-1]["frame"] == 3
        assert app.hub.client_count == 1
    finally:
        app.close()


def test_app_upload_segments_and_answers_particles_frame_and_overlay() -> None:
    app = WebApp(segmenter=load_segmenter("watershed"), config=WebConfig(max_upload_bytes=50_000))
    img = np.zeros((64, 64), np.uint8)
    img[10:15, 5:55] = 230
    img[30:60, 40:45] = 200
    data = png(img)
    body = (b'--b\r\nContent-Disposition: form-data; name="image"; filename="r.png"\r\n\r\n' + data +
            b"\r\n--b--\r\n")
    headers = {"Content-Type": "multipart/form-data; boundary=b", "Content-Length": str(len(body))}
    try:
        r = call(app, "/api/segment", "histograms=0", "POST", headers, body)
        assert r.status == 200, r.body
        out = json.loads(r.body)
        assert out["frame"]["particle_count"] == 2 and len(out["particles"]) == 2
        assert set(PARTICLE_COLUMNS) - {"mask_index"} <= set(out["particles"][0])
        assert all(p["mask_score"] == p["score"] for p in out["particles"])  # watershed: no mask scores of its own
        assert sorted(p["length_px"] for p in out["particles"]) == pytest.approx([30, 50], abs=1.5)
        assert Image.open(io.BytesIO(base64.b64decode(out["overlay_png"]))).size == (64, 64)
        assert "histograms_png" not in out
        big = {**headers, "Content-Length": "60000"}
        assert call(app, "/api/segment", "", "POST", big, body).status == 413
        r = call(app, "/api/segment", "", "POST", {**headers, "Content-Type": "text/plain"}, body)
        assert r.status == 400
    finally:
        app.close()


def test_bench_result_shares_from_phases() -> None:
    from wirewatch.bench.web import Phase, WebBenchResult

    r = WebBenchResult(rate=10, browsers=3, backend="watershed", watcher="sse", phases=[
        Phase(watchers=0, seconds=10, cpu_s=2.0, frames=100, overlays=0, web_cpu_s=0.01),
        Phase(watchers=3, seconds=10, cpu_s=2.2, frames=100, overlays=10, web_cpu_s=0.08),
    ])
    assert r.web_share == pytest.approx(0.04)  # 0.8 ms of web per frame / 20 ms of daemon per frame
    assert r.extra_cpu_per_frame == pytest.approx(0.10) and r.extra_cpu_per_s == pytest.approx(0.10)
    assert r.as_dict()["phases"][1]["web_cpu_s"] == 0.08
    app = WebApp()
    try:
        head = call(app, "/api/events", method="HEAD")
        assert isinstance(head, Response) and head.status == 200 and app.hub.client_count == 0
    finally:
        app.close()


def test_live_overlay_colours_masks_by_track_so_a_wire_keeps_its_colour() -> None:
    import cv2

    from wirewatch.web.overlay import live_overlay_jpeg, mask_track_ids

    masks = np.zeros((2, 64, 64), bool)
    masks[0, 5:15, 5:60] = True
    masks[1, 40:50, 5:60] = True
    image = np.full((64, 64), 0.2, np.float32)

    def colour(jpeg: bytes, row: int) -> np.ndarray:
        bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        return bgr[row, 30].astype(int)

    # the same track (7) drawn as mask 0 in one frame and as mask 1 in the next: the same colour
    first = live_overlay_jpeg(image, masks, track_ids=np.array([7, 3]))
    second = live_overlay_jpeg(image, masks, track_ids=np.array([3, 7]))
    assert np.abs(colour(first, 10) - colour(second, 45)).max() <= 6
    assert np.abs(colour(first, 10) - colour(first, 45)).max() > 30  # different tracks, different colours
    # the ids come from the particle rows through mask_index; none without tracking
    det = Detections(np.zeros((2, 4), np.float32), np.ones(2, np.float32), masks, (64, 64))
    stats = FrameStats(0, 0.0, {}, {"mask_index": np.array([1, 0]), "track_id": np.array([11, 12])})
    tracked = type("R", (), {"stats": stats, "detections": det})()
    assert mask_track_ids(tracked).tolist() == [12, 11]  # type: ignore[arg-type, union-attr]
    untracked = type("R", (), {"stats": FrameStats(0, 0.0, {}, {}), "detections": det})()
    assert mask_track_ids(untracked) is None  # type: ignore[arg-type]
