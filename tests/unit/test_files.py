"""Atomic writes: ordinary file modes, and a failed write leaves the old file and no temporary behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wirewatch.files import write_atomically, write_text_atomically
from wirewatch.stats import write_csv


def test_outputs_get_the_umask_mode_not_mkstemps_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        text = write_text_atomically(tmp_path / "a.json", "{}\n")
        table = write_csv(tmp_path / "particles.csv", ["area_px"], [{"area_px": 3}])
    finally:
        os.umask(old)
    assert stat.S_IMODE(text.stat().st_mode) == 0o644
    assert stat.S_IMODE(Path(table).stat().st_mode) == 0o644
    assert table.read_text() == "area_px\n3\n"


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = write_text_atomically(tmp_path / "record.json", "old\n")

    def half_then_fail(fh: object) -> None:
        fh.write(b"new, half")  # type: ignore[attr-defined]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(target, half_then_fail)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_durable_writes_are_fsynced_and_let_the_os_error_through(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import wirewatch.files as files

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    target = files.write_durably(tmp_path / "part.bin", lambda fh: fh.write(b"abc"))
    assert target.read_bytes() == b"abc" and len(synced) == 2  # the file, then its folder
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~files._umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part.bin"]
    # a folder that cannot be made (its parent is a file, refused even to root): the caller, which keeps its
    # data and retries, gets the OSError itself, not write_atomically's InputError
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(OSError):
        files.write_durably(tmp_path / "a-file" / "x.bin", lambda fh: fh.write(b"x"))
