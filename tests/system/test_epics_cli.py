"""The command lines: ``wirewatch simulate --format pva`` -> ``wirewatch run --format pva --pv-prefix`` as real
processes, PVA settings from the environment (loopback, free ports), a p4p client reading the daemon's PVs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("p4p", reason="p4p (the epics extra) is not installed")

from tests.system.test_epics_pva import pva_conf, wait_for
from wirewatch.publish.record import read_record

WIREWATCH = [sys.executable, "-m", "wirewatch"]


def test_simulate_and_run_over_pva_from_the_command_line(tmp_path: Path) -> None:
    from p4p.client.thread import Context

    conf = pva_conf()
    # the default config binds its ZeroMQ PUB to a fixed port (5560), which another process may hold
    env = dict(os.environ, **conf, WIREWATCH_PUBLISH__ZMQ__BIND="tcp://127.0.0.1:*")
    record = tmp_path / "record.jsonl"
    run = subprocess.Popen([*WIREWATCH, "run", "--format", "pva", "--input", "CLI:cam1:Image", "--pv-prefix", "CLI:WW:",
                            "--backend", "watershed", "--record", str(record), "--metrics-port", "0", "--policy", "queue"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sim = None
    try:
        with Context("pva", conf=conf, useenv=False) as ctx:
            wait_for(lambda: _get(ctx, "CLI:WW:status") is not None or run.poll() is not None, timeout=60,
                     what="the daemon's PVs")
            assert run.poll() is None, run.stdout.read() if run.stdout else ""
            sim = subprocess.run([*WIREWATCH, "simulate", "--format", "pva", "--pv", "CLI:cam1:Image", "--frames", "6",
                                  "--rate", "10", "--compression", "bslz4", "--scenario", "demo"],
                                 env=env, capture_output=True, text=True, timeout=120)
            assert sim.returncode == 0, sim.stderr
            assert "sent 6 frames" in sim.stderr
            wait_for(lambda: (_get(ctx, "CLI:WW:frames_processed") or 0) >= 6, timeout=90, what="6 frames")
            count = float(_get(ctx, "CLI:WW:particle_count"))
    finally:
        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=60)
    assert run.returncode == 0, out
    records = list(read_record(record))
    assert [r["frame"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[-1]["stats"]["particle_count"] == count
    assert records[0]["stats"].get("length_nm_mean") is not None  # PixelSizeNm attribute -> pixel size


def test_pva_without_an_input_pv_is_a_clear_error() -> None:
    from wirewatch.config.daemon import DaemonConfig
    from wirewatch.epics.cli import pva_extensions, simulate_pva
    from wirewatch.errors import ConfigError

    cfg = DaemonConfig.model_validate({"segment": {"backend": "watershed"}, "http": {"enabled": False}})
    with pytest.raises(ConfigError, match="--format pva needs --input PV"):
        pva_extensions(cfg, require_input=True)
    with pytest.raises(ConfigError, match="not a valid PV name"):
        pva_extensions(cfg, input_pv="has space", require_input=True)
    assert pva_extensions(cfg) == []  # neither input nor server: the daemon runs without PV Access
    assert [e.name for e in pva_extensions(cfg, input_pv="A:cam1:Image", pv_prefix="A:WW:")] == [
        "pva-input", "pva-server"]
    with pytest.raises(ConfigError, match="needs --pv NAME"):
        simulate_pva(scenario="demo", pv=None, rate=1, frames=1, truth=None, codec="none")


def _get(ctx: object, name: str) -> object:
    try:
        return ctx.get(name, timeout=1.0)  # type: ignore[attr-defined]
    except Exception:
        time.sleep(0.2)
        return None
