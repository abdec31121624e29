import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from wirewatch.errors import SinkError
from wirewatch.publish.record import RecordWriter, read_record, record_line
from wirewatch.types import FrameStats


def _stats(i: int, count: float = 3.0) -> FrameStats:
    return FrameStats(frame_id=i, time=1000.0 + i, aggregates={"particle_count": count, "length_px_mean": math.nan},
                      particles={"area_px": np.array([1, 2])})


def test_one_line_per_frame_nan_as_null_and_flushed_immediately(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = RecordWriter(path, fsync="always")
    for i in range(3):
        assert sink.write(_stats(i), series="s1", latency_s=0.25)
        # readable by another reader right away: no user-space buffering
        assert len(read_record(path)) == i + 1
    sink.close()
    lines = read_record(path)
    assert [ln.frame for ln in lines] == [0, 1, 2]
    assert lines[0].to_json() == {"frame": 0, "time": 1000.0, "series": "s1",
                        "stats": {"particle_count": 3.0, "length_px_mean": None}, "latency_s": 0.25}
    assert path.read_text().count("\n") == 3


def test_particles_table_optional() -> None:
    line = record_line(_stats(1), series=None, particles=True)
    assert line["particles"] == {"area_px": [1, 2]}
    assert "particles" not in record_line(_stats(1), series=None)


def test_torn_last_line_is_cut_and_resume_point_found(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with RecordWriter(path) as sink:
        for i in range(5):
            sink.write(_stats(i), series="a")
    with open(path, "ab") as f:
        f.write(b'{"frame": 5, "time": 10')  # killed mid-write
    sink = RecordWriter(path)
    assert sink.resume_from == ("a", 4)
    assert sink.is_replay("a", 3) and sink.is_replay("a", 4)
    assert not sink.is_replay("a", 5) and not sink.is_replay("b", 0)
    sink.write(_stats(5), series="a")
    assert not sink.is_replay("a", 2)  # only right after a restart
    sink.close()
    assert [ln["frame"] for ln in read_record(path)] == [0, 1, 2, 3, 4, 5]
    for raw in path.read_bytes().splitlines():
        json.loads(raw)


def test_disk_full_keeps_lines_in_backlog_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    sink = RecordWriter(path, fsync="never")
    sink.write(_stats(0))
    fd = sink._fd
    assert fd is not None
    saved = os.dup(fd)
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, fd)  # the record's descriptor now answers ENOSPC
        assert not sink.write(_stats(1))
        assert not sink.write(_stats(2))
        assert sink.backlog == 2 and sink.write_errors >= 2
    finally:
        os.dup2(saved, fd)  # space is back
        os.close(saved)
        os.close(full)
    assert sink.write(_stats(3))
    assert sink.backlog == 0
    sink.close()
    assert [ln["frame"] for ln in read_record(path)] == [0, 1, 2, 3]


def test_backlog_is_bounded_and_losses_counted(tmp_path: Path) -> None:
    sink = RecordWriter(tmp_path / "r.jsonl", max_backlog=2)
    fd = sink._fd
    assert fd is not None
    saved = os.dup(fd)
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, fd)
    for i in range(5):
        sink.write(_stats(i))
    os.dup2(saved, fd)
    os.close(saved)
    os.close(full)
    assert sink.backlog == 2 and sink.lines_lost == 3
    sink.close()
    assert [ln["frame"] for ln in read_record(tmp_path / "r.jsonl")] == [3, 4]


def test_write_after_close_and_bad_path(tmp_path: Path) -> None:
    sink = RecordWriter(tmp_path / "r.jsonl")
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(SinkError, match="closed"):
        sink.write(_stats(0))
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(SinkError, match="cannot open record"):
        RecordWriter(tmp_path / "dir.jsonl")
