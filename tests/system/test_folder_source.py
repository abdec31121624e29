"""``FolderSource`` in-process on a real folder with real watchdog observers: settling, temporary names,
order of completion, bad files counted once, resume after a restart with the same frame ids."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.system.folder_files import bars, write_file
from wirewatch.ingest.decoders import make_decoder
from wirewatch.ingest.folder import FolderSource
from wirewatch.ingest.folder_config import WatchConfig
from wirewatch.types import Frame

SETTLE = 0.6


def _source(folder: Path, state: Path, rejects: list[tuple[str, str]] | None = None,
            observer: str = "inotify") -> FolderSource:
    cfg = WatchConfig(path=str(folder), settle_s=SETTLE, poll_interval_s=0.1, observer=observer)  # type: ignore[arg-type]
    src = FolderSource(cfg, state_path=state,
                       on_reject=(lambda k, d: rejects.append((k, d))) if rejects is not None else None)
    src.start()
    return src


def _frames(src: FolderSource, n: int, timeout: float = 15.0) -> list[Frame]:
    decoder = make_decoder("array-1.0")
    out: list[Frame] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        msg = src.get(timeout=0.2)
        if msg is not None:
            out += [e for e in decoder.decode(msg.parts, msg.received_at) if isinstance(e, Frame)]
    return out


def _bar_count(frame: Frame) -> int:
    return int((np.asarray(frame.image)[:, 30] > 0).sum() // 6)


def _write_slowly(path: Path, data: bytes, pieces: int, pause: float) -> None:
    step = -(-len(data) // pieces)
    with open(path, "wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i:i + step])
            f.flush()
            time.sleep(pause)


@pytest.mark.parametrize("observer", ["inotify", "polling"])
def test_files_complete_in_order_and_unfinished_ones_wait(tmp_path: Path, observer: str) -> None:
    folder, scratch = tmp_path / "in", tmp_path / "scratch"
    folder.mkdir()
    scratch.mkdir()
    src = _source(folder, tmp_path / "state.json", observer=observer)
    try:
        slow = write_file(scratch / "a_slow.mrc", np.stack([bars(1)]), 3.0).read_bytes()
        writer = threading.Thread(target=_write_slowly, args=(folder / "a_slow.mrc", slow, 5, 0.25))
        writer.start()  # started first, finishes last (~1.25 s): must come after the others
        time.sleep(0.1)
        write_file(folder / "b.nxs", np.stack([bars(2), bars(3)]), 3.0)
        time.sleep(0.05)
        part = write_file(scratch / "c.ome.tif", np.stack([bars(4)]), 3.0)
        (folder / "c.ome.tif.part").write_bytes(part.read_bytes())  # a temporary name: never read as such
        (folder / ".hidden.tif").write_bytes(b"not even a tiff")
        time.sleep(0.3)
        os.rename(folder / "c.ome.tif.part", folder / "c.ome.tif")
        writer.join()
        frames = _frames(src, 4)
        assert [_bar_count(f) for f in frames] == [2, 3, 4, 1]  # b (2 pages), c, then the slow a
        assert [f.frame_id for f in frames] == [0, 1, 2, 3]
        assert all(f.pixel_size_nm == pytest.approx(3.0) for f in frames)
        assert src.get(timeout=SETTLE + 0.5) is None  # nothing else (not the dotfile, not the .part)
        assert src.stats().rejected == {} and src.stats().delivered == 4
    finally:
        src.close()


def test_a_bad_file_is_counted_once_even_across_restarts(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    state = tmp_path / "state.json"
    full = write_file(tmp_path / "x.nxs", np.stack([bars(2)]), 1.0).read_bytes()
    (folder / "cut.nxs").write_bytes(full[: len(full) // 2])
    write_file(folder / "good.mrc", np.stack([bars(1)]), 1.0)
    rejects: list[tuple[str, str]] = []
    src = _source(folder, state, rejects)
    frames = _frames(src, 1)
    assert src.get(timeout=SETTLE * 3) is None  # the bad file is not retried
    src.acknowledge(frames[0].frame_id)
    src.close()
    assert [k for k, _ in rejects] == ["file_truncated"] and "cut.nxs" in rejects[0][1]
    assert json.loads(state.read_text())["bad"]["cut.nxs"]["kind"] == "truncated"

    again: list[tuple[str, str]] = []
    src = _source(folder, state, again)
    try:
        assert src.get(timeout=SETTLE * 3) is None and again == []  # neither re-counted nor re-read
        (folder / "cut.nxs").write_bytes(full)  # the writer finished it after all: a new version, read
        frames = _frames(src, 1)
        assert [_bar_count(f) for f in frames] == [2] and again == []
    finally:
        src.close()


def test_restart_resumes_after_the_last_published_frame_with_the_same_ids(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    state = tmp_path / "state.json"
    for i, name in enumerate(["f1.tif", "f2.tif", "f3.tif"]):
        write_file(folder / name, np.stack([bars(i + 1)]), 2.0)
        time.sleep(0.02)  # distinct mtimes: completion order f1, f2, f3
    src = _source(folder, state)
    frames = _frames(src, 3)
    assert [(f.frame_id, _bar_count(f)) for f in frames] == [(0, 1), (1, 2), (2, 3)]
    src.acknowledge(0)  # the pipeline published frame 0 only, then the daemon died
    src.close()

    src = _source(folder, state)
    try:
        write_file(folder / "f4.tif", np.stack([bars(4)]), 2.0)
        frames = _frames(src, 3)
        # f2 and f3 again with their ids (the record drops what it already holds), then f4 continues
        assert [(f.frame_id, _bar_count(f)) for f in frames] == [(1, 2), (2, 3), (3, 4)]
    finally:
        src.close()
    saved = json.loads(state.read_text())
    assert saved["next_frame"] == 4 and sorted(saved["files"]) == ["f1.tif", "f2.tif", "f3.tif", "f4.tif"]
