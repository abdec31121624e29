"""Run the streaming detector over a record file (JSON Lines, one object per frame).

Record lines are ``{"frame": int, "time": float, "series": str|null, "stats": {...}}``
(docs/CONTRACTS.md), read by ``wirewatch.records.read_record``; JSON ``null`` statistics are missing
values. A new ``series`` value (or a frame id going backwards) resets the detector, as in the daemon.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.changepoint.config import ChangepointConfig
from wirewatch.changepoint.streaming import build_detector
from wirewatch.errors import InputError
from wirewatch.records import FrameRecord, changepoint_to_json, number_or_nan, read_record
from wirewatch.types import ChangePoint

__all__ = ["OfflineResult", "RecordFrame", "changepoint_dict", "changepoints_document", "detect_frames",
           "detect_record", "read_record", "read_truth"]

log = logging.getLogger(__name__)


RecordFrame = FrameRecord  # the record line as this module has always called it


@dataclass(frozen=True)
class OfflineResult:
    frames: np.ndarray  # (n,) frame ids in file order
    series: dict[str, np.ndarray]  # statistic -> (n,) values (NaN = missing)
    changepoints: list[ChangePoint]
    skipped_frames: int = 0  # frames with none of the watched statistics
    series_boundaries: list[int] = field(default_factory=list)  # frame ids where a new series began


def _series_lengths(frames: list[RecordFrame]) -> list[int]:
    """Frames per series, split where ``detect_frames`` resets (a new series value, a frame id going back)."""
    lengths: list[int] = []
    for i, rec in enumerate(frames):
        if i == 0 or rec.series != frames[i - 1].series or rec.frame <= frames[i - 1].frame:
            lengths.append(0)
        lengths[-1] += 1
    return lengths


def detect_frames(frames: Iterable[RecordFrame], config: ChangepointConfig | None = None) -> OfflineResult:
    """Run the streaming detector frame by frame, exactly as the daemon would (except that a series' length
    is known here: ``short_record_warmup`` shortens the warm-up of a short series)."""
    config = config or ChangepointConfig()
    detector = build_detector(config)
    frames = list(frames)
    lengths = _series_lengths(frames)
    detector.expect_frames(lengths[0] if lengths else 0)
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
            detector.expect_frames(lengths[len(boundaries)])
        series, last_frame = rec.series, rec.frame
        frame_ids.append(rec.frame)
        values = {k: float(number_or_nan(v)) for k, v in rec.stats.items()}  # null, true/false -> NaN
        for name in config.stats:
            columns[name].append(values.get(name, math.nan))
        events.extend(detector.update(rec.frame, values, time=rec.time))  # slow-stream settings in seconds
    skipped += detector.skipped_frames
    return OfflineResult(frames=np.array(frame_ids, int), series={k: np.array(v, float) for k, v in columns.items()},
                         changepoints=events, skipped_frames=skipped, series_boundaries=boundaries)


def detect_record(path: str | Path, config: ChangepointConfig | None = None,
                  stats: Sequence[str] | None = None) -> OfflineResult:
    """Change points of a record file; ``stats`` overrides the config's watched statistics."""
    config = config or ChangepointConfig()
    frames = read_record(path)
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


changepoint_dict = changepoint_to_json  # the one change-point object (wirewatch.records)


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
