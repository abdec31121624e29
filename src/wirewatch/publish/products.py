"""The run's data product beside the record: particle tables, an event log and the run's metadata.

``ProductSink`` is a ``ResultSink`` of the pipeline (duck-typed: ``wirewatch.daemon`` is not imported)
that also registers as a listener: the pipeline hands listeners each frame's final result, with the alerts
the sinks raised, which a sink's own ``publish`` does not see yet. So the writing happens in ``observe``
(the publish thread, after every sink) and ``close`` (called once that thread has ended) writes the last
part and the final ``run.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.files import write_durably
from wirewatch.records import changepoint_to_json, json_ready
from wirewatch.types import Alert, ChangePoint

from .particles import SCHEMA_VERSION, ParticleWriter

log = logging.getLogger(__name__)

Counters = Callable[[], Mapping[str, Any]]  # frames processed / dropped / errors at this moment


def changepoint_event(cp: ChangePoint) -> dict[str, Any]:
    """``{"event": "changepoint", ...}``: the fields of ``wirewatch changepoints --json`` plus ``delay``."""
    return {"event": "changepoint", **changepoint_to_json(cp)}


def alert_event(alert: Alert) -> dict[str, Any]:
    out = json_ready(dataclasses.asdict(alert))
    out["fingerprint"] = alert.fingerprint
    return {"event": "alert", **out}


def write_json_atomically(path: Path, doc: Mapping[str, Any]) -> None:
    text = json.dumps(json_ready(dict(doc)), indent=1, allow_nan=False) + "\n"
    write_durably(path, lambda fh: fh.write(text.encode("utf-8")))


def latency_summary(latencies: Sequence[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(np.asarray(latencies, np.float64), [50.0, 99.0])
    return {"p50": float(p50), "p99": float(p99), "max": float(max(latencies))}


class ProductSink:
    """Particle tables (``ParticleWriter``), ``events.jsonl`` and ``run.json`` in one folder."""

    name = "particles"

    def __init__(self, writer: ParticleWriter, *, metadata: Mapping[str, Any] | None = None,
                 counters: Counters | None = None) -> None:
        self.writer = writer
        self.dir = writer.dir
        self.counters = counters
        self.metadata = {"version": SCHEMA_VERSION, "started": time.time(), "ended": None, "status": "running",
                         **dict(metadata or {})}
        self._latencies: list[float] = []
        self._events = open(self.dir / "events.jsonl", "ab")  # noqa: SIM115  (open for the run; closed in close)
        self._closed = False
        write_json_atomically(self.dir / "run.json", self.metadata)

    # ResultSink ------------------------------------------------------------------------------------
    def publish(self, result: Any) -> Sequence[Alert]:
        return ()  # the frame is written in observe(), once it carries every sink's alerts

    def series(self, event: Any) -> None:
        pass

    # listener --------------------------------------------------------------------------------------
    def observe(self, result: Any) -> None:
        if self._closed:
            return
        self._latencies.append(float(result.latency_s))
        self.writer.add(result)  # never raises on I/O errors (counted, retried)
        events = [changepoint_event(cp) for cp in result.changepoints]
        events += [alert_event(a) for a in result.alerts]
        if events:
            data = b"".join(json.dumps(e, allow_nan=False).encode() + b"\n" for e in events)
            try:
                self._events.write(data)
                self._events.flush()  # in the kernel once written: survives the process being killed
            except OSError as exc:
                log.error("particle tables %s: cannot append to events.jsonl: %s", self.dir, exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.writer.close()
        finally:
            with contextlib.suppress(OSError):
                os.fsync(self._events.fileno())
            self._events.close()
            doc = {**self.metadata, "ended": time.time(), "status": "closed",
                   "latency_s": latency_summary(self._latencies), "particles": self.writer.rows_written,
                   "frames_recorded": self.writer.frames_written, "parts": self.writer.parts_written,
                   "bytes": self.writer.bytes_written, "write_errors": self.writer.write_errors,
                   "frames_lost": self.writer.frames_lost}
            if self.counters is not None:
                try:
                    doc.update(self.counters())
                except Exception as exc:  # the metadata must be written even if a counter cannot be read
                    log.warning("particle tables: cannot read the daemon's counters: %r", exc)
            write_json_atomically(self.dir / "run.json", doc)


def registry_counters(registry: Any) -> Counters:
    """Frames processed, dropped (by reason) and errors (by kind) read from a daemon's Prometheus registry."""
    def read() -> dict[str, Any]:
        out: dict[str, Any] = {"frames_processed": 0, "frames_dropped": {}, "frame_errors": {}}
        for family in registry.collect():
            for s in family.samples:
                if s.name == "wirewatch_frames_processed_total":
                    out["frames_processed"] = int(s.value)
                elif s.name == "wirewatch_frames_dropped_total" and s.value:
                    out["frames_dropped"][s.labels.get("reason", "?")] = int(s.value)
                elif s.name == "wirewatch_frame_errors_total" and s.value:
                    out["frame_errors"][s.labels.get("kind", "?")] = int(s.value)
        return out
    return read
