"""``wirewatch bench track``: tracking cost per frame (target <= 2 ms CPU at 100 particles, 512 x 512)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def bench_track(
    particles: int = typer.Option(100, "--particles", help="Wires at the start of the simulated run."),
    size: int = typer.Option(512, "--size", help="Frame side in pixels."),
    frames: int = typer.Option(40, "--frames", help="Frames per pass."),
    passes: int = typer.Option(3, "--passes", help="Passes over the run, each from a fresh tracker."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON."),
) -> None:
    """Time Tracker.update (association, drift, growth) per frame on a simulated run, one thread.

    The target (2 ms) applies to the median process CPU time per frame with drift compensation;
    measure() is not included (bench stats times it).
    """
    import os

    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    import cv2

    from wirewatch.bench.track import run
    from wirewatch.errors import InputError

    cv2.setNumThreads(1)
    if particles < 1 or size < 32 or frames < 2 or passes < 1:
        raise InputError("need --particles >= 1, --size >= 32, --frames >= 2 and --passes >= 1")
    result = run(size=size, particles=particles, frames=frames, passes=passes)
    for label in ("drift", "no_drift"):
        r = result[label]
        typer.echo(f"{label:9s} CPU median {r['cpu_median_ms']:.2f} ms, p90 {r['cpu_p90_ms']:.2f} ms, "
                   f"min {r['cpu_min_ms']:.2f} ms; wall median {r['wall_median_ms']:.2f} ms ({r['calls']} frames)")
    verdict = "met" if result["meets_target"] else "NOT met"
    typer.echo(f"{result['particles_mean']:.0f} particles per frame on average, {size} x {size}; target <= "
               f"{result['target_ms']:.0f} ms CPU median with drift: {verdict}; load average "
               f"{result['load_average_1min'][0]:.1f} -> {result['load_average_1min'][1]:.1f}; "
               f"{result['machine']['cpu']}")
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2))
