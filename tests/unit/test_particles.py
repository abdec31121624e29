"""Particle tables: schema, rolling, atomic parts (SIGKILL loses at most the open part), RLE masks, the
missing-extra error, and the disk cost figure of docs/products.md."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from wirewatch.errors import ConfigError

pa = pytest.importorskip("pyarrow")

from wirewatch.daemon.stages import FrameResult  # noqa: E402
from wirewatch.publish.particles import (  # noqa: E402
    SCHEMA_VERSION,
    ParticleWriter,
    read_frames,
    read_particles,
)
from wirewatch.stats import measure  # noqa: E402
from wirewatch.types import Detections, Frame  # noqa: E402


def result(i: int, n: int = 3, size: int = 64) -> FrameResult:
    """Frame ``i`` with ``n`` horizontal bars (n = 0 gives an empty frame)."""
    masks = np.zeros((n, size, size), bool)
    for k in range(n):
        masks[k, 4 + 6 * k:7 + 6 * k, 5:20 + k] = True
    det = Detections(boxes=np.zeros((n, 4), np.float32), scores=np.linspace(0.9, 0.5, n).astype(np.float32),
                     masks=masks, image_shape=(size, size))
    stats = measure(det, frame_id=i, time=1.7e9 + i)
    frame = Frame(frame_id=i, image=np.zeros((size, size), np.uint8), time=1.7e9 + i, series_id="s1")
    return FrameResult(frame=frame, stats=stats, changepoints=(), image=np.zeros((size, size)), detections=det,
                       timings={})


def test_rows_per_frame_roll_and_read_back(tmp_path: Path) -> None:
    w = ParticleWriter(tmp_path, roll_frames=4, masks="rle")
    counts = [3, 0, 2, 5, 1, 3, 4]
    for i, n in enumerate(counts):
        w.add(result(i, n))
    assert w.parts_written == 1 and w.pending_frames == 3
    w.close()
    assert sorted(p.name for p in (tmp_path / "particles").iterdir()) == ["part-000000.parquet", "part-000001.parquet"]
    t = read_particles(tmp_path)
    assert t.num_rows == sum(counts)
    assert t.schema.metadata[b"wirewatch.particles.version"] == SCHEMA_VERSION.encode()
    frames = t.column("frame").to_pylist()
    assert [frames.count(i) for i in range(len(counts))] == counts
    assert read_frames(tmp_path).column("particle_count").to_pylist() == [float(c) for c in counts]
    rows = t.to_pylist()
    assert rows[0]["score"] == pytest.approx(0.9) and rows[0]["series"] == "s1" and rows[0]["particle"] == 0
    from wirewatch.coco import decode_mask

    m = decode_mask({"size": [64, 64], "counts": rows[1]["mask_rle"]}, 64, 64)
    assert int(m.sum()) == rows[1]["area_px"] == 3 * 16


def test_restart_continues_the_numbering_and_removes_a_killed_runs_open_part(tmp_path: Path) -> None:
    w = ParticleWriter(tmp_path, roll_frames=2)
    for i in range(2):
        w.add(result(i))
    w.close()
    (tmp_path / "particles" / ".part-000001.parquet.x.tmp").write_bytes(b"half a file")
    w2 = ParticleWriter(tmp_path, roll_frames=2)
    assert not list((tmp_path / "particles").glob(".*.tmp")) and w2.next_part == 1
    w2.add(result(5))
    w2.close()
    assert read_particles(tmp_path).column("frame").to_pylist() == [0, 0, 0, 1, 1, 1, 5, 5, 5]


def test_sigkill_loses_at_most_the_open_part(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.unit.test_particles import result
        from wirewatch.publish.particles import ParticleWriter
        w = ParticleWriter({str(tmp_path)!r}, roll_frames=3)
        i = 0
        while True:
            w.add(result(i)); i += 1
            if i % 3 == 0:
                print(i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(5):
        proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    parts = sorted((tmp_path / "particles").glob("part-*.parquet"))
    assert len(parts) >= 5
    t = read_particles(tmp_path)  # every closed part reads back whole
    frames = t.column("frame").to_pylist()
    assert frames == [i for i in range(len(parts) * 3) for _ in range(3)]


def test_without_pyarrow_the_option_is_refused_naming_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ConfigError, match=r"wirewatch\[particles\]"):
        ParticleWriter(tmp_path)


def test_disk_cost_per_1000_frames_at_100_particles(tmp_path: Path) -> None:
    """The figure docs/products.md states (no masks): well under 10 MB per 1000 frames."""
    rng = np.random.default_rng(0)
    w = ParticleWriter(tmp_path, roll_frames=500)
    base = result(0, 1)
    cols = {k: v for k, v in base.stats.particles.items()}
    t0 = time.perf_counter()
    for i in range(1000):
        parts = {k: np.resize(np.asarray(v), 100) for k, v in cols.items()}
        for k in ("area_px", "length_px", "width_px", "aspect_ratio", "orientation_deg", "centroid_x"):
            parts[k] = rng.uniform(1, 100, 100) if k != "area_px" else rng.integers(20, 900, 100)
        stats = type(base.stats)(frame_id=i, time=1.7e9 + i, aggregates=base.stats.aggregates, particles=parts)
        det = Detections(boxes=np.zeros((100, 4), np.float32), scores=rng.uniform(0.5, 1, 100).astype(np.float32),
                         masks=np.zeros((100, 1, 1), bool), image_shape=(1, 1))
        frame = Frame(frame_id=i, image=base.frame.image, time=1.7e9 + i, series_id="s1")
        w.add(FrameResult(frame=frame, stats=stats, changepoints=(), image=base.image, detections=det, timings={}))
    w.close()
    size = sum(p.stat().st_size for p in tmp_path.rglob("*.parquet"))
    print(f"1000 frames x 100 particles: {size / 1e6:.2f} MB, {time.perf_counter() - t0:.1f} s")
    assert read_particles(tmp_path).num_rows == 100_000
    assert size < 10e6


def test_a_disk_that_refuses_parts_loses_nothing_until_the_bound_and_never_raises(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import wirewatch.publish.particles as mod

    real = mod.write_atomically
    full = True

    def refusing(table: object, path: Path, **kw: object) -> int:
        if full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(mod, "write_atomically", refusing)
    monkeypatch.setattr(mod, "RETRY_S", 0.0)
    w = ParticleWriter(tmp_path, roll_frames=2)
    for i in range(6):  # 3 parts' worth: within the bound (4 parts)
        w.add(result(i))
    assert w.write_errors >= 3 and w.frames_lost == 0 and w.pending_frames == 6
    full = False
    w.add(result(6))
    w.close()
    assert read_particles(tmp_path).column("frame").to_pylist() == [i for i in range(7) for _ in range(3)]
    full = True
    w2 = ParticleWriter(tmp_path / "b", roll_frames=2)
    for i in range(12):  # 6 parts' worth: the oldest 4 frames go (bound = 4 parts = 8 frames), counted
        w2.add(result(i))
    assert w2.pending_frames == 8 and w2.frames_lost == 4
    full = False
    w2.close()
    assert sorted(set(read_particles(tmp_path / "b").column("frame").to_pylist())) == list(range(4, 12))


def test_bench_particles_reports_bytes_per_particle() -> None:
    from wirewatch.bench.particles import bench_particles

    rows = bench_particles(frames=6, particles=5, size=96, distinct=2, roll_frames=3)
    assert [r.masks for r in rows] == ["none", "rle"]
    none, rle = rows
    assert 3 <= none.particles_per_frame <= 5 and none.bytes > 0 and rle.bytes > none.bytes
    assert none.mb_per_1000_frames == pytest.approx(none.bytes / 1e6 * 1000 / 6)
    assert none.write_cpu_s_per_part > 0


def test_without_the_tiled_client_the_sink_is_refused_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from wirewatch.publish.tiled import TiledConfig, TiledSink

    monkeypatch.setitem(sys.modules, "tiled.client", None)
    with pytest.raises(ConfigError, match=r"wirewatch\[tiled\]"):
        TiledSink(TiledConfig(uri="http://127.0.0.1:1"))


def test_the_daemon_refuses_particles_dir_without_pyarrow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from wirewatch.config.daemon import DaemonConfig
    from wirewatch.daemon.build import build_pipeline
    from wirewatch.segment import load_segmenter

    config = DaemonConfig.model_validate({"ingest": {"endpoint": "tcp://127.0.0.1:1"},
                                          "segment": {"backend": "watershed"},
                                          "record": {"particles_dir": str(tmp_path / "p")}})
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ConfigError, match=r"particles_dir.*pip install 'wirewatch\[particles\]'"):
        build_pipeline(config, segmenter=load_segmenter("watershed"))


def test_track_ids_are_written_and_null_without_tracking() -> None:
    pytest.importorskip("pyarrow")
    from types import SimpleNamespace

    from wirewatch.publish.particles import particle_rows, particle_schema, particles_table

    def result(particles: dict) -> SimpleNamespace:
        n = len(particles["area_px"])
        det = SimpleNamespace(scores=np.ones(n, np.float32), mask_scores=None, image_shape=(8, 8))
        return SimpleNamespace(stats=SimpleNamespace(particles=particles), detections=det, frame_id=3,
                               frame=SimpleNamespace(series_id="s", time=1.0))

    tracked = particle_rows(result({"area_px": np.array([5, 6]), "track_id": np.array([4, 9], np.int64)}))
    untracked = particle_rows(result({"area_px": np.array([7])}))
    table = particles_table([tracked, untracked], particle_schema())
    assert table.column("track_id").to_pylist() == [4, 9, None]
