"""``WatchConfig``: the ``ingest.watch`` section (a folder that instruments write files into)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from wirewatch.config.base import StrictModel

# Names that writers use while a file is still being written (and hidden files): never read.
DEFAULT_IGNORE = ["*.part", "*.partial", "*.tmp", "*.temp", "*.crdownload", "*.filepart", "*.lock", "*~", ".*"]


class WatchConfig(StrictModel):
    """A watched folder: new files are read once each, in order of completion (``docs/ingest.md``)."""

    path: str | None = Field(default=None, description="the folder to watch (``--input DIR``)")
    observer: Literal["inotify", "polling"] = Field(
        default="inotify", description="watchdog's native observer (inotify on Linux) or its PollingObserver "
        "(network file systems, where inotify sees no other host's writes)")
    poll_interval_s: float = Field(default=0.5, gt=0, le=60, description="polling period and the re-check "
                                   "period of files that are still settling")
    settle_s: float = Field(default=2.0, ge=0, le=3600, description="a file is complete once its size and "
                            "mtime stayed the same this long; longer than the writer's longest pause")
    ignore: list[str] = Field(default_factory=lambda: list(DEFAULT_IGNORE),
                              description="glob patterns of names never read (temporary and hidden files)")
    dataset: str | None = Field(default=None, description="HDF5 dataset path; default: the NeXus NXdata signal")
    state_file: Path | None = Field(default=None, description="resume state; default: next to the record "
                                    "(RECORD.folder-state.json), else .wirewatch-folder-state.json in the folder")
    max_read_attempts: int = Field(default=1, ge=1, le=10, description="reads of one unchanged file before it "
                                   "is counted as bad and skipped for good")
