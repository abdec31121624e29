"""``wirewatch`` itself: the command table, ``--help`` and the exit codes of ``main``."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from wirewatch.cli.app import BENCH_COMMANDS, COMMANDS, app

runner = CliRunner()

TOP = ["synth", "train", "export", "inspect", "run", "simulate", "demo", "alerts", "changepoints", "report",
       "stats", "segment", "evaluate", "serve", "keys"]
BENCH = ["model", "decode", "ingest", "synth", "daemon", "alerts", "particles", "changepoint", "stats", "web",
         "pva", "track"]


def test_the_table_names_every_command_once() -> None:
    assert [name for name, _ in COMMANDS] == TOP
    assert [name for name, _ in BENCH_COMMANDS] == BENCH


def test_help_lists_every_command_and_the_bench_group() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    listed = {line.split()[1] for line in result.output.splitlines() if line.startswith("│ ") and len(line.split()) > 2}
    assert listed >= set(TOP) | {"bench"}
    bench = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "200"})
    assert bench.exit_code == 0
    assert {line.split()[1] for line in bench.output.splitlines()
            if line.startswith("│ ") and len(line.split()) > 2} >= set(BENCH)


def _wirewatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wirewatch", *args], capture_output=True, text=True, timeout=60)


def test_exit_codes_of_main() -> None:
    assert _wirewatch("--version").returncode == 0
    unknown = _wirewatch("no-such-command")  # a usage error: click's code 2 and its message
    assert unknown.returncode == 2 and "No such command" in unknown.stderr
    bad_config = _wirewatch("alerts", "check", "/nonexistent/wirewatch.yaml")  # a WirewatchError: one line, code 2
    assert bad_config.returncode == 2 and bad_config.stderr.startswith("error: ")
    assert "Traceback" not in bad_config.stderr
