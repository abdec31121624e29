"""``wirewatch bench pva``: decode cost per 512 x 512 uint16 NTNDArray and the update rate the PVA input keeps up with."""

from __future__ import annotations

import json

import typer


def bench_pva(
    repeats: int = typer.Option(200, min=2, help="Timed decodes per codec."),
    rates: str = typer.Option("25,50,100,200,400", help="Update rates to try (Hz), comma-separated, increasing."),
    seconds: float = typer.Option(3.0, min=0.5, help="Length of each rate step."),
    codecs: str = typer.Option("none,bslz4", help="Codecs to measure: none, lz4, bslz4."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """PV Access input: decode cost per frame and the sustained update rate (real p4p server and client on
    loopback, one process; no segmentation)."""
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from wirewatch.bench.pva import decode_cost, sweep
    from wirewatch.epics.cli import require_p4p
    from wirewatch.errors import ConfigError

    require_p4p()
    codec_list = [c.strip() for c in codecs.split(",") if c.strip()]
    for c in codec_list:
        if c not in ("none", "lz4", "bslz4"):
            raise ConfigError(f"--codecs: unknown codec {c!r}; allowed: none, lz4, bslz4")
    try:
        rate_list = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        raise ConfigError(f"--rates must be numbers separated by commas, got {rates!r}") from None
    if not rate_list or any(r <= 0 for r in rate_list):
        raise ConfigError("--rates must be positive")
    console = Console(stderr=True)
    costs = [decode_cost(c, repeats) for c in codec_list]
    results = {}
    for c in codec_list:
        results[c] = sweep(c, rate_list, seconds, progress=lambda r: console.log(
            f"{r.codec} {r.target_hz:g} Hz: received {r.received}/{r.sent}, decoded {r.decoded}, "
            f"dropped {r.dropped}, missed {r.missed}"))
    best = {c: max((r.target_hz for r in rs if r.kept_up), default=0.0) for c, rs in results.items()}
    if as_json:
        typer.echo(json.dumps({"decode": [asdict(c) for c in costs],
                               "rates": {c: [asdict(r) | {"kept_up": r.kept_up} for r in rs] for c, rs in results.items()},
                               "kept_up_hz": best}, indent=1))
        return
    t = Table(title="NTNDArray 512 x 512 uint16: CPU per frame in wirewatch (after p4p received it)")
    for col in ("codec", "payload bytes", "monitor thread ms", "decode median ms", "decode p90 ms"):
        t.add_column(col)
    for cost in costs:
        t.add_row(cost.codec, str(cost.payload_bytes), f"{cost.pack_ms:.3f}", f"{cost.decode_median_ms:.3f}",
                  f"{cost.decode_p90_ms:.3f}")
    Console().print(t)
    t = Table(title="Sustained update rate over loopback PV Access (policy latest, buffer 2)")
    for col in ("codec", "target Hz", "sent", "received", "decoded", "dropped", "missed", "kept up"):
        t.add_column(col)
    for c, rs in results.items():
        for r in rs:
            t.add_row(c, f"{r.target_hz:g}", str(r.sent), str(r.received), str(r.decoded), str(r.dropped),
                      str(r.missed), "yes" if r.kept_up else "no")
    Console().print(t)
    typer.echo("highest rate kept up with: " + ", ".join(f"{c} {v:g} Hz" for c, v in best.items()))
