"""``wirewatch train``: train a Mask R-CNN variant on a ``wirewatch synth`` folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def train(
    data: Path | None = typer.Option(None, "--data", help="`wirewatch synth --out` folder (train.json, val.json, images/)."),
    extra_data: list[str] | None = typer.Option(None, "--extra-data", help="DIR:FRACTION: also draw this share "
                                                "of training samples from another synth folder (repeatable)."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoints, metrics.csv, curve.png, train.log."),
    variant: str | None = typer.Option(None, "--variant", help="compact (CPU-friendly ResNet-18-FPN, shipped), compact_m4, compact56, compact56i or r50_fpn."),
    config: Path | None = typer.Option(None, "--config", help="YAML training config (e.g. config/train-compact.yaml)."),
    steps: int | None = typer.Option(None, "--steps", help="Planned steps; the cosine decay reaches zero here."),
    time_budget: float | None = typer.Option(None, "--time-budget", help="Seconds: schedule follows elapsed time and ends there."),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    lr: float | None = typer.Option(None, "--lr"),
    seed: int | None = typer.Option(None, "--seed"),
    init: Path | None = typer.Option(None, "--init", help="Start from these weights (checkpoint, state dict, or an exported .onnx of the same variant; mismatched heads skipped)."),
    val_every: int | None = typer.Option(None, "--val-every"),
    device: str | None = typer.Option(None, "--device", help="cpu (default), cuda or cuda:N."),
    loader_workers: int | None = typer.Option(None, "--loader-workers", help="Processes preparing crops "
                                              "ahead of the optimiser (for a GPU; 0: in-process)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly (model, optimiser, schedule, RNG)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after this many steps in this call (resume later)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train Mask R-CNN on synthetic nanowire images (torch; CPU or GPU)."""
    from wirewatch.config.base import load_config
    from wirewatch.errors import InputError
    from wirewatch.train.config import TrainConfig
    from wirewatch.train.loop import Trainer, load_run_config

    if resume:
        cfg = load_run_config(out)
        if steps is not None and steps != cfg.steps:
            # Extending (or shortening) the planned schedule of a run is explicit and recorded.
            import yaml

            cfg.steps = steps
            (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    else:
        overrides: dict[str, Any] = {"out": str(out)}
        for key, value in (("data", data), ("variant", variant), ("steps", steps), ("time_budget_s", time_budget),
                           ("batch_size", batch_size), ("lr", lr), ("seed", seed), ("init", init),
                           ("val_every", val_every), ("device", device), ("loader_workers", loader_workers)):
            if value is not None:
                overrides[key] = str(value) if isinstance(value, Path) else value
        if extra_data:
            overrides["extra_data"] = [parse_extra_data(item) for item in extra_data]
        if "data" not in overrides and config is None:
            raise InputError("--data is required (a `wirewatch synth --out` folder)")
        cfg = load_config(TrainConfig, config, overrides=overrides)
        if (out / "last.pt").exists():
            raise InputError(f"{out} already holds a run (last.pt); use --resume or another --out")
    result = Trainer(cfg, resume=resume, show_progress=progress).run(max_steps_this_call=max_steps)
    metrics = result.last_metrics
    ap = f"; box AP {metrics['bbox.AP']:.3f}, mask AP {metrics['segm.AP']:.3f}" if metrics else ""
    typer.echo(f"step {result.step} in {result.run_dir}{ap}"
               + (f"; final checkpoint {result.final_checkpoint}" if result.final_checkpoint else ""))


def parse_extra_data(item: str) -> dict[str, Any]:
    """``DIR:FRACTION`` -> ``{"path": DIR, "fraction": FRACTION}`` (the fraction's range is the config's check)."""
    from wirewatch.errors import InputError

    path, sep, fraction = item.rpartition(":")
    try:
        if not sep or not path:
            raise ValueError
        return {"path": path, "fraction": float(fraction)}
    except ValueError:
        raise InputError(f"--extra-data {item!r}: expected DIR:FRACTION, e.g. data/realistic:0.4") from None
