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
