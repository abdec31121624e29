"""Logs as container platforms expect (issue 39): JSON lines with ``WIREWATCH_LOG_FORMAT=json`` or
``--log-format json``, the level from ``WIREWATCH_LOG_LEVEL``; real ``wirewatch`` processes, stderr read
as it is written. ``wirewatch alerts test`` against a closed port makes the webhook sink log warnings."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.system.alert_receiver import free_port
from wirewatch.errors import ConfigError
from wirewatch.logsetup import JsonLinesFormatter, level_from

WIREWATCH = [sys.executable, "-m", "wirewatch"]
TOKEN = "tok-for-log-tests-7c1e9a"


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "alerts.yaml"
    config.write_text(json.dumps({"alerts": {"sinks": [{
        "type": "webhook", "url": f"http://127.0.0.1:{free_port()}/hook", "spool_dir": str(tmp_path / "spool"),
        "bearer_token": {"env": "WW_LOG_TEST_TOKEN"}, "backoff_initial_s": 0.05, "backoff_max_s": 0.1}]}}))
    config.chmod(0o600)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WIREWATCH_LOG_")}
    return subprocess.run([*WIREWATCH, *args, "alerts", "test", str(config), "--timeout", "1", "--no-resolve"],
                          env={**environ, "WW_LOG_TEST_TOKEN": TOKEN, **env}, capture_output=True, text=True,
                          timeout=60)


def _json_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_json_lines_from_the_environment_with_the_level_from_the_environment(tmp_path: Path) -> None:
    result = _run(tmp_path, WIREWATCH_LOG_FORMAT="json", WIREWATCH_LOG_LEVEL="warning")
    records = _json_lines(result.stderr)
    assert records, result.stderr
    for record in records:
        assert set(record) >= {"time", "level", "logger", "message", "thread"}
        assert record["time"].endswith("Z") and record["level"] in ("WARNING", "ERROR", "CRITICAL")
    assert any(r["logger"] == "wirewatch.publish.sinks.webhook" and "retrying" in r["message"] for r in records)
    # every log line is JSON (only the command's own report lines are not)
    other = [line for line in result.stderr.splitlines() if line and not line.startswith("{")]
    assert other == ["some sinks did not deliver (webhook alerts stay spooled for the daemon)"]
    assert TOKEN not in result.stderr + result.stdout


def test_log_format_option_and_level(tmp_path: Path) -> None:
    result = _run(tmp_path, "--log-format", "json", WIREWATCH_LOG_LEVEL="ERROR")
    assert all(r["level"] in ("ERROR", "CRITICAL") for r in _json_lines(result.stderr))
    assert "WARNING" not in result.stderr  # the retries' warnings are below the level
    (tmp_path / "text").mkdir()
    text = _run(tmp_path / "text", WIREWATCH_LOG_LEVEL="DEBUG")  # the default format: text
    assert " WARNING wirewatch.publish.sinks.webhook: " in text.stderr
    assert not _json_lines(text.stderr)


def test_a_bad_level_or_format_is_a_one_line_error(tmp_path: Path) -> None:
    result = _run(tmp_path, WIREWATCH_LOG_LEVEL="LOUD")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: WIREWATCH_LOG_LEVEL='LOUD' is not a log level: use one of DEBUG, "
                                     "INFO, WARNING, ERROR, CRITICAL or a number")
    result = _run(tmp_path, "--log-format", "xml")
    assert result.returncode == 2 and "--log-format='xml' is not a log format" in result.stderr


def test_formatter_and_levels() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord("wirewatch.x", logging.ERROR, __file__, 1, "failed: %s", ("a\nb",),
                                   sys.exc_info())
    line = JsonLinesFormatter().format(record)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["message"] == "failed: a\nb" and doc["level"] == "ERROR" and "ValueError: boom" in doc["exception"]
    assert level_from({}) == logging.INFO and level_from({"WIREWATCH_LOG_LEVEL": "debug"}) == logging.DEBUG
    assert level_from({"WIREWATCH_LOG_LEVEL": "ERROR"}, verbose=True) == logging.DEBUG
    assert level_from({"WIREWATCH_LOG_LEVEL": "25"}) == 25
    with pytest.raises(ConfigError, match="not a log level"):
        level_from({"WIREWATCH_LOG_LEVEL": "verbose"})
