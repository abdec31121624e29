"""The facility catalog: each run becomes a container in a Tiled server, filled as the run goes.

``TiledSink`` is a result sink of the pipeline (like the record and the particle tables), not an alert sink:
it lives here, not in ``publish.sinks`` (which re-exports it from its old place).

Config ``publish.tiled: {uri, api_key | api_key_file, ...}`` (optional extra ``tiled``). The run's container
(key ``container``, default ``wirewatch-<UTC start>``; metadata: model, backend, config hash, start time)
holds three appendable tables, filled in batches of ``batch_frames`` frames:

- ``frames``: one row per processed frame (series, frame, time, latency_s, every record statistic);
- ``particles``: one row per particle (the schema of the Parquet particle tables, docs/CONTRACTS.md);
- ``changepoints``: one row per detected change point (frame, detected_at, delay, statistics, effect size,
  detector, severity).

Never stalls the pipeline: the publish thread only adds rows and hands full batches to a bounded queue
(``queue_batches``; a full queue drops the batch, counted); one worker thread talks to the server, retrying
a failed batch (tenacity: ``retries`` attempts, exponential back-off) before dropping it (counted, logged).
Tiled's own client retries requests that never reached the server; an append whose answer was lost is not
retried by it (appending is not idempotent), so a batch can at worst be missing, never doubled by us.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wirewatch.errors import ConfigError
from wirewatch.publish.config import PublishConfig, TiledConfig  # the publish section (re-exported)

log = logging.getLogger(__name__)

__all__ = ["PublishConfig", "TiledConfig", "TiledSink", "require_tiled"]

EXTRA = "tiled"


def require_tiled() -> Any:
    try:
        import pyarrow  # noqa: F401
        from tiled.client import from_uri
    except ImportError:
        raise ConfigError(f"publish.tiled needs the tiled client, which is not installed: "
                          f"pip install 'wirewatch[{EXTRA}]'") from None
    return from_uri


def _api_key(config: TiledConfig) -> str | None:
    from wirewatch.security import register_secret  # masked should it ever reach a log line

    if config.api_key_file is None:
        if config.api_key:
            register_secret(config.api_key)
        return config.api_key
    try:
        key = config.api_key_file.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError) as exc:
        raise ConfigError(f"publish.tiled.api_key_file {config.api_key_file}: cannot read a key ({exc})") from None
    if not key:
        raise ConfigError(f"publish.tiled.api_key_file {config.api_key_file} is empty")
    register_secret(key)
    return key


@dataclass
class Batch:
    frames: list[dict[str, Any]] = field(default_factory=list)
    particles: list[dict[str, Any]] = field(default_factory=list)  # per-frame column chunks
    changepoints: list[dict[str, Any]] = field(default_factory=list)


class TiledSink:
    """A ``ResultSink`` plus listener (``observe``) writing the run into a Tiled container."""

    name = "tiled"

    def __init__(self, config: TiledConfig, *, masks: str = "none", metadata: Mapping[str, Any] | None = None,
                 registry: Any = None) -> None:
        self._from_uri = require_tiled()
        self.config = config
        self.masks = masks
        self.api_key = _api_key(config)
        self.key = config.container or time.strftime("wirewatch-%Y%m%dT%H%M%SZ", time.gmtime())
        self.metadata = {"wirewatch": True, "started": time.time(), **dict(metadata or {})}
        self._batch = Batch()
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=config.queue_batches)
        self._tables: dict[str, Any] = {}
        self._container: Any = None
        self._closed = False
        self.frames_sent = 0
        self.batches_sent = 0
        self.batches_dropped = 0
        self.frames_dropped = 0
        self._counter: Any = None
        if registry is not None:
            from prometheus_client import Counter

            self._counter = Counter("wirewatch_catalog_frames_total", "Frames handed to the Tiled catalog sink, by "
                                    "result (sent, dropped: queue full or server failing)", ["result"],
                                    registry=registry)
            for r in ("sent", "dropped"):
                self._counter.labels(result=r)
        self._worker = threading.Thread(target=self._run, name="wirewatch-tiled", daemon=True)
        self._worker.start()

    # ResultSink ------------------------------------------------------------------------------------
    def publish(self, result: Any) -> tuple[()]:
        return ()  # rows are taken in observe(), as the particle tables are

    def series(self, event: Any) -> None:
        pass

    # listener (publish thread) ---------------------------------------------------------------------
    def observe(self, result: Any) -> None:
        if self._closed:
            return
        from wirewatch.publish.particles import frame_row, particle_rows
        from wirewatch.publish.products import changepoint_event

        b = self._batch
        b.frames.append(frame_row(result))
        b.particles.append(particle_rows(result, "rle" if self.masks == "rle" else "none"))
        for cp in result.changepoints:
            ev = changepoint_event(cp)
            b.changepoints.append({"frame": ev["frame"], "detected_at": ev["detected_at"], "delay": ev["delay"],
                                   "statistics": ",".join(ev["statistics"]), "effect_size": ev["effect_size"],
                                   "detector": ev["detector"], "severity": ev["severity"]})
        if len(b.frames) >= self.config.batch_frames:
            self._hand_over()

    def _hand_over(self) -> None:
        batch, self._batch = self._batch, Batch()
        if not batch.frames:
            return
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self._drop(batch, "the queue is full (server slow or down)")

    def _drop(self, batch: Batch, why: str) -> None:
        self.batches_dropped += 1
        self.frames_dropped += len(batch.frames)
        if self._counter is not None:
            self._counter.labels(result="dropped").inc(len(batch.frames))
        if self.batches_dropped == 1 or self.batches_dropped % 50 == 0:
            log.warning("tiled %s: dropped a batch of %d frame(s): %s (%d batch(es) dropped so far)",
                        self.config.uri, len(batch.frames), why, self.batches_dropped)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._hand_over()
        deadline = time.monotonic() + self.config.close_timeout_s
        while time.monotonic() < deadline:
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        self._worker.join(max(0.0, deadline - time.monotonic()))
        if self._worker.is_alive():
            log.warning("tiled %s: shutdown timeout; %d batch(es) not sent", self.config.uri, self._queue.qsize())
        log.info("tiled %s: container %s, %d frame(s) sent, %d dropped", self.config.uri, self.key,
                 self.frames_sent, self.frames_dropped)

    # worker thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            try:
                self._send_with_retries(batch)
            except Exception as exc:
                self._drop(batch, f"{type(exc).__name__}: {exc}")
                self._container = None  # reconnect for the next batch
                self._tables = {}
                continue
            self.batches_sent += 1
            self.frames_sent += len(batch.frames)
            if self._counter is not None:
                self._counter.labels(result="sent").inc(len(batch.frames))

    def _send_with_retries(self, batch: Batch) -> None:
        from tenacity import Retrying, stop_after_attempt, wait_exponential

        sent: set[str] = set()  # tables of this batch already appended: not appended twice on a retry
        for attempt in Retrying(stop=stop_after_attempt(self.config.retries), reraise=True,
                                wait=wait_exponential(multiplier=0.5, max=5.0)):
            with attempt:
                self._send(batch, sent)

    def _connect(self) -> Any:
        if self._container is None:
            import httpx

            client = self._from_uri(self.config.uri, api_key=self.api_key, remember_me=False,
                                    timeout=httpx.Timeout(self.config.timeout_s))
            if self.key in client:
                self._container = client[self.key]
            else:
                self._container = client.create_container(self.key, metadata=self.metadata)
            for name in ("frames", "particles", "changepoints"):
                if name in self._container:
                    self._tables[name] = self._container[name]
        return self._container

    def _send(self, batch: Batch, sent: set[str]) -> None:
        import pyarrow as pa

        from wirewatch.publish.particles import frames_table, particle_schema, particles_table

        container = self._connect()
        tables = {"frames": frames_table(batch.frames),
                  "particles": particles_table(batch.particles, particle_schema(
                      "rle" if self.masks == "rle" else "none"))}
        if batch.changepoints:
            tables["changepoints"] = pa.Table.from_pylist(batch.changepoints, schema=changepoint_schema())
        for name, table in tables.items():
            if name in sent or table.num_rows == 0:
                continue
            node = self._tables.get(name)
            if node is None:
                node = container.create_appendable_table(table.schema, key=name)
                self._tables[name] = node
            else:
                table = _conform(table, node)
            node.append_partition(0, table)
            sent.add(name)


def changepoint_schema() -> Any:
    """The changepoints table's schema (built lazily: pyarrow is optional)."""
    import pyarrow as pa

    return pa.schema([("frame", pa.int64()), ("detected_at", pa.int64()), ("delay", pa.int64()),
                      ("statistics", pa.string()), ("effect_size", pa.float64()), ("detector", pa.string()),
                      ("severity", pa.string())])


def _conform(table: Any, node: Any) -> Any:
    """``table`` with the columns of the table already in the catalog (later frames may lack a statistic the
    first batch had, e.g. no ``*_nm`` ones; new ones are left out: an appendable table's schema is fixed)."""
    import pyarrow as pa

    schema = node.structure().arrow_schema_decoded
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names
            else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)
