"""The installed command's exit codes: a command that ends with typer.Exit(n) exits with n."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_failing_command_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "000001.cbor"
    bad.write_bytes(b"\xff\x00 not a stream message")
    res = subprocess.run([sys.executable, "-m", "wirewatch", "inspect", str(bad), "--format", "stream2"],
                         capture_output=True, text=True, timeout=120)
    # inspect prints its report and raises typer.Exit(1) when a file failed; main() used to drop that code
    assert res.returncode == 1, (res.returncode, res.stderr[-1000:])
    assert '"error"' in res.stdout


def test_a_good_command_exits_zero() -> None:
    res = subprocess.run([sys.executable, "-m", "wirewatch", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0
