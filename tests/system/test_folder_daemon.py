"""``wirewatch run --format folder`` as a real process on a folder that files keep arriving in: some
written slowly in pieces, some through a ``.part`` name, some truncated for good, in every reader's
format; SIGKILL in the middle and a restart. Every complete file is recorded exactly once, every bad
one counted once, none read half-written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.system.folder_files import FORMATS, bars, write_file

from .helpers import wait_for

WIREWATCH = [sys.executable, "-m", "wirewatch"]
PIXEL_NM = 2.0


@dataclass
class Plan:
    name: str
    frames: int
    bars: int
    how: str  # whole | slow | part | truncated


@dataclass
class Writer:
    folder: Path
    scratch: Path
    plans: list[Plan]
    interval: float
    pause: float
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        for plan in self.plans:
            t0 = time.monotonic()
            data = write_file(self.scratch / plan.name, np.stack([bars(plan.bars)] * plan.frames),
                              PIXEL_NM).read_bytes()
            target = self.folder / plan.name
            if plan.how == "slow":  # in 4 pieces, pauses shorter than the settle time
                threading.Thread(target=self._slowly, args=(target, data), daemon=True).start()
            elif plan.how == "part":
                (self.folder / (plan.name + ".part")).write_bytes(data)
                os.rename(self.folder / (plan.name + ".part"), target)
            elif plan.how == "truncated":
                target.write_bytes(data[: int(len(data) * 0.6)])
            else:
                target.write_bytes(data)
            time.sleep(max(0.0, self.interval - (time.monotonic() - t0)))
        time.sleep(4 * self.pause)
        self.done.set()

    def _slowly(self, target: Path, data: bytes) -> None:
        step = -(-len(data) // 4)
        with open(target, "wb") as f:
            for i in range(0, len(data), step):
                f.write(data[i:i + step])
                f.flush()
                time.sleep(self.pause)


class Daemon:
    def __init__(self, folder: Path, record: Path, config: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [*WIREWATCH, "run", "--config", str(config), "--format", "folder", "--input", str(folder),
             "--backend", "watershed", "--record", str(record), "--metrics-port", "0", "--policy", "queue",
             "--publish", "tcp://127.0.0.1:*"], stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.url = wait_for(self._metrics_url, timeout=60, what="the daemon's metrics URL")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def _metrics_url(self) -> str | None:
        for line in list(self.lines):
            m = re.search(r"metrics on (http://\S+/metrics)", line)
            if m:
                return m.group(1)
        if self.proc.poll() is not None:
            raise AssertionError("daemon exited:\n" + "".join(self.lines))
        return None

    def file_errors(self) -> dict[str, float]:
        text = urllib.request.urlopen(self.url, timeout=10).read().decode()
        return {m.group(1): float(m.group(2)) for m in
                re.finditer(r'wirewatch_frame_errors_total\{kind="(file_\w+)"\} (\S+)', text)}

    def stop(self, sig: int) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def _plans(n: int) -> list[Plan]:
    plans = []
    for i in range(n):
        fmt = FORMATS[i % len(FORMATS)]
        how = "slow" if i % 5 == 2 else "truncated" if i % 7 == 4 else "part" if i % 6 == 5 else "whole"
        plans.append(Plan(f"f{i:03d}.{fmt}", frames=2 if i % 3 == 0 else 1, bars=1 + i % 4, how=how))
    return plans


def _config(path: Path, observer: str, settle_s: float) -> Path:
    path.write_text(json.dumps({"ingest": {"watch": {"observer": observer, "settle_s": settle_s,
                                                     "poll_interval_s": 0.1}},
                                "track": {"enabled": True}, "record": {"particles": True}}))
    path.chmod(0o600)
    return path


def _run(tmp_path: Path, n_files: int, interval: float, kill_after_lines: int) -> None:
    folder, scratch = tmp_path / "in", tmp_path / "scratch"
    folder.mkdir()
    scratch.mkdir()
    record, state = tmp_path / "record.jsonl", tmp_path / "record.jsonl.folder-state.json"
    plans = _plans(n_files)
    writer = Writer(folder, scratch, plans, interval=interval, pause=0.2)
    settle = 1.0
    daemon = Daemon(folder, record, _config(tmp_path / "inotify.yaml", "inotify", settle))
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    second = None
    try:
        wait_for(lambda: record.exists() and record.read_text().count("\n") >= kill_after_lines,
                 timeout=60 + 2 * n_files * interval, what="frames recorded before the kill")
        before_kill = daemon.file_errors()
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        bad_before_restart = set(json.loads(state.read_text())["bad"])
        first_run = {json.loads(x)["frame"] for x in record.read_text().splitlines()}
        assert sum(before_kill.values()) <= len(bad_before_restart)
        second = Daemon(folder, record, _config(tmp_path / "polling.yaml", "polling", settle))
        good = [p for p in plans if p.how != "truncated"]
        n_frames = sum(p.frames for p in good)

        def all_done() -> bool:
            if not writer.done.is_set() or not state.exists():
                return False
            saved = json.loads(state.read_text())
            return saved["next_frame"] == n_frames and saved["acked"] == n_frames - 1
        try:
            wait_for(all_done, timeout=60 + 2 * n_files * interval, what="every complete file published")
        except AssertionError:
            raise AssertionError(f"state {state.read_text()}\nlog:\n{''.join(second.lines[-30:])}") from None
        errors = second.file_errors()
        assert second.stop(signal.SIGTERM) == 0
    finally:
        for d in (daemon, second):
            if d is not None and d.proc.poll() is None:
                d.proc.kill()
    saved = json.loads(state.read_text())
    truncated = {p.name for p in plans if p.how == "truncated"}
    assert set(saved["bad"]) == truncated and {v["kind"] for v in saved["bad"].values()} == {"truncated"}
    # counted once: the second run counts only the bad files the first did not get to
    assert errors == ({"file_truncated": float(len(truncated - bad_before_restart))}
                      if truncated - bad_before_restart else {})
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    ids = [ln["frame"] for ln in lines]
    assert len(ids) == len(set(ids)) == n_frames  # exactly once, across the kill
    by_id = {ln["frame"]: ln["stats"] for ln in lines}
    assert set(saved["files"]) == {p.name for p in good}
    for plan in good:  # whole, never half-read: every frame has the file's bars, in nanometres
        entry = saved["files"][plan.name]
        assert entry["frames"] == plan.frames
        for fid in range(entry["first"], entry["first"] + plan.frames):
            stats = by_id[fid]
            assert stats["particle_count"] == plan.bars, (plan, stats["particle_count"])
            assert stats["length_nm_mean"] == pytest.approx(stats["length_px_mean"] * PIXEL_NM)
    slow = [saved["files"][p.name]["first"] for p in good if p.how == "slow"]
    assert slow and all(fid in by_id for fid in slow)
    # tracking on: each particle row has a track id; the bars stay put, so a stack's second page continues
    # the first page's tracks (no births) when one process saw both, and every frame has the tracking
    # statistics (a restarted daemon starts new tracks)
    particles = {ln["frame"]: ln["particles"] for ln in lines}
    for plan in good:
        first = saved["files"][plan.name]["first"]
        assert len(particles[first]["track_id"]) == plan.bars
        if plan.frames == 2 and (first in first_run) == (first + 1 in first_run):
            assert sorted(particles[first + 1]["track_id"]) == sorted(particles[first]["track_id"])
            assert by_id[first + 1]["births"] == 0
    assert all({"births", "deaths", "growth_px_per_frame_median"} <= set(s) for s in by_id.values())


def test_watched_folder_exactly_once_across_sigkill(tmp_path: Path) -> None:
    _run(tmp_path, n_files=25, interval=0.2, kill_after_lines=6)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_watched_folder_five_minutes_one_file_a_second(tmp_path: Path) -> None:
    """The issue's figure: a file every second for 5 minutes, a fifth slow, some truncated, SIGKILL midway."""
    _run(tmp_path, n_files=300, interval=1.0, kill_after_lines=150)
