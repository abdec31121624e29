"""A durable on-disk queue: one file per alert body, written atomically, deleted after delivery.

File names are ``<nanoseconds>-<key>.json`` so a directory listing sorted by
name is the send order, and the idempotency key survives a restart with the
body. A write goes to a hidden temporary file, is fsynced, then renamed into
place (and the directory fsynced), so a crash leaves either the whole alert or
nothing; leftover temporary files are removed on open. Every file written
(the alert bodies and the ``.reason`` notes) is written whole (a loop over
short writes) and fsynced, and so is each directory an entry is renamed in or
out of. Undeliverable alerts are moved to ``failed/`` with a ``.reason`` file
for a person to look at; ``failed/`` keeps at most ``max_failed_files``
alerts, the oldest being deleted (and counted) beyond that, so a receiver that
rejects everything cannot fill the disk.
"""

from __future__ import annotations

import contextlib
import errno
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
    def __init__(self, directory: Path, *, max_files: int = 10000, max_failed_files: int = 1000) -> None:
        self.directory = Path(directory)
        self.failed_directory = self.directory / "failed"
        self.max_files = max_files
        self.max_failed_files = max_failed_files
        self.failed_dropped = 0  # alerts deleted from failed/ to keep it within max_failed_files
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
        self._failed = self._failed_entries()
        with self._lock:
            self._trim_failed()

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
                write_durably(tmp, body, exclusive=True)
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
        """Undeliverable: keep it under failed/ with the reason next to it (the oldest beyond
        ``max_failed_files`` are deleted)."""
        with self._lock:
            target = self.failed_directory / entry.path.name
            try:
                write_durably(self.failed_directory / (entry.path.name + ".reason"), (reason + "\n").encode("utf-8"))
                os.replace(entry.path, target)
                self._fsync_directory(self.failed_directory)
                self._fsync_directory()
                if target.name not in self._failed:
                    self._failed.append(target.name)
            except OSError as exc:
                log.error("cannot move %s to %s: %s", entry.path, target, exc)
            self._keys.discard(entry.key)
            self._trim_failed()
            return target

    @property
    def failed_count(self) -> int:
        """Alerts kept in failed/ now."""
        with self._lock:
            return len(self._failed)

    def _failed_entries(self) -> list[str]:
        try:
            names = [p.name for p in self.failed_directory.iterdir() if _ENTRY.match(p.name)]
        except OSError:
            return []
        return sorted(names)  # the nanosecond prefix: oldest first

    def _trim_failed(self) -> None:
        """Delete the oldest failed alerts (and their reasons) beyond ``max_failed_files``; lock held."""
        excess = len(self._failed) - self.max_failed_files
        if excess <= 0:
            return
        dropped, self._failed = self._failed[:excess], self._failed[excess:]
        for name in dropped:
            for path in (self.failed_directory / name, self.failed_directory / (name + ".reason")):
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    log.error("cannot delete %s from the failed alerts: %s", path, exc)
        self.failed_dropped += len(dropped)
        self._fsync_directory(self.failed_directory)
        log.warning("alert spool %s: deleted the %d oldest undeliverable alert(s) from %s to keep at most %d",
                    self.directory, len(dropped), self.failed_directory, self.max_failed_files)

    def _fsync_directory(self, directory: Path | None = None) -> None:
        try:
            fd = os.open(directory or self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written: a write may take fewer bytes than offered (a signal, a
    nearly full disk, some file systems); a write that takes none is an error, not a loop for ever."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, "write took no bytes")
        view = view[n:]


def write_durably(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` (mode 0600) whole, then fsync it. ``exclusive``: the file must be new."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
