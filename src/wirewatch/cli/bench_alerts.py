"""``wirewatch bench alerts``: per-frame cost of the alerts/publish stage and webhook spool throughput."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def bench_alerts(
    frames: int = typer.Option(5000, min=1, help="Frames pushed through Publisher.publish."),
    alerts: int = typer.Option(200, min=1, help="Alerts sent through the webhook sink."),
    spool_root: Path | None = typer.Option(None, help="Where the temporary spool lives (default: the system "
                                                      "temp dir; put it on the daemon's real disk to time fsync)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Publish-stage cost per frame (target p99 < 1 ms) and webhook spool write / delivery rates."""
    from dataclasses import asdict

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from wirewatch.bench.alerts import bench_publish, bench_webhook

    with Progress(transient=True) as progress:
        task = progress.add_task("publish", total=frames)
        results = [bench_publish(frames, lambda n: progress.advance(task, n))]
        task = progress.add_task("webhook", total=alerts)
        results += bench_webhook(alerts, spool_root, lambda n: progress.advance(task, n))
    if as_json:
        typer.echo(json.dumps([asdict(r) | {"meets_target": r.meets_target} for r in results], indent=1))
        return
    table = Table(title="alerts and publishing")
    for col in ("what", "median", "p99", "unit", "n", "target"):
        table.add_column(col)
    for r in results:
        target = "" if r.target is None else (f"p99 < {r.target:g} {r.unit}: " + ("ok" if r.meets_target else "MISSED"))
        table.add_row(r.name, f"{r.median:.3f}", f"{r.p99:.3f}", r.unit, str(r.n), target)
    Console().print(table)
