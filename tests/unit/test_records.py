"""wirewatch.records: the one record line and change-point object, their round trips and NaN as null."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from wirewatch.changepoint.offline import changepoint_dict, changepoints_document
from wirewatch.errors import InputError
from wirewatch.publish.encode import changepoint_to_dict, dumps, stats_to_dict
from wirewatch.publish.products import changepoint_event
from wirewatch.publish.record import RecordWriter, record_line
from wirewatch.records import (
    FrameRecord,
    changepoint_from_json,
    changepoint_to_json,
    json_ready,
    read_record,
)
from wirewatch.types import ChangePoint, FrameStats

# A line as the record writer before wirewatch.records wrote it (bytes taken from that version): existing
# record files must read back and re-write byte for byte.
OLD_LINE = (b'{"frame":7,"time":1700000000.25,"series":"s\\u00e9","stats":{"particle_count":3.0,"n_int":4,'
            b'"x":null,"y":0.10000000149011612,"z":null,"flag":true},"latency_s":0.123457,"particles":'
            b'{"area_px":[1,2],"od_mean":[0.5,null],"touches_border":[true,false]}}\n')


def _stats() -> FrameStats:
    return FrameStats(frame_id=np.int64(7), time=1.7e9 + 0.25,
                      aggregates={"particle_count": np.float64(3.0), "n_int": np.int64(4), "x": math.nan,
                                  "y": np.float32(0.1), "z": math.inf, "flag": np.bool_(True)},
                      particles={"area_px": np.array([1, 2]), "od_mean": np.array([0.5, np.nan]),
                                 "touches_border": np.array([True, False])})


def _changepoint() -> ChangePoint:
    return ChangePoint(frame=10, detected_at=14, statistics=("length_px_mean", "particle_count"),
                       before={"length_px_mean": 20.0, "particle_count": math.nan},
                       after={"length_px_mean": 31.5, "particle_count": 4.0}, effect_size=math.nan,
                       detector="binseg", severity="critical", kind="slope", penalty=math.nan,
                       attribution="instrument", suspect=True)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_full_record_round_trip_keeps_nan_as_null_and_bytes() -> None:
    rec = FrameRecord.from_stats(_stats(), series="s\u00e9", latency_s=0.1234567891, particles=True)
    assert rec.to_line() == OLD_LINE  # what older versions wrote for the same frame
    obj = rec.to_json()
    assert list(obj) == ["frame", "time", "series", "stats", "latency_s", "particles"]
    assert obj["stats"]["x"] is None and obj["stats"]["z"] is None and obj["particles"]["od_mean"] == [0.5, None]
    back = FrameRecord.from_json(json.loads(json.dumps(obj, allow_nan=False)))
    assert (back.frame, back.time, back.series, back.latency_s) == (7, 1.7e9 + 0.25, "s\u00e9", 0.123457)
    assert math.isnan(back.stats["x"]) and math.isnan(back.stats["z"])  # null -> NaN for the numbers
    assert back.stats["n_int"] == 4 and isinstance(back.stats["n_int"], int) and back.stats["flag"] is True
    assert back.to_json() == obj and back.to_line() == OLD_LINE
    assert FrameRecord.from_line(OLD_LINE).to_line() == OLD_LINE
    # without the optional keys
    bare = FrameRecord.from_stats(_stats())
    assert list(bare.to_json()) == ["frame", "time", "series", "stats"]
    assert FrameRecord.from_line(bare.to_line()).to_json() == bare.to_json()


def test_changepoint_round_trip_with_nan_fields() -> None:
    cp = _changepoint()
    obj = changepoint_to_json(cp)
    text = json.dumps(obj, allow_nan=False)  # strict JSON: no NaN left anywhere
    assert obj["effect_size"] is None and obj["penalty"] is None and obj["before"]["particle_count"] is None
    assert obj["delay"] == 4 and obj["statistics"] == ["length_px_mean", "particle_count"]
    back = changepoint_from_json(json.loads(text))
    for name in ("frame", "detected_at", "statistics", "detector", "severity", "kind", "attribution", "suspect"):
        assert getattr(back, name) == getattr(cp, name), name
    assert _same(back.effect_size, cp.effect_size) and _same(back.penalty, cp.penalty)
    for side in ("before", "after"):
        assert all(_same(getattr(back, side)[k], v) for k, v in getattr(cp, side).items())
    assert changepoint_to_json(back) == obj
    with pytest.raises(InputError, match="missing 'effect_size'"):
        changepoint_from_json({k: v for k, v in obj.items() if k != "effect_size"})


def test_a_full_record_with_change_points_round_trips_through_one_file(tmp_path: Path) -> None:
    """A run's record and its change points, written and read back with the one module."""
    cps = [_changepoint(), ChangePoint(frame=30, detected_at=33, statistics=("x",), before={"x": 1.0},
                                       after={"x": 2.0}, effect_size=2.5, detector="cusum")]
    path = tmp_path / "r.jsonl"
    with RecordWriter(path, particles=True) as sink:
        for i in range(3):
            sink.write(FrameStats(frame_id=i, time=10.0 + i, aggregates={"x": math.nan if i == 1 else float(i)},
                                  particles={"area_px": np.array([i])}), series="A", latency_s=0.5)
    lines = read_record(path)
    assert [r.frame for r in lines] == [0, 1, 2] and math.isnan(lines[1].stats["x"])
    assert b"".join(r.to_line() for r in lines) == path.read_bytes()
    events = json.loads(json.dumps(changepoints_document(cps), allow_nan=False))["changepoints"]
    assert [changepoint_to_json(changepoint_from_json(e)) for e in events] == [changepoint_to_json(c) for c in cps]


