"""``wirewatch bench particles``: disk cost and write time of the per-particle Parquet tables."""

from __future__ import annotations

import json

import typer


def bench_particles(
    frames: int = typer.Option(1000, "--frames", help="Frames written."),
    particles: int = typer.Option(100, "--particles", help="Wires per synthetic frame."),
    size: int = typer.Option(512, "--size", help="Frame side in pixels (matters for the RLE masks)."),
    distinct: int = typer.Option(50, "--distinct", help="Distinct synthetic frames drawn (reused, shuffled)."),
    roll_frames: int = typer.Option(500, "--roll-frames", help="Frames per part file (record.particles_roll_frames)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Bytes on disk per 1000 frames of the particle tables, without and with RLE masks (needs pyarrow)."""
    from wirewatch.bench.particles import bench_particles as run
    from wirewatch.publish.particles import require_pyarrow

    require_pyarrow("wirewatch bench particles")
    rows = run(frames=frames, particles=particles, size=size, distinct=distinct, roll_frames=roll_frames)
    if as_json:
        typer.echo(json.dumps([{"masks": r.masks, "frames": r.frames, "particles_per_frame": r.particles_per_frame,
                                "size": r.size, "bytes": r.bytes, "mb_per_1000_frames": r.mb_per_1000_frames,
                                "bytes_per_particle": r.bytes_per_particle,
                                "write_s_per_part": r.write_s_per_part,
                                "write_cpu_s_per_part": r.write_cpu_s_per_part} for r in rows], indent=1))
        return
    for r in rows:
        typer.echo(f"masks {r.masks}: {r.mb_per_1000_frames:.2f} MB per 1000 frames at {r.particles_per_frame:.0f} "
                   f"particles/frame ({r.bytes_per_particle:.1f} bytes/particle, {r.size} x {r.size} frames); "
                   f"{r.write_s_per_part:.2f} s ({r.write_cpu_s_per_part:.2f} s CPU) to write a {r.roll_frames}-frame "
                   "part")
