"""``FolderSource``: a folder that an instrument writes image files into, read as they complete.

- New files are noticed by ``watchdog`` (its native inotify observer, or its ``PollingObserver`` on
  network file systems where inotify sees no other host's writes) and by one scan at start.
- A file is complete once its size and mtime stayed the same for ``settle_s`` (checked every
  ``poll_interval_s``: a writer that stops writing sends no event) and its name is not a
  temporary one (``ignore``: ``*.part``, ``*~``, dotfiles, ...). Complete files are taken in order
  of completion (mtime, then name), one at a time; a file that changes while it is read is put
  back to settle again.
- Each file goes through the reader of its format (``wirewatch.ingest.readers``) and becomes one
  ``array-1.0`` message per frame (a stack is a movie), with the sample pixel size the file's own
  metadata gives (logged once per file kind) and its acquisition time, else its mtime.
- A file that cannot be read (truncated, unreadable, no image) is counted once through
  ``on_reject("file_<kind>", detail)`` (the daemon's ``wirewatch_frame_errors_total{kind}``),
  remembered as bad and never read again unless it changes.
- Exactly once across restarts: ``folder_state.FolderState`` (frame ids given to each file, the
  highest frame id published, written atomically). ``acknowledge(frame_id)`` is the pipeline
  listener that moves it on.

Pending frames are read from disk when they are wanted, not buffered, so ``stats().buffered`` is 0
and a ``latest`` policy never skips a page of a stack.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wirewatch.errors import DecodeError, InputError
from wirewatch.ingest.base import RawMessage, SourceStats
from wirewatch.ingest.folder_config import WatchConfig
from wirewatch.ingest.folder_state import FolderState
from wirewatch.ingest.formats.array10 import encode_array10
from wirewatch.ingest.limits import ALLOWED_DTYPES, DEFAULT_LIMITS, DecodeLimits
from wirewatch.ingest.readers import read_file, supported

log = logging.getLogger(__name__)
STATE_NAME = ".wirewatch-folder-state.json"


def default_state_path(config: WatchConfig, record_path: str | Path | None) -> Path:
    """``watch.state_file``, else beside the record (``RECORD.folder-state.json``), else in the folder."""
    if config.state_file is not None:
        return Path(config.state_file)
    if record_path is not None:
        record = Path(record_path)
        return record.with_name(record.name + ".folder-state.json")
    assert config.path is not None
    return Path(config.path) / STATE_NAME


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float  # monotonic time since which (size, mtime) did not change


class FolderSource:
    """Watches ``config.path``; the ``Source`` protocol plus ``acknowledge(frame_id)``."""

    format_name = "array-1.0"

    def __init__(self, config: WatchConfig, *, limits: DecodeLimits = DEFAULT_LIMITS,
                 state_path: Path | None = None, on_reject: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not config.path:
            raise InputError("the watched folder needs a path (--input DIR or ingest.watch.path)")
        self.folder = Path(config.path)
        if not self.folder.is_dir():
            raise InputError(f"watched folder not found or not a folder: {self.folder}")
        self.config = config
        self.limits = limits
        self._on_reject = on_reject
        self._clock = clock
        self.state = FolderState.load(state_path if state_path is not None else self.folder / STATE_NAME)
        self._lock = threading.Lock()  # state (acknowledge runs in the publish thread)
        self._wake = threading.Event()
        self._events: set[str] = set()
        self._events_lock = threading.Lock()  # the observer thread adds, get() takes
        self._seen: dict[str, _Seen] = {}
        self._attempts: Counter[str] = Counter()
        self._pending: list[list[bytes]] = []
        self._redo = self.state.unacked()  # files to read again with the frame ids they had
        self._observer: Any = None
        self._closed = False
        self._started = False
        self._delivered = 0
        self._rejected: Counter[str] = Counter()
        self._received_bytes = 0
        self._last_scan = -1e18
        self._last_save = 0.0
        self._dirty = False
        self._logged_sources: set[str] = set()
        self.files_read = 0

    # -- Source protocol -------------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._start_observer()
        self._scan()
        existing = set(self._seen) | set(self._redo)
        with self._lock:
            self.state.prune(existing)
            self.state.save()
        if self._redo:
            log.info("folder: resuming: %d file(s) taken before the restart are read again with their frame "
                     "ids (frames already in the record are skipped)", len(self._redo))

    @property
    def finished(self) -> bool:
        return False  # a watched folder never ends by itself; stop the daemon

    def describe_input(self) -> str:
        return f"watched folder {self.config.path}, image files"

    def stats(self) -> SourceStats:
        rejected = dict(self._rejected)
        return SourceStats(received=self._delivered + sum(rejected.values()), delivered=self._delivered,
                           buffered=0, max_buffered=0, dropped={}, rejected=rejected,
                           received_bytes=self._received_bytes)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._observer is not None:
            try:
                self._observer.stop()
                self._observer.join(timeout=2.0)
            except Exception:  # the observer thread may be gone already
                log.debug("folder observer stop failed", exc_info=True)
        with self._lock:
            self._save(force=True)

    def get(self, timeout: float | None = None) -> RawMessage | None:
        if not self._started:
            self.start()
        deadline = self._clock() + (timeout if timeout is not None else 1e9)
        while not self._closed:
            if self._pending:
                parts = self._pending.pop(0)
                msg = RawMessage(parts=tuple(parts), received_at=time.time(), seq=self._delivered, control=False)
                self._delivered += 1
                self._received_bytes += msg.nbytes
                return msg
            path = self._next_file()
            if path is not None:
                self._take(path)
                continue
            if self._dirty:  # an acknowledgement that the 0.5 s throttle held back
                with self._lock:
                    self._save(force=False)
            left = deadline - self._clock()
            if left <= 0:
                return None
            self._wake.wait(min(left, self.config.poll_interval_s))
            self._wake.clear()
        return None

    # -- the pipeline listener -------------------------------------------------------------------
    def acknowledge(self, frame_id: int) -> None:
        """The pipeline published ``frame_id`` (frames leave in order): every file up to it is done."""
        with self._lock:
            if frame_id > self.state.acked:
                self.state.acked = frame_id
                self._dirty = True
                self._save(force=False)

    # -- internals -------------------------------------------------------------------------------
    def _save(self, *, force: bool) -> None:
        """Caller holds the lock. Acknowledgements are saved at most every 0.5 s (a frame may then be
        offered again after a crash; the record's replay check drops it); new frame ids at once."""
        now = self._clock()
        if force or now - self._last_save >= 0.5:
            try:
                self.state.save()
            except OSError as exc:
                log.error("folder: cannot write the state file %s: %s (a restart may read files again)",
                          self.state.path, exc)
            self._last_save = now
            self._dirty = False

    def _ignored(self, name: str) -> bool:
        if self.state.path is not None and name == self.state.path.name:
            return True
        return any(fnmatch.fnmatch(name, pattern) for pattern in self.config.ignore)

    def _start_observer(self) -> None:
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
        except ImportError:
            raise InputError("a watched folder needs watchdog, which is not installed: "
                             "pip install 'wirewatch[files]'") from None

        source = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.is_directory:
                    return
                with source._events_lock:
                    for p in (event.src_path, getattr(event, "dest_path", "")):
                        if p:
                            source._events.add(os.path.basename(os.fsdecode(p)))
                source._wake.set()

        if self.config.observer == "polling":
            from watchdog.observers.polling import PollingObserver

            observer: Any = PollingObserver(timeout=self.config.poll_interval_s)
        else:
            from watchdog.observers import Observer

            observer = Observer()
        observer.schedule(Handler(), str(self.folder), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def _scan(self) -> None:
        """Every file of the folder (at start, then every 30 s): new candidates, settled already when
        untouched for settle_s."""
        now, wall = self._clock(), time.time()
        self._last_scan = now
        try:
            entries = list(os.scandir(self.folder))
        except OSError as exc:
            log.error("folder: cannot list %s: %s", self.folder, exc)
            return
        for entry in entries:
            if entry.name in self._seen or not entry.is_file() or self._ignored(entry.name):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            age = max(0.0, min(self.config.settle_s, wall - st.st_mtime))
            self._seen[entry.name] = _Seen(st.st_size, st.st_mtime_ns, now - age)

    def _is_new(self, name: str, st: os.stat_result) -> bool:
        with self._lock:
            entry = self.state.files.get(name)
            if entry is not None and (entry["size"], entry["mtime_ns"]) == (st.st_size, st.st_mtime_ns):
                return False  # taken before (done, or in the redo list)
            bad = self.state.bad.get(name)
            return bad is None or (bad.get("size"), bad.get("mtime_ns")) != (st.st_size, st.st_mtime_ns)

    def _next_file(self) -> Path | None:
        """The next file to read: first those to read again after a restart, then the earliest completed."""
        while self._redo:
            name = self._redo.pop(0)
            if (self.folder / name).is_file():
                return self.folder / name
            log.warning("folder: %s was taken before the restart but is gone; its frames are lost", name)
        now = self._clock()
        if now - self._last_scan >= 30.0:  # a safety net for missed events (inotify queue overflow)
            self._scan()
        with self._events_lock:
            names, self._events = self._events, set()
        for name in names:
            if self._ignored(name):
                continue
            self._seen.setdefault(name, _Seen(-1, -1, now))
        ready: list[tuple[int, str]] = []
        for name, seen in list(self._seen.items()):
            try:
                st = os.stat(self.folder / name)
            except OSError:
                del self._seen[name]  # renamed away (a .part renamed to its final name) or deleted
                continue
            if (st.st_size, st.st_mtime_ns) != (seen.size, seen.mtime_ns):
                self._seen[name] = _Seen(st.st_size, st.st_mtime_ns, now)
                continue
            if not self._is_new(name, st):
                del self._seen[name]
                continue
            if st.st_size > 0 and now - seen.since >= self.config.settle_s:
                ready.append((st.st_mtime_ns, name))
        if not ready:
            return None
        ready.sort()
        name = ready[0][1]
        del self._seen[name]
        return self.folder / name

    def _take(self, path: Path) -> None:
        """Read one complete file into pending messages (or count it as bad)."""
        name = path.name
        try:
            before = os.stat(path)
        except OSError:
            return
        if not supported(path):
            self._bad(name, before, "unsupported", f"{name}: no reader for {path.suffix!r}")
            return
        try:
            try:
                images = read_file(path, {"dataset": self.config.dataset})
                frames = [self._checked(frame, name) for frame in images.frames]
            except DecodeError:
                raise
            except Exception as exc:  # a reader library's own bug on an odd file must not stop the daemon
                log.debug("reader failure on %s", name, exc_info=True)
                raise DecodeError("unreadable", f"{name}: {type(exc).__name__}: {exc}") from None
            if not frames:
                raise DecodeError("no_image", f"{name} holds no frames")
        except DecodeError as exc:
            after = _stat(path)
            if after is not None and (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                self._seen[name] = _Seen(after.st_size, after.st_mtime_ns, self._clock())  # still being written
                return
            self._attempts[name] += 1
            if self._attempts[name] < self.config.max_read_attempts:
                self._seen[name] = _Seen(before.st_size, before.st_mtime_ns, self._clock())
                return
            self._bad(name, before, exc.kind, str(exc))
            return
        after = _stat(path)
        if after is None or (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            if after is not None:  # changed while we read it: not complete after all
                self._seen[name] = _Seen(after.st_size, after.st_mtime_ns, self._clock())
            return
        self._attempts.pop(name, None)
        if images.pixel_size_nm is not None and images.pixel_size_from not in self._logged_sources:
            self._logged_sources.add(str(images.pixel_size_from))
            log.info("folder: %s: sample pixel size %.4g nm from the file's %s", name, images.pixel_size_nm,
                     images.pixel_size_from)
        with self._lock:
            entry = self.state.files.get(name)
            if entry is None or (entry["size"], entry["mtime_ns"]) != (before.st_size, before.st_mtime_ns):
                entry = {"first": self.state.next_frame, "frames": len(frames), "size": before.st_size,
                         "mtime_ns": before.st_mtime_ns}
                self.state.files[name] = entry
                self.state.next_frame += len(frames)
                self.state.bad.pop(name, None)
                self._save(force=True)  # the ids must be on disk before any frame leaves
        timestamp = images.time if images.time is not None else before.st_mtime
        first = entry["first"]
        for i, frame in enumerate(frames):
            extra: dict[str, object] = {"file": name, "page": i}
            self._pending.append(encode_array10(first + i, frame, timestamp=timestamp,
                                                pixel_size_nm=images.pixel_size_nm, extra=extra))
        self.files_read += 1

    def _checked(self, image: np.ndarray, name: str) -> np.ndarray:
        if image.ndim != 2 or min(image.shape) < 1:
            raise DecodeError("bad_shape", f"{name}: frame of shape {image.shape}; expected a 2-D image")
        if image.size > self.limits.max_pixels:
            raise DecodeError("oversized", f"{name}: {image.size} pixels, above max_pixels={self.limits.max_pixels}")
        if image.dtype.name not in ALLOWED_DTYPES:
            image = image.astype(np.float32 if image.dtype.kind in "fc" else np.uint16)
        return np.ascontiguousarray(image)

    def _bad(self, name: str, st: os.stat_result, kind: str, detail: str) -> None:
        label = f"file_{kind}"
        self._rejected[label] += 1
        log.warning("folder: skipping %s for good (%s): %s", name, kind, detail)
        with self._lock:
            self.state.bad[name] = {"kind": kind, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            self._save(force=True)
        if self._on_reject is not None:
            self._on_reject(label, detail)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None
