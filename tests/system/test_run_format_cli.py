"""``wirewatch run --format``: a bad value is a usage error naming the flag and every allowed value (the
registered stream formats plus pva and folder); ``--format pva`` logs the PV Access input it reads;
``wirewatch inspect`` reads a captured PV Access update (the pva format from the registry)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wirewatch.ingest.capture import write_capture
from wirewatch.ingest.formats import format_names

from .test_daemon_cli import _read_endpoint

WIREWATCH = [sys.executable, "-m", "wirewatch"]


def test_bad_format_names_the_flag_and_every_allowed_value() -> None:
    proc = subprocess.run([*WIREWATCH, "run", "--format", "nonsense"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    err = proc.stderr
    assert "Invalid value for '--format': 'nonsense' is not a stream format; allowed: " in err
    assert err.split("allowed: ", 1)[1].strip() == ", ".join(dict.fromkeys([*format_names(), "pva", "folder"]))
    assert "default.yaml" not in err and "ingest.format" not in err  # not blamed on the shipped config


def test_simulate_bad_format_lists_pva_too() -> None:
    proc = subprocess.run([*WIREWATCH, "simulate", "--format", "nonsense"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.split("Invalid value for '--format': 'nonsense' is not a stream format; allowed: ", 1)[1] \
        .strip() == ", ".join(dict.fromkeys([*format_names(), "pva"]))


def test_help_offers_every_registered_format() -> None:
    out = subprocess.run([*WIREWATCH, "run", "--help"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "400", "TERM": "dumb", "NO_COLOR": "1"}).stdout
    for name in (*format_names(), "pva", "folder"):
        assert name in out


def test_format_pva_logs_the_pv_access_input() -> None:
    pytest.importorskip("p4p")
    env = {**os.environ, "EPICS_PVA_ADDR_LIST": "127.0.0.1", "EPICS_PVA_AUTO_ADDR_LIST": "NO"}
    proc = subprocess.Popen([*WIREWATCH, "run", "--format", "pva", "--input", "WWTEST:NoSuch:Image", "--backend",
                             "watershed", "--metrics-port", "0"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = _read_endpoint(proc, r"(daemon running: .*)")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "input PV Access monitor of WWTEST:NoSuch:Image, format pva, policy latest" in line
    assert "pull" not in line and "pva://" not in line and "stream2" not in line


def test_inspect_guesses_a_captured_pva_update(tmp_path: Path) -> None:
    from wirewatch.epics.pva_format import register_pva_format

    image = np.arange(30, dtype=np.uint16).reshape(5, 6)
    (parts,) = register_pva_format().encode_series([image], first_frame=4)
    path = write_capture(tmp_path / "update", parts, "pva")
    proc = subprocess.run([*WIREWATCH, "inspect", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)[str(path)]
    assert (report["type"], report["frame"]) == ("pva", 4)
    assert report["channels"]["value"]["shape"] == [5, 6] and report["channels"]["value"]["sum"] == 435
