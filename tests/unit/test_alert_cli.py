"""``wirewatch alerts check`` and ``wirewatch alerts spool`` (no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from wirewatch.cli.app import app
from wirewatch.errors import ConfigError, InputError
from wirewatch.publish.encode import dumps
from wirewatch.publish.sinks.spool import Spool
from wirewatch.publish.sinks.webhook import idempotency_key, webhook_body
from wirewatch.types import Alert

runner = CliRunner()


def _config(tmp_path: Path, **alerts: object) -> Path:
    path = tmp_path / "wirewatch.yaml"
    path.write_text(yaml.safe_dump({"alerts": alerts}))
    return path


def test_check_lists_rules_and_sinks_without_printing_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WW_CLI_TOKEN", "very-secret-token")
    path = _config(tmp_path, rules=[{"kind": "threshold", "name": "CountLow", "statistic": "particle_count", "min": 5},
                                    {"kind": "no_frames", "name": "NoFrames", "after_s": 30}],
                   sinks=[{"type": "webhook", "url": "http://127.0.0.1:9/x?key=hidden", "spool_dir": str(tmp_path / "s"),
                           "bearer_token": {"env": "WW_CLI_TOKEN"}}])
    result = runner.invoke(app, ["alerts", "check", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("CountLow", "particle_count outside [5.0, None] for 1 frames", "NoFrames", "no frame for 30 s",
                 "webhook", "env WW_CLI_TOKEN (readable)"):
        assert text in result.output
    assert "very-secret-token" not in result.output and "hidden" not in result.output


def test_check_reports_bad_config_and_missing_secret(tmp_path: Path) -> None:
    bad = _config(tmp_path, rules=[{"kind": "threshold", "name": "X", "statistic": "s"}])
    result = runner.invoke(app, ["alerts", "check", str(bad)])
    assert isinstance(result.exception, ConfigError) and "needs 'min', 'max' or both" in str(result.exception)
    missing = _config(tmp_path, sinks=[{"type": "webhook", "url": "http://h/x", "spool_dir": str(tmp_path / "s"),
                                        "hmac_secret": {"file": str(tmp_path / "nokey")}}])
    result = runner.invoke(app, ["alerts", "check", str(missing)])
    assert isinstance(result.exception, ConfigError) and "cannot read secret file" in str(result.exception)


def test_spool_lists_pending_and_failed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    for i, state in enumerate(("firing", "resolved")):
        alert = Alert(name=f"A{i}", state=state, labels={"statistic": "x"}, annotations={}, starts_at=1.0,  # type: ignore[arg-type]
                      ends_at=2.0 if state == "resolved" else None)
        spool.put(idempotency_key(alert), dumps(webhook_body(alert, idempotency_key(alert))))
    spool.move_to_failed(spool.entries()[0], "rejected by http://h/x: HTTP 400")
    spool.close()
    result = runner.invoke(app, ["alerts", "spool", str(tmp_path / "spool")], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {name: [line for line in result.output.splitlines() if f" {name} " in line] for name in ("A0", "A1")}
    assert len(rows["A0"]) == 1 and len(rows["A1"]) == 1
    assert "failed" in rows["A0"][0] and "HTTP 400" in rows["A0"][0] and "firing" in rows["A0"][0]
    assert "pending" in rows["A1"][0] and "resolved" in rows["A1"][0]
    result = runner.invoke(app, ["alerts", "spool", str(tmp_path / "nope")])
    assert isinstance(result.exception, InputError)
