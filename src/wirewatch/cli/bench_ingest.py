"""``wirewatch bench ingest``: raw messages per second one ZeroMQ drain thread takes off a socket."""

from __future__ import annotations

import json

import typer


def ingest(
    count: int = typer.Option(20_000, min=100, help="Small messages to send (detector-size: count / 20)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Drain throughput of ZmqSource (PULL, policy latest, no consumer) from a PUSH sender process."""
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from wirewatch.bench.ingest import run_drain_bench

    results = run_drain_bench(count)
    if as_json:
        typer.echo(json.dumps([asdict(r) | {"messages_per_s": r.messages_per_s, "exact": r.exact}
                               for r in results], indent=1))
        return
    table = Table(title="ZeroMQ drain throughput (loopback, sender in its own process)")
    for col in ("messages", "bytes", "sent", "received/s", "MB/s", "dropped", "buffered", "accounting"):
        table.add_column(col)
    for r in results:
        table.add_row(r.name, str(r.message_bytes), str(r.count), f"{r.messages_per_s:,.0f}",
                      f"{r.messages_per_s * r.message_bytes / 1e6:,.0f}", str(r.dropped), str(r.buffered),
                      "exact" if r.exact else "MISMATCH")
    Console().print(table)
