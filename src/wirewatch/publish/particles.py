"""Per-particle tables beside the record: a Parquet dataset with one row per measured particle.

Layout of ``record.particles_dir`` (``wirewatch run --particles DIR``; schema in docs/CONTRACTS.md)::

    DIR/particles/part-000000.parquet   one row per particle of every recorded frame
    DIR/frames/part-000000.parquet      one row per recorded frame (the record's statistics: frames with
                                        no particle are here too, so per-frame row counts can be checked)
    DIR/events.jsonl                    change points and alerts as they happen (one JSON object a line)
    DIR/run.json                        run metadata (model, config hash, frames processed / dropped, latency)

Rows are kept in memory for the open part (at most ``roll_frames`` frames or ``roll_s`` seconds) and each
part is written whole with pyarrow to a hidden temporary name, fsynced, renamed, and the folder fsynced:
a SIGKILL loses at most the open part and never leaves a half-written ``part-*.parquet`` (readers, and
``pyarrow.dataset``, skip names starting with ``.``). Why not ``pyarrow.parquet.ParquetWriter`` appending
row groups to the open file: a killed process would leave that file without its footer (unreadable), and
the atomic-rename guarantee would be lost.

pyarrow is an optional extra (``pip install 'wirewatch[particles]'``); asking for the tables without it is
a ``ConfigError`` naming the extra.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wirewatch.errors import ConfigError, InputError
from wirewatch.files import write_durably
from wirewatch.records import FrameRecord, finite_or_none, number_or_nan
from wirewatch.types import PARTICLE_COLUMNS

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"  # the ``wirewatch.particles.version`` key of every file's metadata
MaskFormat = Literal["none", "rle"]
_PART = re.compile(r"^part-(\d{6})\.parquet$")
_INT_COLUMNS = {"mask_index", "area_px", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"}
EXTRA = "particles"  # the pip extra that brings pyarrow
RETRY_S = 5.0  # after a failed part write, the next attempt waits this long (frames keep being collected)
MAX_BACKLOG_PARTS = 4  # parts of rows kept in memory while writes fail


def require_pyarrow(what: str = "record.particles_dir (--particles)") -> Any:
    """The ``pyarrow`` module, or a ``ConfigError`` that names the extra to install."""
    try:
        import pyarrow
        import pyarrow.parquet  # the submodule is what writes
    except ImportError:
        raise ConfigError(f"{what} needs pyarrow, which is not installed: pip install 'wirewatch[{EXTRA}]'") from None
    return pyarrow


def particle_schema(masks: MaskFormat = "none") -> Any:
    """The Arrow schema of the particle table (version ``SCHEMA_VERSION``)."""
    pa = require_pyarrow()
    fields = [pa.field("series", pa.string()), pa.field("frame", pa.int64()), pa.field("time", pa.float64()),
              pa.field("particle", pa.int32()), pa.field("score", pa.float32()),
              pa.field("mask_score", pa.float32()),
              pa.field("track_id", pa.int64())]  # null unless track.enabled (wirewatch.track)
    for name in PARTICLE_COLUMNS:
        kind = pa.bool_() if name == "touches_border" else pa.int64() if name in _INT_COLUMNS else pa.float64()
        fields.append(pa.field(name, kind))
    if masks == "rle":
        fields += [pa.field("mask_height", pa.int32()), pa.field("mask_width", pa.int32()),
                   pa.field("mask_rle", pa.string())]
    return pa.schema(fields, metadata={"wirewatch.particles.version": SCHEMA_VERSION,
                                       "wirewatch.table": "particles"})


def _float(value: Any) -> float | None:
    """A float column's value: NaN and infinities are Arrow nulls, as they are JSON nulls in the record."""
    return None if value is None else finite_or_none(float(value))


def frame_row(result: Any) -> dict[str, Any]:
    """One row of the frames table: what the record line of this frame holds, flattened."""
    row: dict[str, Any] = {"series": result.frame.series_id, "frame": int(result.frame_id),
                           "time": float(result.frame.time), "latency_s": _float(result.latency_s)}
    for name, value in result.stats.aggregates.items():
        row[name] = _float(value)
    return row


