"""The JSON forms of a run's records: one place for the record line, the change-point object and NaN.

``FrameRecord`` is one line of the record file (``--record PATH``, JSON Lines; docs/CONTRACTS.md "Record
file"): ``{"frame", "time", "series", "stats"}`` plus optional ``latency_s`` and ``particles``. The daemon's
record, the ZeroMQ ``stats`` topic (the same object without ``series``), the live web view and the report
all build or read it here, so they cannot drift apart. ``changepoint_to_json`` / ``changepoint_from_json``
are the change-point object of ``wirewatch changepoints --json``, ``events.jsonl`` and the ZeroMQ
``changepoint`` topic. ``json_ready`` is the one NaN-to-null conversion (JSON has no NaN): every writer
of these forms calls it, and the readers turn ``null`` back into NaN.

This module is shared by the stages like ``wirewatch.types`` (it imports nothing but ``types`` and
``errors``), so ``publish``, ``changepoint``, ``stats``, ``report`` and ``web`` use it without importing
one another. The JSON is written by hand with the standard library rather than pydantic: the on-disk bytes
of existing record files must stay exactly as they are (key order, compact separators, ASCII escapes), and
the reader must keep accepting lines older wirewatch versions wrote.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.errors import InputError
from wirewatch.types import ChangePoint, FrameStats

log = logging.getLogger(__name__)


def json_ready(value: Any) -> Any:
    """Strict-JSON form of ``value``: NaN / infinities -> None, numpy scalars and arrays -> Python numbers
    and lists, mappings -> dicts with string keys, tuples -> lists; anything else unchanged."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return json_ready(value.item())
    return value


def finite_or_none(value: Any) -> Any:
    """One value's JSON form (``json_ready``): NaN and infinities become None."""
    return json_ready(value)


def number_or_nan(value: Any) -> float:
    """A JSON number back as a number (ints stay ints, so a line re-writes byte for byte); ``null`` and
    anything that is not a number -> NaN."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return value


@dataclass(frozen=True)
class FrameRecord:
    """One record line. ``stats`` holds numbers with NaN for undefined (``null`` in the file); ``time`` is
    Unix seconds (None when a line has none); ``particles`` (column -> values) only when it was recorded."""

    frame: int
    stats: Mapping[str, float]
    series: str | None = None
    time: float | None = None
    latency_s: float | None = None
    particles: Mapping[str, Any] | None = None

    @classmethod
    def from_stats(cls, stats: FrameStats, *, series: str | None = None, latency_s: float | None = None,
                   particles: bool = False) -> FrameRecord:
        """The record of one measured frame; ``particles``: keep its per-particle table too (large)."""
        return cls(frame=int(stats.frame_id), time=float(stats.time), series=series, stats=dict(stats.aggregates),
                   latency_s=None if latency_s is None else round(float(latency_s), 6),
                   particles=dict(stats.particles) if particles else None)

    def to_json(self, *, with_series: bool = True) -> dict[str, Any]:
        """The line as a JSON-ready dict, keys in file order; ``with_series=False``: the ZeroMQ ``stats`` topic."""
        out: dict[str, Any] = {"frame": int(self.frame), "time": json_ready(self.time)}
        if with_series:
            out["series"] = self.series
        out["stats"] = json_ready(dict(self.stats))
        if self.latency_s is not None:
            out["latency_s"] = json_ready(self.latency_s)
        if self.particles is not None:
            out["particles"] = json_ready(dict(self.particles))
        return out

    def to_line(self) -> bytes:
        """The bytes appended to the record file: compact JSON, ASCII, one newline."""
        return (json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False) + "\n").encode()

    # Read access by key, as to the dict ``read_record`` returned before this type existed (scripts index
    # ``line["stats"]["particle_count"]``): the values are those of ``to_json()``, NaN as None.
    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_json().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()

    def keys(self) -> list[str]:
        return list(self.to_json())

    @classmethod
    def from_json(cls, obj: Any, where: str = "record line") -> FrameRecord:
        """A parsed line back as a ``FrameRecord``; an ``InputError`` naming ``where`` when it is malformed."""
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        frame = obj.get("frame")
        if isinstance(frame, bool) or not isinstance(frame, int):
            raise InputError(f"{where}: 'frame' must be an integer, got {frame!r}")
        stats = obj.get("stats")
        if not isinstance(stats, dict):
            raise InputError(f"{where}: 'stats' must be an object of statistic -> number, "
                             f"got {type(stats).__name__}")
        series, time, latency = obj.get("series"), obj.get("time"), obj.get("latency_s")
        particles = obj.get("particles")
        return cls(frame=frame, stats={str(k): v if isinstance(v, bool) else number_or_nan(v) for k, v in stats.items()},
                   series=None if series is None else str(series),
                   time=float(time) if isinstance(time, int | float) and not isinstance(time, bool) else None,
                   latency_s=float(latency) if isinstance(latency, int | float) and not isinstance(latency, bool)
                   else None,
                   particles=dict(particles) if isinstance(particles, dict) else None)

    @classmethod
    def from_line(cls, line: str | bytes, where: str = "record line") -> FrameRecord:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{where}: not UTF-8 text ({exc.reason})") from None
        return cls.from_json(obj, where)


def _lines(path: Path) -> Iterator[FrameRecord]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read record file {path}: {exc.strerror or exc}") from None
    with handle:
        pending: tuple[int, bytes] | None = None
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if pending is not None:
                yield FrameRecord.from_line(pending[1], f"{path}:{pending[0]}")
            pending = (number, raw)
        if pending is None:
            return
        number, raw = pending
        if raw.endswith(b"\n"):
            yield FrameRecord.from_line(raw, f"{path}:{number}")
            return
        # No newline: the writer may have been killed mid-line (the daemon cuts such a line on restart).
        try:
            yield FrameRecord.from_line(raw, f"{path}:{number}")
        except InputError as exc:
            log.warning("skipping the truncated last line of %s: %s", path, exc)


def read_record(path: str | Path) -> list[FrameRecord]:
    """Every frame of a record file, in file order. A torn last line (a writer killed mid-line) is skipped
    with a warning; any other malformed line is an ``InputError`` naming the file and line number."""
    return list(_lines(Path(path)))


def changepoint_to_json(cp: ChangePoint) -> dict[str, Any]:
    """The change-point object: every ``ChangePoint`` field in order, then ``delay`` (frames from the change
    to its detection); NaN levels, effect size and penalty are ``null``."""
    out = json_ready(dataclasses.asdict(cp))
    out["delay"] = int(cp.detected_at) - int(cp.frame)
    return dict(out)


def changepoint_from_json(obj: Any, where: str = "change point") -> ChangePoint:
    """A change-point object back as a ``ChangePoint`` (``null`` -> NaN; ``delay`` and ``event`` ignored)."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    fields = {f.name: f for f in dataclasses.fields(ChangePoint)}
    missing = [name for name, f in fields.items()
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in obj]
    if missing:
        raise InputError(f"{where}: missing {', '.join(repr(m) for m in missing)}")
    values = {k: v for k, v in obj.items() if k in fields}
    try:
        values["statistics"] = tuple(str(s) for s in values["statistics"])
        for side in ("before", "after"):
            values[side] = {str(k): float(number_or_nan(v)) for k, v in dict(values[side]).items()}
        for name in ("effect_size", "penalty"):
            if name in values:
                values[name] = float(number_or_nan(values[name]))
        for name in ("frame", "detected_at"):
            values[name] = int(values[name])
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from None
    return ChangePoint(**values)
