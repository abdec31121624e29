"""``wirewatch bench changepoint``: update cost per frame and the change-point evaluation table."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import typer


def bench_changepoint(
    frames: int = typer.Option(20000, "--frames", help="Frames of the change-free stream timed for the update cost."),
    quick: bool = typer.Option(False, "--quick", help="Fewer and shorter streams (a smoke run)."),
    no_scenarios: bool = typer.Option(False, "--no-scenarios", help="Skip the simulator scenarios (synthetic signals only)."),
    cache: Path = typer.Option(Path.home() / "wirewatch-runs" / "changepoint-cache", "--cache",
                               help="Where the scenarios' per-frame statistics are cached."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the cost and the table as JSON here."),
    plot: Path | None = typer.Option(None, "--plot", help="PNG: the demo scenario's series with detected and true change points."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML: a daemon config or its 'changepoint' section."),
    statistics: int = typer.Option(0, "--statistics", help="Time update() on this many synthetic statistics "
                                                         "instead of the config's (e.g. 40)."),
) -> None:
    """Amortised cost of the streaming detector (target <= 1 ms/frame) and precision / recall / F1
    at a 10-frame margin, mean delay and false alarms per 1000 change-free frames (targets F1 >= 0.9,
    delay <= 20 frames, <= 1 false alarm / 1000 frames) over synthetic signals and simulated scenarios.

    Scenario statistics are measured from the synthesiser's ground-truth masks (no segmenter).
    """
    import os

    from rich.console import Console
    from rich.table import Table

    from wirewatch.bench.changepoint import (
        TARGET_DELAY,
        TARGET_F1,
        TARGET_FA_PER_1000,
        TARGET_MS_PER_FRAME,
        evaluation_table,
        meets_targets,
        update_cost,
    )
    from wirewatch.cli.changepoints import load_changepoint_config
    from wirewatch.errors import ConfigError

    if frames < 100:
        raise ConfigError(f"--frames must be >= 100, got {frames}")
    cfg = load_changepoint_config(config)
    console = Console(width=max(160, shutil.get_terminal_size().columns))
    console.print(f"change-point benchmark: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
                  "(CPU time is per process; wall times suffer from other jobs)")
    if statistics < 0:
        raise ConfigError(f"--statistics must be >= 1, got {statistics}")
    timed = cfg.with_stats([f"statistic_{i}" for i in range(statistics)]) if statistics else cfg
    cost = update_cost(timed, n_frames=frames)
    ok = cost["cpu_ms_per_frame"] <= TARGET_MS_PER_FRAME
    console.print(f"update(): {cost['cpu_ms_per_frame']:.3f} ms CPU per frame amortised "
                  f"(target <= {TARGET_MS_PER_FRAME:g}: {'PASS' if ok else 'FAIL'}); wall {cost['wall_ms_per_frame']:.3f} "
                  f"ms/frame, p99 {cost['wall_ms_p99']:.2f} ms, max {cost['wall_ms_max']:.2f} ms; "
                  f"{cost['statistics']} statistics, {cost['method']}/{cost['cost']} window {cost['window']} "
                  f"every {cost['every']}, online {cost['online']}; thresholds calibrated in {cost['build_s']:.2f} s")
    with console.status("evaluating") as status:
        rows = evaluation_table(quick=quick, scenarios=not no_scenarios, cache_dir=cache, config=cfg,
                                progress=lambda msg: status.update(f"evaluating: {msg}"))
    table = Table(title=f"change-point evaluation, margin 10 frames (targets: F1 >= {TARGET_F1:g}, delay <= "
                        f"{TARGET_DELAY:g}, false alarms <= {TARGET_FA_PER_1000:g} / 1000 frames)")
    table.add_column("set", justify="left", min_width=40)
    for col in ("streams", "frames", "changes", "detected", "precision", "recall", "F1", "delay",
                "FA / 1000", "ms/frame", "targets"):
        table.add_column(col, justify="right")

    def fmt(value: float, spec: str) -> str:
        return "-" if not math.isfinite(value) else format(value, spec)

    for r in rows:
        verdict = meets_targets(r)
        failed = [k for k, v in verdict.items() if v is False]
        table.add_row(r.name, str(r.streams), str(r.frames), str(r.true_changes), str(r.detections),
                      fmt(r.precision, ".3f") if r.true_changes else "-", fmt(r.recall, ".3f"), fmt(r.f1, ".3f"),
                      fmt(r.mean_delay, ".1f"), fmt(r.false_alarms_per_1000, ".2f"), fmt(r.ms_per_frame, ".3f"),
                      "ok" if not failed else "FAIL " + ",".join(failed))
    console.print(table)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({"update_cost": cost, "table": [r.row() for r in rows],
                                        "targets": {"f1": TARGET_F1, "mean_delay": TARGET_DELAY,
                                                    "false_alarms_per_1000": TARGET_FA_PER_1000,
                                                    "ms_per_frame": TARGET_MS_PER_FRAME}}, indent=2) + "\n")
        console.print(f"wrote {json_out}")
    if plot is not None:
        _plot_demo(plot, cache, cfg)
        console.print(f"wrote {plot}")


def _plot_demo(path: Path, cache: Path, cfg: object) -> None:
    from wirewatch.bench.changepoint_streams import scenario_stream
    from wirewatch.changepoint.evaluate import run_stream
    from wirewatch.changepoint.streaming import build_detector
    from wirewatch.plots.series import plot_series

    stream = scenario_stream("demo", cache_dir=cache)
    result = run_stream(stream, build_detector(cfg.with_stats(list(stream.stats))))  # type: ignore[attr-defined]
    plot_series(stream.frames, dict(stream.stats), path, change_points=list(result.detected), truth=stream.truth,
                title="demo scenario: detected (red) and true (grey) change points")
