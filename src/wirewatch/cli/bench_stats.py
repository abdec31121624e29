"""``wirewatch bench stats``: ``measure()`` on one synthetic frame of rods (body: ``wirewatch.bench.stats``)."""

from __future__ import annotations

from pathlib import Path

import typer


def bench_stats(
    particles: int = typer.Option(100, "--particles", help="Rods per frame."),
    size: int = typer.Option(512, "--size", help="Frame side in pixels."),
    repeats: int = typer.Option(50, "--repeats", help="Timed calls."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the figures as JSON."),
) -> None:
    """Time measure() on one synthetic frame of rods (target: <= 5 ms CPU for 100 rods at 512 x 512, one core).

    The target applies to the median process CPU time per frame with every thread pool at one
    thread; wall-clock figures are printed too (on a shared machine they measure the neighbours).
    """
    import os

    # One core: thread pools read these when their library loads (before numpy / OpenCV are imported).
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    from wirewatch.bench.stats import run
    from wirewatch.errors import InputError
    from wirewatch.stats import write_json

    if particles < 1 or size < 16 or repeats < 1:
        raise InputError("need --particles >= 1, --size >= 16 and --repeats >= 1")
    with _progress("bench stats", repeats) as update:
        result = run(size=size, particles=particles, repeats=repeats, progress=update)
    verdict = "met" if result["meets_target"] else "NOT met"
    load = result["load_average_1min"]
    typer.echo(f"measure(): {result['particles']} particles, {result['mask_pixels']} mask pixels, {size} x {size}, "
               f"{repeats} calls, one thread\n"
               f"  CPU  median {result['cpu_median_ms']:.2f} ms, p90 {result['cpu_p90_ms']:.2f} ms, "
               f"min {result['cpu_min_ms']:.2f} ms  (target <= {result['target_ms']:.0f} ms CPU median: {verdict})\n"
               f"  wall median {result['median_ms']:.2f} ms, p90 {result['p90_ms']:.2f} ms, min {result['min_ms']:.2f} ms"
               f"  (load average {load[0]:.2f} -> {load[1]:.2f} on {result['cpu_count']} CPUs)\n"
               f"  {result['machine']['cpu']}; numpy {result['machine']['numpy']}, OpenCV {result['machine']['opencv']}")
    if json_out is not None:
        write_json(json_out, result)


class _progress:
    """A rich progress bar as a context manager yielding an ``update(done, total)`` callback."""

    def __init__(self, label: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), transient=True)
        self._task = self._bar.add_task(label, total=total)

    def __enter__(self):  # type: ignore[no-untyped-def]
        self._bar.__enter__()
        return lambda done, _total: self._bar.update(self._task, completed=done)

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(None, None, None)
