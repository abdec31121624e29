"""Atomic file writes: a reader (a dashboard, another process, a crash half-way) never sees half a file.

Written to a temporary file in the same folder, then renamed over the target. ``write_durably`` also
fsyncs the file and its folder, so what it wrote survives a power cut (the run's data products and
resume state); its ``OSError`` reaches the caller as it is, for callers that keep the data and retry. Outputs get the mode
any other new file gets (0644 under the usual umask 022); mkstemp's 0600 is for secrets, and
secrets are written by ``wirewatch.security``, not here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from wirewatch.errors import InputError


def write_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write`` with a binary file handle, then rename the result to ``path``."""
    p = Path(path)
    try:
        fd, tmp = _temporary(p)
    except OSError as exc:
        raise InputError(f"cannot write {p}: {exc}") from None
    return _finish(fd, tmp, p, write, durable=False)


def write_durably(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """``write_atomically``, and the file and its folder fsynced; ``OSError`` (disk full, refused) propagates."""
    p = Path(path)
    fd, tmp = _temporary(p)
    return _finish(fd, tmp, p, write, durable=True)


def fsync_dir(path: str | Path) -> None:
    """Make a folder's entries (a rename into it) durable; a no-op where the filesystem does not allow it."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temporary(p: Path) -> tuple[int, str]:
    p.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)


def _finish(fd: int, tmp: str, p: Path, write: Callable[[BinaryIO], object], *, durable: bool) -> Path:
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as any new file (mkstemp makes 0600)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(p.parent)
    return p


def write_bytes_atomically(path: str | Path, data: bytes) -> Path:
    return write_atomically(path, lambda fh: fh.write(data))


def write_text_atomically(path: str | Path, text: str) -> Path:
    """UTF-8, newlines as given (CSV writers choose their own)."""
    return write_bytes_atomically(path, text.encode("utf-8"))


def _umask() -> int:
    """This process's umask, read without changing it (``os.umask`` sets it, racing other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