def particle_rows(result: Any, masks: MaskFormat = "none") -> dict[str, np.ndarray]:
    """Columns (name -> 1-D array, one entry per particle) of one frame, in the particle table's order.
    Missing scores / descriptors are NaN (written as null); strings are object arrays."""
    stats, det = result.stats, result.detections
    table = stats.particles
    n = len(table.get("area_px", ()))
    index = np.asarray(table.get("mask_index", np.arange(n)), np.int64)

    def pick(values: np.ndarray | None) -> np.ndarray:  # the detector's value for each row's mask
        out = np.full(n, np.nan)
        if values is not None:
            v = np.asarray(values, np.float64)
            ok = index < v.size
            out[ok] = v[index[ok]]
        return out

    cols: dict[str, np.ndarray] = {
        "series": np.full(n, result.frame.series_id, dtype=object), "frame": np.full(n, int(result.frame_id)),
        "time": np.full(n, float(result.frame.time)), "particle": np.arange(n, dtype=np.int32),
        "score": pick(det.scores), "mask_score": pick(det.mask_scores),
        # tracking's ids (int64) or NaN, which particles_table writes as null
        "track_id": (np.asarray(table["track_id"], np.float64) if "track_id" in table else np.full(n, np.nan)),
    }
    for name in PARTICLE_COLUMNS:
        values = table.get(name)
        cols[name] = np.full(n, np.nan) if values is None else np.asarray(values)
    if masks == "rle":
        from wirewatch.coco import encode_mask

        h, w = det.image_shape
        cols["mask_height"] = np.full(n, int(h), np.int32)
        cols["mask_width"] = np.full(n, int(w), np.int32)
        cols["mask_rle"] = np.asarray([encode_mask(det.masks[i])["counts"] for i in index], dtype=object)
    return cols


def particles_table(chunks: Sequence[Mapping[str, np.ndarray]], schema: Any) -> Any:
    """Arrow table of per-frame column chunks (``particle_rows``); NaN becomes null."""
    pa = require_pyarrow()
    arrays = []
    for f in schema:
        parts = [c[f.name] for c in chunks if f.name in c]
        values = np.concatenate(parts) if parts else np.zeros(0)
        if values.dtype == object:
            arrays.append(pa.array(values.tolist(), f.type))
        else:
            arrays.append(pa.array(values, f.type, from_pandas=True))  # from_pandas: NaN -> null
    return pa.Table.from_arrays(arrays, schema=schema)


def write_atomically(table: Any, path: Path, *, compression: str = "zstd") -> int:
    """Write ``table`` to ``path`` durably (``wirewatch.files.write_durably``: a hidden temporary file in the
    same folder, fsync, rename, fsync the folder). Returns the file's size in bytes."""
    import pyarrow.parquet as pq

    write_durably(path, lambda fh: pq.write_table(table, fh, compression=compression))
    return path.stat().st_size


class ParticleWriter:
    """Collects rows frame by frame and writes numbered, atomically renamed parts of two tables
    (``particles``, ``frames``). One writer thread (the pipeline's publish thread); ``close`` is idempotent."""

    def __init__(self, directory: str | Path, *, masks: MaskFormat = "none", roll_frames: int = 500,
                 roll_s: float = 300.0, compression: str = "zstd") -> None:
        self.pa = require_pyarrow()
        if masks not in ("none", "rle"):
            raise ConfigError(f"record.particle_masks must be none or rle, got {masks!r}")
        if roll_frames < 1 or roll_s <= 0:
            raise ConfigError("record.particles_roll_frames must be >= 1 and particles_roll_s > 0")
        self.dir = Path(directory)
        self.masks: MaskFormat = masks
        self.roll_frames = roll_frames
        self.roll_s = roll_s
        self.compression = compression
        self.schema = particle_schema(masks)
        try:
            for sub in ("particles", "frames"):
                (self.dir / sub).mkdir(parents=True, exist_ok=True)
                for stale in (self.dir / sub).glob(".part-*.tmp"):  # the open part of a killed run
                    stale.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot create the particle tables folder {self.dir}: {exc}") from None
        self.next_part = 1 + max((int(m.group(1)) for sub in ("particles", "frames")
                                  for p in (self.dir / sub).iterdir() if (m := _PART.match(p.name))), default=-1)
        self._chunks: list[dict[str, np.ndarray]] = []  # particle columns of each frame of the open part
        self._frames: list[dict[str, Any]] = []
        self._opened = time.monotonic()
        self._retry_at = 0.0
        self.write_errors = 0
        self.frames_lost = 0  # dropped while the disk refused parts for longer than MAX_BACKLOG_PARTS parts
        self.closed = False
        self.parts_written = 0
        self.bytes_written = 0
        self.rows_written = 0
        self.frames_written = 0

    def add(self, result: Any) -> None:
        """Add one processed frame (a ``FrameResult``); writes a part when the roll limit is reached."""
        if self.closed:
            raise InputError(f"particle tables {self.dir} are closed")
        self._chunks.append(particle_rows(result, self.masks))
        self._frames.append(frame_row(result))
        now = time.monotonic()
        if len(self._frames) >= self.roll_frames or now - self._opened >= self.roll_s:
            if now < self._retry_at:
                self._bound_backlog()
                return
            try:
                self.roll()
            except OSError as exc:  # disk full, I/O error: keep the rows, retry later, never raise
                self.write_errors += 1
                self._retry_at = now + RETRY_S
                if self.write_errors == 1 or self.write_errors % 20 == 0:
                    log.error("particle tables %s: cannot write a part (%s); %d frame(s) waiting, retrying in "
                              "%.0f s", self.dir, exc, len(self._frames), RETRY_S)
                self._bound_backlog()

    def _bound_backlog(self) -> None:
        """While parts cannot be written keep at most ``MAX_BACKLOG_PARTS`` parts of rows (memory bound):
        beyond, the oldest frames are dropped and counted in ``frames_lost``."""
        excess = len(self._frames) - MAX_BACKLOG_PARTS * self.roll_frames
        if excess <= 0:
            return
        del self._chunks[:excess]
        del self._frames[:excess]
        self.frames_lost += excess

    @property
    def pending_frames(self) -> int:
        return len(self._frames)

    def roll(self) -> None:
        """Write the open part (particles, then frames) and start a new one; nothing to do when empty."""
        if not self._frames:
            self._opened = time.monotonic()
            return
        name = f"part-{self.next_part:06d}.parquet"
        particles = particles_table(self._chunks, self.schema)
        frames = frames_table(self._frames)
        self.bytes_written += write_atomically(particles, self.dir / "particles" / name,
                                               compression=self.compression)
        self.bytes_written += write_atomically(frames, self.dir / "frames" / name, compression=self.compression)
        self.parts_written += 1
        self.rows_written += particles.num_rows
        self.frames_written += frames.num_rows
        self.next_part += 1
        self._chunks = []
        self._frames = []
        self._opened = time.monotonic()
        self._retry_at = 0.0

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.roll()
        except OSError as exc:
            self.write_errors += 1
            self.frames_lost += len(self._frames)
            log.error("particle tables %s: cannot write the last part (%s): %d frame(s) lost", self.dir, exc,
                      len(self._frames))


