"""The durable record: one JSON object per processed frame, appended to a JSON Lines file.

Each line is written with one ``os.write`` on an ``O_APPEND`` descriptor (no user-space buffer),
so a line is in the kernel's page cache (it survives the process being killed) as soon as
``write`` returns; ``fsync`` decides when it is also forced to the disk (survives power loss):
``always`` (every frame), ``interval`` (at most every ``fsync_interval_s``; default) or ``never``
(left to the OS). Lines that could not be written (disk full, I/O error) are kept in a bounded
backlog and retried on the next frame; a partially written line is cut off again so the file
stays valid JSON Lines. Opening an existing record repairs a torn last line (a crash mid-write)
and remembers the last frame so a restarted daemon does not record a frame twice.

Line format (docs/CONTRACTS.md): ``{"frame": int, "time": float, "series": str|null,
"stats": {name: number|null}}`` plus optional ``latency_s`` and ``particles``: ``wirewatch.records.FrameRecord``
writes and reads it (``read_record`` is re-exported here for existing callers).
Per-particle Parquet tables (``particles_dir``): ``wirewatch.publish.particles``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from wirewatch.config.base import StrictModel
from wirewatch.errors import SinkError
from wirewatch.records import FrameRecord, read_record
from wirewatch.types import FrameStats

log = logging.getLogger(__name__)

__all__ = ["FsyncPolicy", "RecordConfig", "RecordSink", "RecordWriter", "read_record", "record_line"]

FsyncPolicy = Literal["always", "interval", "never"]


class RecordConfig(StrictModel):
    """The ``record`` section: where and how the per-frame record is written (``path: null`` = none)."""

    path: Path | None = None
    fsync: FsyncPolicy = "interval"
    fsync_interval_s: float = Field(default=1.0, gt=0)
    particles: bool = False  # add the per-particle table to each line (large)
    max_backlog: int = Field(default=10000, ge=1)  # lines kept in memory while the disk refuses writes
    # Per-particle Parquet tables beside the record (wirewatch.publish.particles; needs the 'particles' extra)
    particles_dir: Path | None = None
    particle_masks: Literal["none", "rle"] = "none"  # rle: each particle's mask as COCO compressed RLE
    particles_roll_frames: int = Field(default=500, ge=1)  # a new part file every N frames ...
    particles_roll_s: float = Field(default=300.0, gt=0)  # ... or every N seconds, whichever comes first


def record_line(stats: FrameStats, *, series: str | None, latency_s: float | None = None,
                particles: bool = False) -> dict[str, Any]:
    """The record object of one frame (``FrameRecord.from_stats(...).to_json()``)."""
    return FrameRecord.from_stats(stats, series=series, latency_s=latency_s, particles=particles).to_json()


class RecordWriter:
    """The record file's writer (the daemon's ``RecordResultSink`` feeds it). Appends one line per frame; thread-compatible (one writer thread), ``close`` is idempotent."""

    def __init__(self, path: str | Path, *, fsync: FsyncPolicy = "interval", fsync_interval_s: float = 1.0,
                 particles: bool = False, max_backlog: int = 10000) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self.particles = particles
        self._backlog: deque[bytes] = deque()
        self._max_backlog = max_backlog
        self._last_sync = time.monotonic()
        self._dirty = False
        self._lock = threading.Lock()
        self.lines_written = 0
        self.lines_lost = 0  # dropped because the backlog was full
        self.write_errors = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self.resume_from = self._repair_tail()
        except OSError as exc:
            raise SinkError(f"cannot open record file {self.path}: {exc}") from None

    @classmethod
    def from_config(cls, config: RecordConfig) -> RecordWriter:
        if config.path is None:
            raise SinkError("record.path is not set")
        return cls(config.path, fsync=config.fsync, fsync_interval_s=config.fsync_interval_s,
                   particles=config.particles, max_backlog=config.max_backlog)

    def _repair_tail(self) -> tuple[str | None, int] | None:
        """Cut a torn last line; return (series, frame) of the last complete line, if any."""
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        if size == 0:
            return None
        with open(self.path, "rb") as f:
            f.seek(max(0, size - 1_048_576))
            tail = f.read()
        end = tail.rfind(b"\n")
        good = size - len(tail) + end + 1 if end >= 0 else (0 if size <= 1_048_576 else size)
        if good != size:
            log.warning("record %s: cutting a torn last line (%d bytes) left by an interrupted write",
                        self.path, size - good)
            os.ftruncate(self._fd, good)
        lines = tail[:end].split(b"\n") if end >= 0 else []
        for raw in reversed(lines):
            try:
                obj = json.loads(raw)
                return (obj.get("series"), int(obj["frame"]))
            except (ValueError, KeyError, TypeError):
                continue
        return None

    def is_replay(self, series: str | None, frame_id: int) -> bool:
        """True for a frame this record already holds (the same series, frame id not beyond the last);
        stops answering True once a newer frame was written."""
        if self.resume_from is None:
            return False
        last_series, last_frame = self.resume_from
        return series == last_series and frame_id <= last_frame

    def write(self, stats: FrameStats, *, series: str | None = None, latency_s: float | None = None) -> bool:
        """Append one frame; True when it (and any backlog) reached the file. Never raises on I/O errors:
        the line waits in the backlog and the error is counted in ``write_errors``."""
        data = FrameRecord.from_stats(stats, series=series, latency_s=latency_s, particles=self.particles).to_line()
        with self._lock:
            if self._fd is None:
                raise SinkError(f"record {self.path} is closed")
            if len(self._backlog) >= self._max_backlog:
                self._backlog.popleft()
                self.lines_lost += 1
            self._backlog.append(data)
            ok = self._drain()
            self.resume_from = None
            return ok

    def _drain(self) -> bool:
        assert self._fd is not None
        while self._backlog:
            data = self._backlog[0]
            start = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                written = os.write(self._fd, data)
                while written < len(data):
                    # A short write usually means the disk just filled up: writing the rest either
                    # completes the line or raises the real reason (ENOSPC) for the log.
                    more = os.write(self._fd, data[written:])
                    if more <= 0:
                        raise OSError(f"short write ({written} of {len(data)} bytes)")
                    written += more
            except OSError as exc:
                self.write_errors += 1
                if self.write_errors == 1 or self.write_errors % 100 == 0:
                    log.error("record %s: write failed (%s); %d line(s) waiting", self.path, exc,
                              len(self._backlog))
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)  # never leave half a line
                return False
            self._backlog.popleft()
            self.lines_written += 1
            self._dirty = True
        self._maybe_sync()
        return True

    def _maybe_sync(self, force: bool = False) -> None:
        assert self._fd is not None
        if not self._dirty or (self.fsync == "never" and not force):
            return
        now = time.monotonic()
        if force or self.fsync == "always" or now - self._last_sync >= self.fsync_interval_s:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                log.error("record %s: fsync failed: %s", self.path, exc)
                return
            self._last_sync = now
            self._dirty = False

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def flush(self) -> bool:
        """Retry the backlog and force the file to disk."""
        with self._lock:
            if self._fd is None:
                return True
            ok = self._drain()
            self._maybe_sync(force=True)
            return ok

    def close(self) -> None:
        with self._lock:
            if self._fd is None:
                return
            if self._backlog:
                self._drain()
            if self._backlog:
                log.error("record %s: closing with %d unwritten line(s)", self.path, len(self._backlog))
            self._maybe_sync(force=True)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


RecordSink = RecordWriter  # the old name (it is no ResultSink): kept for existing callers
