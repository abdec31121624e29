"""``wirewatch bench daemon``: sustained frames/s and p50/p99 frame-to-publish latency, per backend."""

from __future__ import annotations

import json

import typer


def bench_daemon(
    backends: list[str] = typer.Option(["auto", "watershed"], "--backend", "-b",
                                       help="Backends to measure (repeat the option); auto = the shipped model "
                                            "when installed."),
    size: int = typer.Option(512, help="Frame side in pixels."),
    rate: float = typer.Option(10.0, help="Frames/s sent (above capacity measures the sustained rate)."),
    seconds: float = typer.Option(30.0, help="Measured seconds per backend (after warm-up)."),
    warmup: float = typer.Option(5.0, help="Warm-up seconds not measured."),
    decode: bool = typer.Option(True, "--decode/--no-decode", help="Also time one 514 x 1030 bslz4 decode."),
    model: str | None = typer.Option(None, "--model", help="Model file or shipped name for the ONNX backend."),
    option: list[str] = typer.Option([], "--option", "-o",
                                     help="Segment backend option key=value (repeatable), e.g. threads=1, "
                                          "spinning=true, replicas=2 (backend ray): the daemon's segment.options."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Run the whole daemon against a loopback sender and report throughput and latency."""
    import logging
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from wirewatch.bench.daemon import TARGET_FPS, TARGET_P99_S, bench_frames, run_daemon_bench
    from wirewatch.cli.backends import parse_options

    logging.getLogger("wirewatch").setLevel(logging.WARNING)
    options = parse_options(option)
    frames = bench_frames(size)
    results = [run_daemon_bench(None if b == "auto" else b, size=size, rate=rate, seconds=seconds,
                                warmup_s=warmup, frames=frames, model=model if b != "watershed" else None,
                                options=options if b != "watershed" else None) for b in backends]
    decode_rows = []
    if decode:
        from wirewatch.bench.decode import run_decode_bench

        decode_rows = run_decode_bench(100)
    if as_json:
        typer.echo(json.dumps({"daemon": [asdict(r) | {"meets_target": r.meets_target} for r in results],
                               "decode": [asdict(r) | {"meets_target": r.meets_target} for r in decode_rows]},
                              indent=1))
        return
    table = Table(title=f"daemon at {size} x {size}, {rate:g} frames/s offered, policy latest "
                        f"(target >= {TARGET_FPS:g} frames/s, p99 < {TARGET_P99_S:g} s)")
    for col in ("backend", "frames/s", "latency p50", "latency p99", "segment p50", "sent", "processed",
                "dropped", "particles", "target"):
        table.add_column(col)
    for r in results:
        table.add_row(f"{r.backend}{f' ({r.model})' if r.model else ''}", f"{r.fps:.2f}",
                      f"{r.latency_p50_s:.3f} s", f"{r.latency_p99_s:.3f} s", f"{r.segment_p50_s:.3f} s",
                      str(r.frames_sent), str(r.frames_processed), str(r.frames_dropped),
                      f"{r.particles_mean:.1f}", "ok" if r.meets_target else "MISSED")
    console = Console(width=max(Console().width, 150))
    console.print(table)
    for r in results:
        stages = ", ".join(f"{k} {v * 1000:.1f}" for k, v in r.stages_p50_s.items())
        console.print(f"{r.backend}{f' {r.options}' if r.options else ''}: per-stage p50 ms: {stages}; "
                      f"CPU {r.cpu_cores_used:.2f} cores, {r.cpu_s_per_frame:.3f} CPU s/frame; "
                      f"load average {r.load_average[0]:.1f} -> {r.load_average[1]:.1f}")
        if r.replicas is not None:  # backend ray (CPU above: the daemon process only, not the replicas)
            console.print(f"{r.backend}: {r.replicas} replica(s) served frames, Ray overhead p50 "
                          f"{r.ray_overhead_p50_s * 1000:.1f} ms/frame, {r.frames_failed} frame(s) failed, "
                          f"Ray + Serve + replicas started in {r.ray_startup_s:.1f} s, "
                          f"{r.replicas_busy:.2f} replicas segmenting at once on average")
    for d in decode_rows:
        console.print(f"decode {d.name}: median {d.median_ms:.2f} ms, p90 {d.p90_ms:.2f} ms "
                      f"({'ok' if d.meets_target else 'MISSED'} < 5 ms)")
