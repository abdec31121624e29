"""``wirewatch bench decode``: time to decode one 514 x 1030 Stream V2 frame (target < 5 ms)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def decode(
    repeats: int = typer.Option(200, min=1, help="Timed decodes per input."),
    capture: Path | None = typer.Option(None, help="A Stream V2 .cbor image message to time "
                                                     "(default: the shared EIGER2 capture when present)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Decode time of one 514 x 1030 bslz4 uint16 frame: real capture and synthetic variants."""
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from wirewatch.bench.decode import TARGET_MS, run_decode_bench

    results = run_decode_bench(repeats, capture)
    if as_json:
        typer.echo(json.dumps([asdict(r) | {"meets_target": r.meets_target} for r in results], indent=1))
        return
    table = Table(title=f"Stream V2 decode, 514 x 1030 (target < {TARGET_MS:g} ms)")
    for col in ("input", "bytes", "median ms", "p90 ms", "min ms", "target"):
        table.add_column(col)
    for r in results:
        table.add_row(r.name, str(r.message_bytes), f"{r.median_ms:.2f}", f"{r.p90_ms:.2f}", f"{r.min_ms:.2f}",
                      "ok" if r.meets_target else "MISSED")
    Console().print(table)
