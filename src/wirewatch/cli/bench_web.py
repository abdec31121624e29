"""``wirewatch bench web``: daemon CPU with browsers watching the live page vs none."""

from __future__ import annotations

import json

import typer


def bench_web(
    rate: float = typer.Option(10.0, help="Frames/s the simulator sends."),
    browsers: int = typer.Option(3, help="Headless Chromium pages watching / during the watched phases."),
    seconds: float = typer.Option(20.0, help="Measured seconds per phase."),
    rounds: int = typer.Option(2, help="Rounds of (no browser, N browsers) phases."),
    backend: str = typer.Option("watershed", "--backend", "-b", help="Segmenter backend of the daemon."),
    watcher: str = typer.Option("chromium", help="chromium (real headless browsers on /) or sse (raw event-stream "
                                "readers: the daemon's side only, without browsers competing for the CPU)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    requests: bool = typer.Option(False, "--requests", help="Measure the HTTP port instead: requests/s and "
                                  "latency of GET /api/status, /metrics, /api/series from keep-alive clients."),
    concurrency: int = typer.Option(8, help="--requests: clients at once."),
) -> None:
    """Measure the daemon's process CPU time with N browsers on / versus none (target: < 5 % more), or
    with --requests the HTTP port's requests/s and latency."""
    import logging

    from rich.console import Console
    from rich.table import Table

    if requests:
        from wirewatch.bench.web_requests import run_request_bench

        results = run_request_bench(concurrency=concurrency, seconds=seconds)
        if as_json:
            typer.echo(json.dumps([r.as_dict() for r in results], indent=1))
            return
        table = Table(title=f"HTTP port: {concurrency} keep-alive clients, {seconds:g} s per path")
        for col in ("path", "requests/s", "p50 ms", "p99 ms", "server CPU ms / request", "errors"):
            table.add_column(col, justify="right")
        for r in results:
            d = r.as_dict()
            table.add_row(r.path, f"{r.rate:.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}",
                          f"{d['server_cpu_ms_per_request']:.3f}", str(r.errors))
        Console().print(table)
        return

    from wirewatch.bench.web import TARGET_EXTRA_CPU, run_web_bench

    logging.getLogger("wirewatch").setLevel(logging.WARNING)
    console = Console(stderr=as_json)
    result = run_web_bench(rate=rate, browsers=browsers, seconds=seconds, rounds=rounds, backend=backend,
                           watcher=watcher,
                           progress=lambda s: console.print(f"[dim]{s}[/]"))
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=1))
        return
    table = Table(title=f"web view CPU cost: {result.backend}, {rate:g} frames/s sent (daemon process CPU time)")
    for col in ("watchers", "seconds", "frames", "overlays", "CPU s", "CPU s / s", "CPU ms / frame",
                "web CPU s", "web ms / frame"):
        table.add_column(col, justify="right")
    for p in result.phases:
        table.add_row(f"{p.watchers} {watcher if p.watchers else ''}", f"{p.seconds:.1f}", str(p.frames),
                      str(p.overlays), f"{p.cpu_s:.2f}", f"{p.cpu_per_s:.3f}", f"{p.cpu_ms_per_frame:.1f}",
                      f"{p.web_cpu_s:.3f}", f"{1e3 * p.web_cpu_s / max(p.frames, 1):.2f}")
    console.print(table)
    ok = result.web_share < TARGET_EXTRA_CPU
    console.print(f"web view CPU with {browsers} watching: {100 * result.web_share:.2f} % of the daemon's CPU per "
                  f"frame (target < {100 * TARGET_EXTRA_CPU:.0f} %): " + ("[green]met[/]" if ok else "[red]not met[/]"))
    console.print(f"whole-process difference, confounded by the load the watchers themselves put on this machine: "
                  f"{100 * result.extra_cpu_per_frame:+.1f} % per frame, {100 * result.extra_cpu_per_s:+.1f} % per "
                  "second")
