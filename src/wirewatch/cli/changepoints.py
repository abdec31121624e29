"""``wirewatch changepoints``: run the streaming change detector over a record file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import typer

from wirewatch.errors import ConfigError


def load_changepoint_config(path: Path | None, environ: dict[str, str] | None = None) -> Any:
    """The ``changepoint`` section: from a YAML file (a whole daemon config or just the section),
    then ``WIREWATCH_CHANGEPOINT__...`` environment variables; validated (unknown keys are errors)."""
    from wirewatch.changepoint.config import ChangepointConfig
    from wirewatch.config.base import deep_merge, env_overrides, read_yaml, validate

    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    if "changepoint" in data:
        section = data["changepoint"]
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: 'changepoint' must be a mapping of keys")
        data = section
    env = env_overrides(environ).get("changepoint", {})
    if not isinstance(env, dict):
        raise ConfigError("environment variable WIREWATCH_CHANGEPOINT must name a key: "
                          "WIREWATCH_CHANGEPOINT__<KEY>=value")
    return validate(ChangepointConfig, deep_merge(data, env), f"{path or 'changepoint config'}")


def changepoints(
    record: Path = typer.Argument(..., help="Record file (JSON Lines: one {frame, stats} object per frame), or "
                                  "a particle tables folder (wirewatch run --particles DIR): its frames table."),
    stats: str | None = typer.Option(None, "--stats", help="Comma-separated statistics to watch (default: the config's)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write {\"changepoints\": [...]} here."),
    plot: Path | None = typer.Option(None, "--plot", help="PNG of the series with detected (red) and true (grey) change points."),
    truth: Path | None = typer.Option(None, "--truth", help="True change points: the simulator's truth.json or a JSON list of frames."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML: a daemon config or its 'changepoint' section."),
    margin: int = typer.Option(10, "--margin", help="Frames within which a detection matches a true change (with --truth)."),
) -> None:
    """Detect change points in a recorded stream of per-frame statistics, as the daemon does live.

    Example: wirewatch changepoints run.jsonl --truth truth.json --json cps.json --plot cps.png
    """
    from rich.console import Console
    from rich.table import Table

    from wirewatch.changepoint.evaluate import match, precision_recall
    from wirewatch.changepoint.offline import changepoints_document, detect_record, read_truth

    if margin < 1:
        raise ConfigError(f"--margin must be >= 1 frame, got {margin}")
    cfg = load_changepoint_config(config)
    chosen = [s.strip() for s in stats.split(",") if s.strip()] if stats else None
    true_frames = read_truth(truth) if truth is not None else None
    from wirewatch.publish.particles import as_record_file  # a Parquet dataset's frames table as a record

    with as_record_file(record) as record_file:
        result = detect_record(record_file, cfg, chosen)
    console = Console(width=max(120, shutil.get_terminal_size().columns))
    table = Table(title=f"{len(result.changepoints)} change point(s) in {record} ({len(result.frames)} frames)")
    for column in ("frame", "detected at", "delay", "detector", "kind", "severity", "effect", "penalty",
                   "statistics: before -> after"):
        table.add_column(column)
    for cp in result.changepoints:
        moves = "; ".join(f"{s}: {cp.before[s]:.4g} -> {cp.after[s]:.4g}" for s in cp.statistics)
        table.add_row(str(cp.frame), str(cp.detected_at), str(cp.detected_at - cp.frame), cp.detector, cp.kind,
                      cp.severity, f"{cp.effect_size:.2f}", f"{cp.penalty:.3g}", moves)
    console.print(table)
    if result.skipped_frames:
        console.print(f"{result.skipped_frames} frame(s) had none of the watched statistics and were skipped")
    document = changepoints_document(result.changepoints)
    if true_frames is not None:
        detected = [cp.frame for cp in result.changepoints]
        n = int(max(result.frames.max(), *detected, 0)) + 1
        beyond = [t for t in true_frames if t >= n]
        if beyond:
            console.print(f"true change(s) at {beyond} lie beyond the record's last frame; not scored")
            true_frames = [t for t in true_frames if t < n]
        pairs = match(true_frames, detected, margin)
        if true_frames and detected:
            precision, recall = precision_recall(true_frames, detected, n, margin)
        else:
            precision = 1.0 if not detected else 0.0
            recall = 1.0 if not true_frames else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        delays = [result.changepoints[i].detected_at - t for t, i in pairs]
        scores = {"margin": margin, "true": true_frames, "precision": precision, "recall": recall, "f1": f1,
                  "mean_delay": sum(delays) / len(delays) if delays else None}
        document["scores"] = scores
        console.print(f"against {len(true_frames)} true change(s), margin {margin}: precision {precision:.2f}, "
                      f"recall {recall:.2f}, F1 {f1:.2f}, mean delay "
                      + (f"{scores['mean_delay']:.1f} frames" if delays else "n/a"))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {json_out}")
    if plot is not None:
        from wirewatch.plots.series import plot_series

        plot_series(result.frames, result.series, plot, change_points=result.changepoints,
                    truth=true_frames or (), title=f"change points in {record.name}")
        console.print(f"wrote {plot}")
