"""``wirewatch bench synth``: synthesiser speed (images/s) per preset, 1 and 2 workers."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def bench_synth(
    count: int = typer.Option(100, "--count", "-n", help="Images per measurement."),
    size: int = typer.Option(512, "--size", help="Image side in pixels."),
    presets: str = typer.Option("all", "--presets", help="Comma-separated presets, or 'all'."),
    workers: str = typer.Option("1,2", "--workers", help="Comma-separated worker counts for the dataset runs."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the rows as JSON here."),
) -> None:
    """Images per second of `wirewatch synth`: in-memory rendering and full dataset writing.

    The default preset's target is >= 25 images/s at 512 x 512 on a 2-core machine.
    """
    import os

    from rich.console import Console
    from rich.table import Table

    from wirewatch.bench.synth import TARGET_IMAGES_PER_S, as_dicts, run
    from wirewatch.errors import ConfigError
    from wirewatch.synth.config import preset_names

    names = preset_names() if presets == "all" else [p.strip() for p in presets.split(",") if p.strip()]
    bad = [p for p in names if p not in preset_names()]
    if bad:
        raise ConfigError(f"--presets: unknown {', '.join(bad)}; allowed presets: {', '.join(preset_names())}")
    try:
        worker_counts = [int(w) for w in workers.split(",")]
    except ValueError:
        raise ConfigError(f"--workers must be comma-separated integers, got {workers!r}") from None
    if any(w < 1 for w in worker_counts):
        raise ConfigError(f"--workers must all be >= 1, got {workers!r}")
    if count < 1:
        raise ConfigError(f"--count must be >= 1, got {count}")
    if not 16 <= size <= 8192:
        raise ConfigError(f"--size must be between 16 and 8192 pixels, got {size}")
    console = Console()
    console.print(f"synth benchmark: {count} images per row, {size} x {size}, {os.cpu_count()} CPUs "
                  f"(load average {os.getloadavg()[0]:.2f})")
    rows = run(names, size, count, worker_counts)
    table = Table(title=f"wirewatch synth at {size} x {size} (target: ptychography >= {TARGET_IMAGES_PER_S:g} img/s)")
    for col in ("preset", "mode", "workers", "img/s", "ms/img", "img/CPU-s", "wires/img"):
        table.add_column(col, justify="left" if col in ("preset", "mode") else "right", no_wrap=True)
    for r in rows:
        per_cpu = "-" if r.images_per_cpu_s is None else f"{r.images_per_cpu_s:.1f}"
        table.add_row(r.preset, r.mode, str(r.workers), f"{r.images_per_s:.1f}", f"{1000 / r.images_per_s:.1f}",
                      per_cpu, f"{r.wires_per_image:.1f}")
    console.print(table)
    console.print("img/s: wall clock (other jobs on a shared machine lower it). img/CPU-s: per CPU-second of "
                  "this process, what one idle core gives (in-process rows only). 2 workers include pool start-up.")
    if json_out is not None:
        json_out.write_text(json.dumps(as_dicts(rows), indent=2) + "\n")
