"""Run the streaming detector over a record file (JSON Lines, one object per frame).

Record lines are ``{"frame": int, "time": float, "series": str|null, "stats": {...}}``
(docs/CONTRACTS.md); JSON ``null`` statistics are missing values. A new ``series``
value (or a frame id going backwards) resets the detector, as in the daemon.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.changepoint.config import ChangepointConfig
from wirewatch.changepoint.streaming import build_detector
from wirewatch.errors import InputError
from wirewatch.types import ChangePoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordFrame:
    frame: int
    stats: Mapping[str, float]
    series: str | None = None
    time: float | None = None


@dataclass(frozen=True)
class OfflineResult:
    frames: np.ndarray  # (n,) frame ids in file order
    series: dict[str, np.ndarray]  # statistic -> (n,) values (NaN = missing)
    changepoints: list[ChangePoint]
    skipped_frames: int = 0  # frames with none of the watched statistics
    series_boundaries: list[int] = field(default_factory=list)  # frame ids where a new series began


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def parse_record_line(line: str, where: str) -> RecordFrame:
    """One record line -> ``RecordFrame``; an ``InputError`` naming ``where`` when it is malformed."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    frame = obj.get("frame")
    if isinstance(frame, bool) or not isinstance(frame, int):
        raise InputError(f"{where}: 'frame' must be an integer, got {frame!r}")
    stats = obj.get("stats")
    if not isinstance(stats, dict):
        raise InputError(f"{where}: 'stats' must be an object of statistic -> number, got {type(stats).__name__}")
    series = obj.get("series")
    time = obj.get("time")
    return RecordFrame(frame=frame, stats={str(k): _number(v) for k, v in stats.items()},
                       series=None if series is None else str(series),
                       time=None if not isinstance(time, int | float) else float(time))


def read_record(path: str | Path) -> Iterator[RecordFrame]:
    """Frames of a record file. A truncated last line (writer killed mid-line) is skipped with a warning."""
    p = Path(path)
    try:
        handle = p.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read record file {p}: {exc.strerror or exc}") from None
    with handle:
        pending: tuple[int, str] | None = None
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if pending is not None:
                yield parse_record_line(pending[1], f"{p}:{pending[0]}")
            pending = (number, line)
        if pending is not None:
            number, line = pending
            if not line.endswith("\n"):
                try:
                    yield parse_record_line(line, f"{p}:{number}")
                except InputError as exc:
                    log.warning("skipping the truncated last line of %s: %s", p, exc)
            else:
                yield parse_record_line(line, f"{p}:{number}")


def detect_frames(frames: Iterable[RecordFrame], config: ChangepointConfig | None = None) -> OfflineResult:
    """Run the streaming detector frame by frame, exactly as the daemon would."""
    config = config or ChangepointConfig()
    detector = build_detector(config)
    frame_ids: list[int] = []
    columns: dict[str, list[float]] = {name: [] for name in config.stats}
    events: list[ChangePoint] = []
    boundaries: list[int] = []
    skipped = 0
    series: str | None = None
    last_frame: int | None = None
    for i, rec in enumerate(frames):
        new_series = i > 0 and rec.series != series
        backwards = last_frame is not None and rec.frame <= last_frame
        if new_series or backwards:
            skipped += detector.skipped_frames
            detector.reset()
            boundaries.append(rec.frame)
        series, last_frame = rec.series, rec.frame
        frame_ids.append(rec.frame)
        for name in config.stats:
            columns[name].append(_number(rec.stats.get(name)))
        events.extend(detector.update(rec.frame, rec.stats))
    skipped += detector.skipped_frames
    return OfflineResult(frames=np.array(frame_ids, int), series={k: np.array(v, float) for k, v in columns.items()},
                         changepoints=events, skipped_frames=skipped, series_boundaries=boundaries)


def detect_record(path: str | Path, config: ChangepointConfig | None = None,
                  stats: Sequence[str] | None = None) -> OfflineResult:
    """Change points of a record file; ``stats`` overrides the config's watched statistics."""
    config = config or ChangepointConfig()
    frames = list(read_record(path))
    if not frames:
        raise InputError(f"record file {path} holds no frames")
    present = set().union(*(f.stats.keys() for f in frames))
    if stats:
        missing = [s for s in stats if s not in present]
        if missing:
            raise InputError(f"statistic(s) {', '.join(missing)} not in {path}; "
                             f"it has: {', '.join(sorted(present))}")
        config = config.with_stats(list(stats))
    else:
        absent = [s for s in config.stats if s not in present]
        if len(absent) == len(config.stats):
            raise InputError(f"none of the watched statistics ({', '.join(config.stats)}) is in {path}; "
                             f"it has: {', '.join(sorted(present))}; choose some with --stats")
        if absent:
            log.warning("statistics not in %s, ignored: %s", path, ", ".join(absent))
            config = config.with_stats([s for s in config.stats if s in present])
    return detect_frames(frames, config)


def changepoint_dict(cp: ChangePoint) -> dict[str, Any]:
    """JSON-ready form of one event (NaN levels become null)."""
    out = asdict(cp)
    out["statistics"] = list(cp.statistics)
    out["before"] = {k: (v if math.isfinite(v) else None) for k, v in cp.before.items()}
    out["after"] = {k: (v if math.isfinite(v) else None) for k, v in cp.after.items()}
    out["delay"] = cp.detected_at - cp.frame
    out["penalty"] = cp.penalty if math.isfinite(cp.penalty) else None
    return out


def changepoints_document(changepoints: Sequence[ChangePoint]) -> dict[str, Any]:
    """``{"changepoints": [{"frame": ..., "detected_at": ..., "statistics": [...], ...}]}``."""
    return {"changepoints": [changepoint_dict(cp) for cp in changepoints]}


def read_truth(path: str | Path) -> list[int]:
    """True change frames from the simulator's ``truth.json`` (``{"change_points": [...]}``) or a plain list."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read truth file {p}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"truth file {p} is not valid JSON ({exc.msg})") from None
    if isinstance(data, dict):
        if "change_points" not in data:
            raise InputError(f"truth file {p} has no 'change_points' key (keys: {', '.join(map(str, data))})")
        data = data["change_points"]
    if not isinstance(data, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in data):
        raise InputError(f"truth file {p}: change points must be a list of integer frames, got {data!r:.80}")
    return sorted(data)
