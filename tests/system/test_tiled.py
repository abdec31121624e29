"""The Tiled catalog sink against a real local Tiled server (``tiled serve catalog --temp``), read back with
Tiled's own client; and a server that is down never stalls the pipeline."""

from __future__ import annotations

import collections
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("tiled.client")

from tests.system.alert_receiver import free_port
from wirewatch.daemon.service import Daemon
from wirewatch.daemon.stages import FrameResult
from wirewatch.publish.tiled import TiledConfig, TiledSink
from wirewatch.simulate.producer import Simulator
from wirewatch.simulate.scenario import resolve_scenario
from wirewatch.stats import measure
from wirewatch.types import Detections, Frame

from .helpers import Server, daemon_config, rods, start_server, stop_server, wait_for

API_KEY = "testsecretkey42"
TILED = shutil.which("tiled", path=str(Path(sys.executable).parent)) or shutil.which("tiled")
FRAMES = 40


@pytest.fixture(scope="module")
def tiled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if TILED is None:
        pytest.skip("the tiled server is not installed (pip install 'tiled[server]')")
    work = tmp_path_factory.mktemp("tiled")
    port = free_port()
    server = start_server([TILED, "serve", "catalog", "--temp", "--api-key", API_KEY, "--host", "127.0.0.1",
                           "--port", str(port)], f"http://127.0.0.1:{port}", "/healthz", work / "tiled.log",
                          timeout=90)
    yield server
    stop_server(server)


def test_a_run_becomes_a_container_with_frames_particles_and_changepoints(tmp_path: Path,
                                                                          tiled_server: Server) -> None:
    from tiled.client import from_uri

    sim = Simulator(resolve_scenario("demo"), endpoint="tcp://127.0.0.1:*", format="stream2", rate=0,
                    frames=FRAMES)
    endpoint = sim.open()
    config = daemon_config(endpoint, "stream2", ingest={"policy": "queue"}, http={"enabled": False},
                           record={"path": str(tmp_path / "record.jsonl")},
                           changepoint={"warmup": 5},
                           publish={"tiled": {"uri": tiled_server.url, "api_key": API_KEY, "container": "run-1",
                                              "batch_frames": 8, "close_timeout_s": 90}})
    daemon = Daemon(config).start()
    thread = threading.Thread(target=sim.run, daemon=True)
    thread.start()
    try:
        thread.join(timeout=60)
        wait_for(lambda: daemon.pipeline.processed >= FRAMES, timeout=60, what="frames processed")
        daemon.pipeline.request_stop()
        assert daemon.wait(timeout=60)
    finally:
        sim.stop()
        daemon.close()
        sim.close()
    sink = next(s for s in daemon.pipeline.sinks if isinstance(s, TiledSink))
    assert sink.frames_sent == FRAMES and sink.frames_dropped == 0 and sink.batches_sent == FRAMES // 8

    client = from_uri(tiled_server.url, api_key=API_KEY, remember_me=False)
    run = client["run-1"]
    assert {"frames", "particles"} <= set(run)
    assert run.metadata["backend"] == "watershed" and len(run.metadata["config_sha256"]) == 64
    frames = run["frames"].read()
    particles = run["particles"].read()
    assert list(frames["frame"]) == list(range(FRAMES))
    counts = collections.Counter(particles["frame"])
    assert [counts.get(f, 0) for f in range(FRAMES)] == [int(c) for c in frames["particle_count"]]
    assert particles["area_px"].sum() > 0 and "orientation_deg" in particles.columns
    if "changepoints" in run:  # whatever the detector found live is there too
        assert set(run["changepoints"].read().columns) >= {"frame", "detected_at", "statistics"}


def _result(i: int) -> FrameResult:
    img = rods(i)
    masks = np.stack([img > 190, (img > 170) & (img < 190)])
    det = Detections(boxes=np.zeros((2, 4), np.float32), scores=np.ones(2, np.float32), masks=masks,
                     image_shape=img.shape)
    stats = measure(det, img / 255.0, frame_id=i, time=1.7e9 + i)
    frame = Frame(frame_id=i, image=img, time=1.7e9 + i, received_at=time.time())
    return FrameResult(frame=frame, stats=stats, changepoints=(), image=img / 255.0, detections=det, timings={},
                       published_at=time.time())


def test_a_server_that_is_down_never_stalls_the_publish_thread() -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    sink = TiledSink(TiledConfig(uri=dead, api_key="k", batch_frames=2, queue_batches=2, retries=2, timeout_s=1,
                                 close_timeout_s=2))
    results = [_result(i) for i in range(200)]
    t0 = time.perf_counter()
    for r in results:
        sink.observe(r)
    spent = time.perf_counter() - t0
    t1 = time.perf_counter()
    sink.close()
    closing = time.perf_counter() - t1
    assert spent < 2.0, f"observe took {spent:.2f} s for 200 frames"  # rows only: no network on this thread
    assert closing < 4.0
    assert sink.frames_sent == 0 and sink.frames_dropped >= 190  # the bounded queue dropped, counted


def test_changepoints_and_later_batches_with_fewer_statistics_are_appended(tmp_path: Path,
                                                                           tiled_server: Server) -> None:
    import dataclasses

    from tiled.client import from_uri

    from wirewatch.types import ChangePoint

    key_file = tmp_path / "tiled.key"
    key_file.write_text(API_KEY + "\n")
    sink = TiledSink(TiledConfig(uri=tiled_server.url, api_key_file=key_file, container="run-2", batch_frames=5,
                                 close_timeout_s=90))
    cp = ChangePoint(frame=4, detected_at=7, statistics=("length_px_mean", "particle_count"),
                     before={"length_px_mean": 10.0}, after={"length_px_mean": 20.0}, effect_size=3.5,
                     detector="cusum", severity="critical")
    for i in range(12):
        r = _result(i)
        if i == 7:
            r = dataclasses.replace(r, changepoints=(cp,))
        if i >= 5:  # the second and third batch lack a statistic the first had: sent as null
            stats = dataclasses.replace(r.stats, aggregates={k: v for k, v in r.stats.aggregates.items()
                                                              if k != "od_mean_mean"})
            r = dataclasses.replace(r, stats=stats)
        sink.observe(r)
    sink.close()
    assert sink.frames_sent == 12 and sink.batches_sent == 3 and sink.frames_dropped == 0
    run = from_uri(tiled_server.url, api_key=API_KEY, remember_me=False)["run-2"]
    frames = run["frames"].read()
    assert list(frames["frame"]) == list(range(12))
    assert frames["od_mean_mean"][:5].notna().all() and frames["od_mean_mean"][5:].isna().all()
    assert len(run["particles"].read()) == sum(int(c) for c in frames["particle_count"])
    cps = run["changepoints"].read()
    assert list(cps["frame"]) == [4] and list(cps["detected_at"]) == [7] and list(cps["delay"]) == [3]
    assert cps["statistics"][0] == "length_px_mean,particle_count" and cps["severity"][0] == "critical"
    assert cps["effect_size"][0] == pytest.approx(3.5)