def frames_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Arrow table of frame rows; statistics columns float64 (NaN as null), in first-seen order."""
    pa = require_pyarrow()
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    fixed = {"series": pa.string(), "frame": pa.int64(), "time": pa.float64()}
    fields = [pa.field(n, fixed.get(n, pa.float64())) for n in names]
    schema = pa.schema(fields, metadata={"wirewatch.particles.version": SCHEMA_VERSION,
                                         "wirewatch.table": "frames"})
    return pa.Table.from_pydict({n: [r.get(n) for r in rows] for n in names}, schema=schema)


# -- reading back ----------------------------------------------------------------------------------------

def is_dataset(path: str | Path) -> bool:
    """True for a particle tables folder (``DIR/particles`` or ``DIR/frames`` present)."""
    p = Path(path)
    return p.is_dir() and ((p / "particles").is_dir() or (p / "frames").is_dir())


def _read_table(directory: Path, sub: str) -> Any:
    require_pyarrow("reading particle tables")
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = directory / sub
    if not folder.is_dir():
        raise InputError(f"{directory} is not a particle tables folder (no {sub}/ inside)")
    parts = sorted(p for p in folder.iterdir() if _PART.match(p.name))
    tables = []
    for part in parts:
        table = pq.read_table(part)
        meta = table.schema.metadata or {}
        version = meta.get(b"wirewatch.particles.version", b"?").decode()
        if version != SCHEMA_VERSION:
            raise InputError(f"{part}: particle table version {version}, this wirewatch reads {SCHEMA_VERSION}")
        tables.append(table)
    if not tables:
        raise InputError(f"{folder} holds no part-*.parquet file")
    return pa.concat_tables(tables, promote_options="default")


def read_particles(directory: str | Path, columns: Sequence[str] | None = None) -> Any:
    """The whole particle table of a dataset (a ``pyarrow.Table``), parts in order."""
    table = _read_table(Path(directory), "particles")
    return table.select(list(columns)) if columns is not None else table


def read_frames(directory: str | Path) -> Any:
    """The frames table of a dataset (a ``pyarrow.Table``: one row per recorded frame)."""
    return _read_table(Path(directory), "frames")


def frames_as_record(directory: str | Path) -> list[FrameRecord]:
    """The frames table as record lines (``wirewatch.records.FrameRecord``)."""
    out = []
    for row in read_frames(directory).to_pylist():
        frame, time, series = row.pop("frame"), row.pop("time"), row.pop("series")
        latency = row.pop("latency_s", None)
        out.append(FrameRecord(frame=int(frame), time=time, series=series,
                               stats={k: number_or_nan(v) for k, v in row.items()}, latency_s=latency))
    return out


@contextlib.contextmanager
def as_record_file(path: str | Path) -> Iterator[Path]:
    """A record file for ``path``: itself, or for a particle tables folder its frames table written as a
    temporary JSON Lines record (what ``wirewatch changepoints`` reads)."""
    p = Path(path)
    if not is_dataset(p):
        yield p
        return
    with tempfile.TemporaryDirectory(prefix="wirewatch-record-") as tmp:
        out = Path(tmp) / "record.jsonl"
        with out.open("w") as f:
            for line in frames_as_record(p):
                f.write(line.to_line().decode())
        yield out


def read_events(directory: str | Path) -> list[dict[str, Any]]:
    """The events (change points, alerts) of a dataset; a torn last line is ignored."""
    path = Path(directory) / "events.jsonl"
    if not path.is_file():
        return []
    out = []
    for raw in path.read_bytes().split(b"\n"):
        if raw.strip():
            with contextlib.suppress(ValueError):
                out.append(json.loads(raw))
    return out