def test_both_former_writers_give_identical_lines(tmp_path: Path) -> None:
    """The record file and the ZeroMQ ``stats`` topic (a record line without ``series``) used to be written
    by two functions; change points became dicts in three places, one leaving ``effect_size`` NaN."""
    stats = _stats()
    path = tmp_path / "r.jsonl"
    with RecordWriter(path) as sink:
        sink.write(stats, series="run-1")
    on_disk = path.read_bytes()
    assert on_disk == FrameRecord.from_stats(stats, series="run-1").to_line()
    assert on_disk == (json.dumps(record_line(stats, series="run-1"), separators=(",", ":")) + "\n").encode()
    line = json.loads(on_disk)
    del line["series"]
    assert stats_to_dict(stats) == line  # numbers, nulls, ints and booleans alike
    assert json.loads(dumps(stats_to_dict(stats))) == line
    cp = _changepoint()
    event = changepoint_event(cp)
    assert event.pop("event") == "changepoint"
    assert changepoint_to_dict(cp) == changepoint_dict(cp) == event == changepoint_to_json(cp)
    assert changepoint_dict(cp)["effect_size"] is None  # was NaN (written as a bare NaN token) offline
    assert json.dumps(event, allow_nan=False) == json.dumps(changepoint_dict(cp), allow_nan=False)


def test_read_record_torn_and_bad_lines_and_key_access(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    path.write_bytes(OLD_LINE + OLD_LINE.replace(b'"frame":7', b'"frame":8') + b'{"frame":9,"ti')
    lines = read_record(path)
    assert [r.frame for r in lines] == [7, 8]  # the torn last line is skipped
    assert lines[0]["stats"]["x"] is None and lines[0]["frame"] == 7 and "latency_s" in lines[0]  # as the dicts
    assert lines[0].get("nope", 1) == 1
    path.write_bytes(OLD_LINE + b'{"frame": "one", "stats": {}}\n' + OLD_LINE)
    with pytest.raises(InputError, match=r"cut\.jsonl:2: 'frame' must be an integer"):
        read_record(path)
    with pytest.raises(InputError, match="cannot read record file"):
        read_record(tmp_path / "absent.jsonl")


def test_json_ready_is_strict_json() -> None:
    value = {1: (np.float32(np.nan), np.int16(3)), "a": np.array([[1.5, np.inf]]), "b": np.bool_(False)}
    assert json_ready(value) == {"1": [None, 3], "a": [[1.5, None]], "b": False}
    json.dumps(json_ready(value), allow_nan=False)
