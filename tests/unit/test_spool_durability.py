"""The webhook spool's durability (issue 39): short writes completed, every file and directory fsynced
(the ``.reason`` note included), ``failed/`` bounded with the oldest deleted and counted. Real files; the
faults (a short write) are injected at the ``os.write`` seam."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wirewatch.publish.sinks.spool import Spool, write_all

BODY = b'{"version":1,"status":"firing","alert":{"name":"X"}}' * 20


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    sizes: list[int] = []

    def short_write(fd: int, data: bytes | memoryview) -> int:  # a disk that takes 7 bytes at a time
        n = real_write(fd, bytes(data[:7]))
        sizes.append(n)
        return n

    spool = Spool(tmp_path / "spool")
    monkeypatch.setattr(os, "write", short_write)
    assert spool.put("aaaaaaaa", BODY)
    entry = spool.entries()[0]
    spool.move_to_failed(entry, "rejected by http://x/: HTTP 400: " + "why " * 10)
    monkeypatch.undo()
    assert len(sizes) > len(BODY) // 7  # many partial writes happened
    failed = tmp_path / "spool" / "failed" / entry.path.name
    assert failed.read_bytes() == BODY  # one os.write kept only the first 7 bytes before
    assert (failed.parent / (failed.name + ".reason")).read_text().startswith("rejected by http://x/: HTTP 400: why")


def test_a_write_that_takes_nothing_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        monkeypatch.setattr(os, "write", lambda fd, data: 0)
        with pytest.raises(OSError, match="took no bytes"):
            write_all(fd, b"abc")
    finally:
        os.close(fd)


def test_every_file_and_directory_written_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path / "spool")
    real_fsync = os.fsync
    synced: list[str] = []

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    spool.put("bbbbbbbb", BODY)
    entry = spool.entries()[0]
    after_put = list(synced)
    spool.move_to_failed(entry, "expired")
    moved = synced[len(after_put):]
    monkeypatch.undo()
    directory = str((tmp_path / "spool").resolve())
    failed_dir = directory + "/failed"
    assert any(p.startswith(directory + "/.tmp-") for p in after_put)  # the body, before its rename
    assert after_put[-1] == directory  # the rename into place
    reason = f"{failed_dir}/{entry.path.name}.reason"
    assert reason in moved  # was written without fsync before
    assert failed_dir in moved and directory in moved  # both directories of the rename
    assert moved.index(reason) < moved.index(failed_dir)


def test_failed_directory_keeps_the_newest_within_its_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_failed_files=3)
    keys = [f"{i:08x}" for i in range(1, 7)]
    for key in keys:
        spool.put(key, BODY)
    for entry in spool.entries():
        spool.move_to_failed(entry, f"rejected {entry.key}")
    failed = tmp_path / "spool" / "failed"
    kept = sorted(p.name for p in failed.glob("*.json"))
    assert [name.split("-")[1].split(".")[0] for name in kept] == keys[3:]  # the oldest three deleted
    assert sorted(p.name for p in failed.glob("*.reason")) == [n + ".reason" for n in kept]
    assert spool.failed_count == 3 and spool.failed_dropped == 3
    spool.close()
    # a reopened spool with a lower bound trims what an earlier run left
    again = Spool(tmp_path / "spool", max_failed_files=1)
    assert again.failed_count == 1 and again.failed_dropped == 2
    assert [p.name for p in failed.glob("*.json")] == [kept[-1]]
    again.close()
