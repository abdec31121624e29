"""Build the configured source (ZeroMQ socket or file replay)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from wirewatch.ingest.base import RawMessage, Source
from wirewatch.ingest.config import IngestConfig
from wirewatch.ingest.file_source import FileSource
from wirewatch.ingest.folder import FolderSource, default_state_path
from wirewatch.ingest.zmq_source import ZmqSource


def make_source(config: IngestConfig, *, on_drop: Callable[[str, RawMessage], None] | None = None,
                on_reject: Callable[[str, str], None] | None = None, context: Any = None,
                record_path: str | Path | None = None) -> Source:
    """``ZmqSource`` for ``source: zmq``, ``FileSource`` for ``source: files``, ``FolderSource`` for
    ``source: folder`` (its resume state beside ``record_path`` when given); not started yet."""
    if config.source == "folder":
        return FolderSource(config.watch, limits=config.limits(), on_reject=on_reject,
                            state_path=default_state_path(config.watch, record_path))
    if config.source == "files":
        assert config.path is not None  # the config validator requires it
        return FileSource(config.path, rate=config.rate, loop=config.loop, limits=config.limits(),
                          on_reject=on_reject)
    return ZmqSource(config, context=context, on_drop=on_drop, on_reject=on_reject)
