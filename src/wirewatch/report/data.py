"""What a run report is made of, read from a record file and / or a particle tables folder."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.errors import InputError
from wirewatch.records import FrameRecord, changepoint_to_json, read_record

DESCRIPTORS: tuple[str, ...] = ("area_px", "length_px", "width_px", "aspect_ratio", "orientation_deg")


@dataclass
class RunData:
    record: Path
    frames: np.ndarray  # frame ids, in record order
    times: np.ndarray
    stats: dict[str, np.ndarray]  # statistic -> value per frame (NaN for null)
    latency_s: np.ndarray  # NaN where not recorded
    particles: dict[str, np.ndarray] | None  # column -> array (with "frame"), None without per-particle data
    particles_source: str | None
    changepoints: list[dict[str, Any]]
    changepoints_source: str
    alerts: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def boundaries(self) -> list[int]:
        """Change-point frames inside the run, sorted, each once: the starts of segments 2, 3, ..."""
        if self.frames.size == 0:
            return []
        lo, hi = int(self.frames.min()), int(self.frames.max())
        return sorted({int(c["frame"]) for c in self.changepoints if lo < int(c["frame"]) <= hi})

    def segments(self) -> list[tuple[int, int]]:
        """``[(first frame, end frame exclusive), ...]`` between change points."""
        if self.frames.size == 0:
            return []
        edges = [int(self.frames.min()), *self.boundaries, int(self.frames.max()) + 1]
        return list(itertools.pairwise(edges))

    def values(self, name: str, start: int, end: int) -> np.ndarray:
        """Finite values of one per-particle column for the frames in ``[start, end)``."""
        if self.particles is None or name not in self.particles:
            return np.zeros(0)
        f = self.particles["frame"]
        v = np.asarray(self.particles[name], np.float64)[(f >= start) & (f < end)]
        return v[np.isfinite(v)]


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _lines(record: Path) -> list[FrameRecord]:
    from wirewatch.publish.particles import frames_as_record, is_dataset

    if is_dataset(record):
        return frames_as_record(record)
    if not record.is_file():
        raise InputError(f"record {record} does not exist (give a record file or a particle tables folder)")
    return read_record(record)


def _particles_from_lines(lines: list[FrameRecord]) -> dict[str, np.ndarray] | None:
    """Per-particle columns from record lines written with ``record.particles: true``."""
    if not any(ln.particles is not None for ln in lines):
        return None
    cols: dict[str, list[float]] = {"frame": []}
    for ln in lines:
        p = ln.particles or {}
        n = len(p.get("area_px", []))
        cols["frame"].extend([ln.frame] * n)
        for d in DESCRIPTORS:
            cols.setdefault(d, []).extend(_num(x) for x in p.get(d, [None] * n))
    return {k: np.asarray(v, np.float64) for k, v in cols.items()}


def _particles_from_dataset(directory: Path) -> dict[str, np.ndarray]:
    from wirewatch.publish.particles import read_particles

    table = read_particles(directory)
    names = ["frame", *[d for d in DESCRIPTORS if d in table.column_names]]
    return {n: np.asarray(table.column(n).to_numpy(zero_copy_only=False), np.float64) for n in names}


def load_run(record: str | Path, particles: str | Path | None = None) -> RunData:
    """Read a run: ``record`` (JSON Lines, or a particle tables folder whose frames table is used) and the
    per-particle data (``particles`` folder; the record folder itself; or the record's ``particles`` key).
    Change points and alerts: the ones the daemon logged (the folder's ``events.jsonl``), else change points
    detected offline over the record as ``wirewatch changepoints`` does (no alerts then)."""
    from wirewatch.publish.particles import is_dataset, read_events

    record = Path(record)
    lines = _lines(record)
    if not lines:
        raise InputError(f"record {record} holds no frames")
    dataset = Path(particles) if particles is not None else (record if is_dataset(record) else None)
    if dataset is not None and not is_dataset(dataset):
        raise InputError(f"{dataset} is not a particle tables folder (wirewatch run --particles DIR)")
    names: list[str] = []
    for ln in lines:
        names.extend(k for k in ln.stats if k not in names)
    stats = {n: np.asarray([_num(ln.stats.get(n)) for ln in lines]) for n in names}
    data = RunData(record=record, frames=np.asarray([ln.frame for ln in lines]),
                   times=np.asarray([_num(ln.time) for ln in lines]), stats=stats,
                   latency_s=np.asarray([_num(ln.latency_s) for ln in lines]), particles=None,
                   particles_source=None, changepoints=[], changepoints_source="", alerts=[])
    if dataset is not None:
        data.particles = _particles_from_dataset(dataset)
        data.particles_source = str(dataset)
        run_json = dataset / "run.json"
        if run_json.is_file():
            data.meta = json.loads(run_json.read_text())
        events = read_events(dataset)
        data.changepoints = [e for e in events if e.get("event") == "changepoint"]
        data.alerts = [e for e in events if e.get("event") == "alert"]
        data.changepoints_source = f"detected live by the daemon ({dataset / 'events.jsonl'})"
    else:
        data.particles = _particles_from_lines(lines)
        data.particles_source = str(record) if data.particles is not None else None
    if dataset is None or not (dataset / "events.jsonl").is_file():
        data.changepoints = _offline_changepoints(record)
        data.changepoints_source = "detected offline over the record (wirewatch changepoints, default settings)"
    return data


def _offline_changepoints(record: Path) -> list[dict[str, Any]]:
    from wirewatch.changepoint.offline import detect_record
    from wirewatch.publish.particles import as_record_file

    try:
        with as_record_file(record) as path:
            result = detect_record(path)
    except InputError:
        return []  # e.g. none of the watched statistics recorded: the report still shows the rest
    return [changepoint_to_json(cp) for cp in result.changepoints]
