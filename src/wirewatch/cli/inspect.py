"""``wirewatch inspect FILE...``: decode captured message files and print what is inside, as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def inspect(
    files: list[Path] = typer.Argument(..., help="Captured messages: .cbor (Stream V2), NAME.json (+ NAME.bin, "
                                                 "array-1.0), .zmsg (any multipart message)."),
    format: str | None = typer.Option(None, "--format", "-f",
                                      help="array-1.0 | stream2 | stream1 | pva (a registered stream format; "
                                      "default: guessed per file)."),
    max_message_mib: int = typer.Option(256, help="Refuse files larger than this (MiB)."),
) -> None:
    """Per message: type, ids and, per channel, shape, dtype, pixel sum, NODATA count, valid sum, sha256."""
    from wirewatch.cli.format_option import check_format
    from wirewatch.epics.pva_format import register_pva_format
    from wirewatch.errors import DecodeError, WirewatchError
    from wirewatch.ingest.describe import describe_file
    from wirewatch.ingest.limits import DecodeLimits, MiB

    register_pva_format()  # captured PV Access updates too (no p4p needed to decode them)
    check_format(format)

    limits = DecodeLimits(max_message_bytes=max_message_mib * MiB)
    report: dict[str, object] = {}
    failed = 0
    for path in files:
        try:
            report[str(path)] = describe_file(path, format, limits)
        except WirewatchError as exc:  # one bad file does not hide the others
            failed += 1
            kind = exc.kind if isinstance(exc, DecodeError) else "unreadable"
            report[str(path)] = {"error": kind, "message": str(exc)}
    typer.echo(json.dumps(report, indent=1))
    if failed:
        raise typer.Exit(1)
