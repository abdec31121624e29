"""A durable on-disk queue: one file per alert body, written atomically, deleted after delivery.

File names are ``<nanoseconds>-<key>.json`` so a directory listing sorted by
name is the send order, and the idempotency key survives a restart with the
body. A write goes to a hidden temporary file, is fsynced, then renamed into
place (and the directory fsynced), so a crash leaves either the whole alert or
nothing; leftover temporary files are removed on open. Undeliverable alerts
are moved to ``failed/`` for a person to look at, never silently deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from wirewatch.errors import SinkError

log = logging.getLogger(__name__)

_ENTRY = re.compile(r"^(\d{20})-([0-9a-f]{8,64})\.json$")
_TMP_PREFIX = ".tmp-"
MAX_BODY_BYTES = 1 << 20  # an alert body is a few KiB; anything bigger in the spool is not ours


class SpoolFull(SinkError):
    """The spool holds ``max_files`` alerts already; new ones are refused, old ones are kept."""


@dataclass(frozen=True)
class SpoolEntry:
    path: Path
    key: str
    created_ns: int

    @property
    def age_s(self) -> float:
        return max(0.0, (time.time_ns() - self.created_ns) / 1e9)


class Spool:
    def __init__(self, directory: Path, *, max_files: int = 10000) -> None:
        self.directory = Path(directory)
        self.failed_directory = self.directory / "failed"
        self.max_files = max_files
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.failed_directory.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise SinkError(f"cannot create alert spool directory {self.directory}: {exc.strerror or exc}") from None
        self._lock = threading.Lock()
        self._last_ns = 0
        self._lock_fd: int | None = self._take_directory_lock()
        for leftover in self.directory.glob(_TMP_PREFIX + "*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        self._keys = {e.key for e in self.entries()}

    def _take_directory_lock(self) -> int:
        """Two senders on one spool would deliver every alert twice: refuse the second one."""
        path = self.directory / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SinkError(f"alert spool {self.directory} is in use by another sink or process") from None
        return fd

    def close(self) -> None:
        """Release the directory lock (the spooled files stay for the next start)."""
        with self._lock:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys

    def entries(self) -> list[SpoolEntry]:
        """Spooled alerts, oldest first. Files that are not ours are ignored (and logged once)."""
        out = []
        for path in self.directory.iterdir():
            match = _ENTRY.match(path.name)
            if match and path.is_file():
                out.append(SpoolEntry(path=path, key=match.group(2), created_ns=int(match.group(1))))
        out.sort(key=lambda e: e.path.name)
        return out

    def put(self, key: str, body: bytes) -> bool:
        """Store ``body`` under ``key``; False when that key is already spooled (nothing written).

        Raises SpoolFull when full and SinkError when the disk refuses the write.
        """
        if not re.fullmatch(r"[0-9a-f]{8,64}", key):
            raise ValueError(f"spool key must be 8-64 lowercase hex digits, got {key!r}")
        with self._lock:
            if key in self._keys:
                return False
            if len(self._keys) >= self.max_files:
                raise SpoolFull(f"alert spool {self.directory} is full ({self.max_files} files)")
            ns = max(time.time_ns(), self._last_ns + 1)  # strictly increasing: keeps send order
            self._last_ns = ns
            final = self.directory / f"{ns:020d}-{key}.json"
            tmp = self.directory / f"{_TMP_PREFIX}{ns:020d}-{key}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(fd, body)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, final)
                self._fsync_directory()
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise SinkError(f"cannot write alert to spool {self.directory}: {exc.strerror or exc}") from None
            self._keys.add(key)
            return True

    def read(self, entry: SpoolEntry) -> bytes:
        with entry.path.open("rb") as fh:
            body = fh.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise SinkError(f"spooled alert {entry.path.name} is larger than {MAX_BODY_BYTES} bytes")
        return body

    def remove(self, entry: SpoolEntry) -> None:
        """Delivered: delete it for good (fsync, so a crash right after does not bring it back)."""
        with self._lock:
            with contextlib.suppress(FileNotFoundError):
                entry.path.unlink()
            self._fsync_directory()
            self._keys.discard(entry.key)

    def move_to_failed(self, entry: SpoolEntry, reason: str) -> Path:
        """Undeliverable: keep it under failed/ with the reason next to it."""
        with self._lock:
            target = self.failed_directory / entry.path.name
            try:
                os.replace(entry.path, target)
                (self.failed_directory / (entry.path.name + ".reason")).write_text(reason + "\n", encoding="utf-8")
                self._fsync_directory()
            except OSError as exc:
                log.error("cannot move %s to %s: %s", entry.path, target, exc)
            self._keys.discard(entry.key)
            return target

    def _fsync_directory(self) -> None:
        try:
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
