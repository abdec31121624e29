"""``wirewatch simulate`` and ``wirewatch run`` as real processes: SIGTERM mid-stream, promtool-clean metrics."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import zmq

from wirewatch.config.daemon import DaemonConfig
from wirewatch.daemon.service import Daemon
from wirewatch.ingest import encode_array10

from .helpers import rods, wait_for

WIREWATCH = [sys.executable, "-m", "wirewatch"]


def _read_endpoint(proc: subprocess.Popen[str], pattern: str, timeout: float = 60) -> str:
    """Read stderr lines until one matches ``pattern``; its first group."""
    assert proc.stderr is not None
    t0 = time.monotonic()
    seen = []
    while time.monotonic() - t0 < timeout:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m.group(1)
    raise AssertionError(f"no line matching {pattern!r} in: {''.join(seen)}")


def test_sigterm_mid_stream_leaves_a_complete_valid_record(tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    sim = subprocess.Popen([*WIREWATCH, "simulate", "--endpoint", "tcp://127.0.0.1:*", "--format", "stream2",
                            "--rate", "8", "--frames", "400", "--scenario", "demo", "--truth",
                            str(tmp_path / "truth.json")], stderr=subprocess.PIPE, text=True)
    daemon = None
    try:
        endpoint = _read_endpoint(sim, r"on (tcp://\S+) ")
        daemon = subprocess.Popen([*WIREWATCH, "run", "--input", endpoint, "--format", "stream2", "--backend",
                                   "watershed", "--record", str(record), "--metrics-port", "0", "--policy",
                                   "queue", "--publish", "tcp://127.0.0.1:*"],
                                  stderr=subprocess.PIPE, text=True)
        _read_endpoint(daemon, r"metrics on (http://\S+)/metrics")
        wait_for(lambda: record.exists() and record.read_text().count("\n") >= 10, timeout=90)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        for proc in (daemon, sim):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    raw = record.read_bytes()
    assert raw.endswith(b"\n")
    lines = [json.loads(x) for x in raw.splitlines()]
    frames = [ln["frame"] for ln in lines]
    assert len(frames) >= 10 and frames == list(range(len(frames)))  # complete, in order, no gaps
    assert all(set(ln) >= {"frame", "time", "series", "stats"} for ln in lines)
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["change_points"] == [75, 150, 225]


def test_bad_config_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from wirewatch.cli.app import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("ingest:\n  polcy: latest\n")
    monkeypatch.setattr(sys, "argv", ["wirewatch", "run", "--config", str(bad)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "ingest.polcy" in err and "Traceback" not in err


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_metrics_pass_promtool_check(tmp_path: Path) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.bind("tcp://127.0.0.1:*")
    endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
    cfg = DaemonConfig.model_validate({
        "ingest": {"endpoint": endpoint, "format": "array-1.0", "policy": "queue"},
        "segment": {"backend": "watershed"}, "http": {"port": 0},
        "publish": {"zmq": {"bind": "tcp://127.0.0.1:*"}},
        "alerts": {"rules": [{"kind": "threshold", "name": "FewParticles", "statistic": "particle_count",
                              "min": 100}]},
    })
    daemon = Daemon(cfg).start()
    try:
        for i in range(5):
            sock.send_multipart(encode_array10(i, rods(i), pixel_size_nm=5.0))
        sock.send_multipart([b"{broken", b""])
        wait_for(lambda: daemon.pipeline.processed == 5)
        body = urllib.request.urlopen(daemon.http.url + "/metrics", timeout=5).read()  # type: ignore[union-attr]
    finally:
        daemon.close()
        sock.close(0)
        ctx.term()
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
    findings = [ln for ln in (check.stdout + check.stderr).decode().splitlines() if ln.strip()]
    # The one known finding: the contracted name wirewatch_particle_count (docs/CONTRACTS.md, used by the
    # deploy rules) ends in _count, which promtool's lint reserves for histograms/summaries.
    known = 'wirewatch_particle_count non-histogram and non-summary metrics should not have "_count" suffix'
    assert [f for f in findings if f != known] == [], findings
    text = body.decode()
    assert 'wirewatch_frame_errors_total{kind="bad_header"} 1.0' in text
    assert "wirewatch_particle_length_mean_meters" in text and "wirewatch_alerts_total" in text


def test_sigkill_then_restart_keeps_the_record_valid_without_duplicates(tmp_path: Path) -> None:
    """Killed with SIGKILL mid-stream, then restarted on the same record while the sender replays the
    series from the start: every line stays valid and no frame id appears twice."""
    from wirewatch.publish.record import read_record

    record = tmp_path / "record.jsonl"
    n = 60
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.bind("tcp://127.0.0.1:*")
    endpoint = push.getsockopt_string(zmq.LAST_ENDPOINT)
    proc = subprocess.Popen([*WIREWATCH, "run", "--input", endpoint, "--format", "array-1.0", "--backend",
                             "watershed", "--record", str(record), "--metrics-port", "0", "--policy", "queue",
                             "--publish", "tcp://127.0.0.1:*"], stderr=subprocess.DEVNULL)
    try:
        sent = 0
        while not (record.exists() and record.read_text().count("\n") >= 5):
            if sent < n:
                push.send_multipart(encode_array10(sent, rods(sent)))  # blocks until the daemon connects
                sent += 1
            time.sleep(0.05)
            assert proc.poll() is None
        proc.kill()  # SIGKILL: no chance to flush anything
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        push.close(0)
    before = read_record(record)
    assert [ln["frame"] for ln in before] == list(range(len(before)))
    # restart in-process on the same record; the sender starts the series again from frame 0
    push = ctx.socket(zmq.PUSH)
    push.bind("tcp://127.0.0.1:*")
    cfg = DaemonConfig.model_validate({
        "ingest": {"endpoint": push.getsockopt_string(zmq.LAST_ENDPOINT), "format": "array-1.0",
                   "policy": "queue"},
        "segment": {"backend": "watershed"}, "record": {"path": str(record)}, "http": {"enabled": False}})
    daemon = Daemon(cfg).start()
    try:
        for i in range(n):
            push.send_multipart(encode_array10(i, rods(i)))
        wait_for(lambda: daemon.pipeline.processed == n - len(before))
    finally:
        daemon.close()
        push.close(0)
        ctx.term()
    frames = [ln["frame"] for ln in read_record(record)]
    assert frames == list(range(n))  # each id once, in order
    assert daemon.registry.get_sample_value("wirewatch_frames_dropped_total", {"reason": "replay"}) == len(before)


def test_file_replay_source_runs_to_the_end_and_stops(tmp_path: Path) -> None:
    """``ingest.source: files`` replays captured DECTRIS messages; the daemon stops by itself at the end."""
    captures = Path(__file__).resolve().parents[3] / "shared" / "data" / "dectris-stream2" / "bslz4_16bit"
    if not captures.is_dir():
        pytest.skip("shared DECTRIS captures not present")
    from wirewatch.publish.record import read_record

    cfg = DaemonConfig.model_validate({
        "ingest": {"source": "files", "path": str(captures), "format": "stream2", "policy": "queue"},
        "preprocess": {"max_side": 256}, "segment": {"backend": "watershed"},
        "record": {"path": str(tmp_path / "r.jsonl")}, "http": {"enabled": False}})
    daemon = Daemon(cfg).start()
    assert daemon.wait(timeout=60)
    assert [ln["frame"] for ln in read_record(tmp_path / "r.jsonl")] == [0, 1, 2]
