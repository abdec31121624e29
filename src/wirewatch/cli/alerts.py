"""``wirewatch alerts ...``: check an alerts config, send a test alert, look into a webhook spool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

alerts_app = typer.Typer(help="Alert rules and sinks: check the config, send a test alert, inspect a spool.",
                         no_args_is_help=True)


def _load_alerts_config(path: Path) -> Any:
    """The ``alerts`` section of a daemon config file, or a file that holds just that section."""
    from wirewatch.config.base import deep_merge, env_overrides, read_yaml, validate
    from wirewatch.publish.config import AlertsConfig

    data = read_yaml(path)
    section = data.get("alerts", data)
    if not isinstance(section, dict):
        from wirewatch.errors import ConfigError

        raise ConfigError(f"{path}: 'alerts' must be a mapping, got {type(section).__name__}")
    section = deep_merge(section, env_overrides().get("alerts", {}))
    return validate(AlertsConfig, section, f"{path} (alerts)")


@alerts_app.command("check")
def check(config: Path = typer.Argument(..., help="Daemon config (its 'alerts:' section) or an alerts-only YAML "
                                                  "file, e.g. config/alerts-example.yaml.")) -> None:
    """Validate the alerts config and show its rules and sinks; secrets must be readable (never printed)."""
    from rich.console import Console
    from rich.table import Table

    from wirewatch.publish.sinks.credentials import load_secret
    from wirewatch.publish.sinks.transport import display_url

    cfg = _load_alerts_config(config)
    console = Console()
    rules = Table("rule", "kind", "condition", "severity", title="rules")
    for rule in cfg.rules:
        condition = {
            "changepoint": lambda r: (f"statistics={r.statistics or 'any'} detectors={r.detectors or 'any'} "
                                      f"|effect|>={r.min_effect_size:g}, resolve after {r.resolve_after_s:g} s"),
            "threshold": lambda r: (f"{r.statistic} outside [{r.min}, {r.max}] for {r.for_frames} frames, "
                                    f"clear after {r.clear_frames}"),
            "no_frames": lambda r: f"no frame for {r.after_s:g} s",
        }[rule.kind](rule)
        rules.add_row(rule.name + ("" if rule.enabled else " (disabled)"), rule.kind, condition,
                      rule.severity or ("from change point" if rule.kind == "changepoint" else "warning"))
    sinks = Table("sink", "type", "url", "details", title="sinks")
    for sink in cfg.sinks:
        details = []
        for field in ("hmac_secret", "bearer_token"):
            ref = getattr(sink, field, None)
            if ref is not None:
                load_secret(ref, f"sink {sink.name}: {field}")  # raises ConfigError naming the file/variable
                details.append(f"{field}: {'file ' + str(ref.file) if ref.file else 'env ' + str(ref.env)} (readable)")
        if sink.type == "webhook":
            details.append(f"spool {sink.spool_dir}")
        sinks.add_row(sink.name, sink.type, display_url(sink.url), "; ".join(details))
    console.print(rules)
    console.print(sinks)
    if cfg.zmq is not None:
        console.print(f"ZeroMQ PUB on {cfg.zmq.bind}: topics {', '.join(cfg.zmq.topics)}"
                      + (" (CURVE)" if cfg.zmq.curve else ""))
    console.print(f"rate limit: {cfg.rate_limit.max_alerts} new alerts per {cfg.rate_limit.per_s:g} s; "
                  f"labels {cfg.labels or '{}'}; {'enabled' if cfg.enabled else 'DISABLED'}")


@alerts_app.command("test")
def send_test(
    config: Path = typer.Argument(..., help="Daemon config or alerts-only YAML file."),
    name: str = typer.Option("WirewatchTestAlert", "--name", help="alertname of the test alert."),
    resolve: bool = typer.Option(True, "--resolve/--no-resolve", help="Also send its resolution."),
    timeout: float = typer.Option(15.0, "--timeout", help="Seconds to wait for delivery."),
) -> None:
    """Send a test alert (severity info) through every configured sink and report what each did."""
    import time

    from prometheus_client import CollectorRegistry

    from wirewatch.publish.build import build_sinks
    from wirewatch.publish.sinks.webhook import WebhookSink
    from wirewatch.types import Alert

    cfg = _load_alerts_config(config)
    if not cfg.sinks:
        typer.echo("no sinks configured: nothing to test", err=True)
        raise typer.Exit(1)
    registry = CollectorRegistry()
    sinks = build_sinks(cfg, registry)
    now = time.time()
    labels = {**cfg.labels, "severity": "info", "test": "true"}
    firing = Alert(name=name, state="firing", labels=labels,
                   annotations={"summary": "wirewatch test alert", "description": "sent by 'wirewatch alerts test'"},
                   starts_at=now)
    for sink in sinks:
        sink.send(firing)
    if resolve:
        resolved = Alert(name=name, state="resolved", labels=labels, annotations=firing.annotations, starts_at=now,
                         ends_at=time.time())
        for sink in sinks:
            sink.send(resolved)
    deadline = time.monotonic() + timeout
    for sink in sinks:
        flush = getattr(sink, "flush", None)
        if flush is not None:
            flush(max(0.1, deadline - time.monotonic()))
    for sink in sinks:
        sink.close(1.0)
    expected = 2 if resolve else 1
    failed = False
    for sink in sinks:
        counts = {result: int(registry.get_sample_value("wirewatch_alerts_sent_total",
                                                        {"sink": sink.name, "result": result}) or 0)
                  for result in ("success", "retry", "failed", "dropped", "spooled")}
        # Alertmanager batches: one success may carry both alerts, so any success with no failure is fine
        ok = counts["success"] > 0 and counts["failed"] == 0 and counts["dropped"] == 0
        if isinstance(sink, WebhookSink):  # one request per alert, each must succeed
            ok = counts["success"] == expected
        failed |= not ok
        summary = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        typer.echo(f"{sink.name}: {'OK' if ok else 'NOT DELIVERED'} ({summary or 'nothing happened'})")
    if failed:
        typer.echo("some sinks did not deliver (webhook alerts stay spooled for the daemon)", err=True)
        raise typer.Exit(1)


@alerts_app.command("spool")
def spool(directory: Path = typer.Argument(..., help="A webhook sink's spool_dir.")) -> None:
    """List the alerts waiting in a webhook spool and those moved to failed/ (with the reason)."""
    import json
    import re
    import time

    from rich.console import Console
    from rich.table import Table

    from wirewatch.errors import InputError

    if not directory.is_dir():
        raise InputError(f"spool directory {directory} does not exist")
    table = Table("where", "age", "alert", "state", "labels", "key", "reason")
    pattern = re.compile(r"^(\d{20})-([0-9a-f]+)\.json$")
    for where, folder in (("pending", directory), ("failed", directory / "failed")):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            match = pattern.match(path.name)
            if not match:
                continue
            age = time.time() - int(match.group(1)) / 1e9
            try:
                alert = json.loads(path.read_bytes())["alert"]
                name, state, labels = alert["name"], alert["state"], alert["labels"]
            except (OSError, ValueError, KeyError, TypeError):
                name, state, labels = "?", "?", "unreadable"
            reason_file = path.with_name(path.name + ".reason")
            reason = reason_file.read_text().strip() if reason_file.exists() else ""
            table.add_row(where, f"{age:.0f} s", name, state, str(labels), match.group(2), reason)
    console = Console()
    if table.row_count:
        console.print(table)
    else:
        console.print(f"{directory}: empty")
